"""The DP-auditing commands of ``miaudit``: ``sweep`` and ``audit-one-run``.

Add them to the typer app with :func:`register` (``miaudit.cli`` does). Known errors print
one line on stderr and exit with code 1 (``MIAUDIT_DEBUG=1`` shows the traceback); data
goes to stdout, messages to stderr.
"""

# No ``from __future__ import annotations`` here: typer reads the annotations of the
# commands defined inside register().

import json
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

import miaudit.cli.options as opt
from miaudit.cli.common import (
    OutputFormat,
    default_out,
    err_console,
    friendly,
    out_console,
    split_list,
)
from miaudit.defaults import DEFAULT_EXPOSURE, DEFAULT_RECIPE

__all__ = ["register"]


def _fmt(v, pct: bool = False, ci=None) -> str:
    from miaudit.report.terminal import figure

    return figure(v, ci, pct=pct, decimals=2 if pct else 3)


def _sweep_table(section: dict):
    from rich.markup import escape
    from rich.table import Table

    fpr = section.get("fpr")
    label = f"TPR@{100 * float(fpr):g}%FPR" if fpr else "TPR (not measurable)"
    table = Table(title=f"Sweep over {escape(section['parameter'])} (attack: "
                        f"{escape(section['attack'])}; 95% intervals)", title_justify="left")
    for col in (section["parameter"], "attack", "test acc.", "AUC", label, "eps lower bound",
                "eps accountant"):
        table.add_column(escape(col), justify="left" if col == "attack" else "right")
    for r in section["rows"]:
        tpr = (r.get("tpr_at_fpr") or {}).get(fpr) if fpr else None
        tpr_ci = (r.get("tpr_at_fpr_ci") or {}).get(fpr) if fpr else None
        table.add_row(escape(str(r["value"])), escape(r["attack"]), _fmt(r["test_accuracy"]),
                      _fmt(r["auc"], ci=r.get("auc_ci")), _fmt(tpr, pct=True, ci=tpr_ci),
                      _fmt(r.get("epsilon_lower_bound")),
                      "inf (no DP)" if r.get("dp_epsilon_accountant") is None
                      else _fmt(r["dp_epsilon_accountant"]))
    return table


def _one_run_table(summary: dict):
    from rich.markup import escape
    from rich.table import Table

    b, p = summary["one_run"], summary["one_run_pure_dp"]
    t = summary["target"]
    table = Table(title=f"One-run audit: {escape(t['description'])}", title_justify="left",
                  show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    c = summary["canaries"]
    table.add_row("canaries", f"{c['n']} ({'mislabelled' if c['mislabelled'] else 'as is'}), "
                              f"{c['n_included']} included; attack {c['attack']}")
    table.add_row("guesses", f"{b['n_correct']} of {b['n_guesses']} correct "
                             f"(k+ {b['k_pos']}, k- {b['k_neg']})")
    table.add_row(f"eps lower bound (delta {b['delta']:g})", f"{b['epsilon']:.3f} "
                  f"(significance {b['beta']:g})")
    table.add_row("eps lower bound (pure DP)", f"{p['epsilon']:.3f}")
    g = summary.get("one_run_gdp")
    if g:
        table.add_row("mu lower bound (Gaussian DP)", f"{g['mu']:.2f} (Mahloujifar et al.)")
        table.add_row(f"eps if the curve is Gaussian (delta {g['delta']:g})",
                      f"{g['epsilon']:.3f} (DP-SGD's nearly is; else use the bounds above)")
    acc = summary["dp_epsilon_accountant"]
    table.add_row("eps accountant", "inf (no DP-SGD)" if acc is None else
                  f"{acc:.3f} (RDP, delta {t['privacy']['delta']:g})")
    held = t["held_out_accuracy"]
    table.add_row("accuracy", f"train {t['train_accuracy']:.3f}, held-out canaries "
                              + ("n/a (every canary included)" if held is None
                                 else f"{held:.3f}"))
    return table


def _white_box_table(summary: dict):
    from rich.markup import escape
    from rich.table import Table

    b, p, g = summary["one_run"], summary["one_run_pure_dp"], summary["one_run_gdp"]
    t, c, tr = summary["target"], summary["canaries"], summary["training"]
    table = Table(title=f"White-box one-run audit: {escape(t['description'])}",
                  title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("canaries", f"{c['n']} gradient canaries ({c['kind']}, norm "
                              f"{c['gradient_norm']:g}), {c['n_included']} included"
                              + ("" if c["inserted"] else ", NOTHING INSERTED (null run)")
                              + f"; score {c['score']}")
    table.add_row("training", f"{tr['steps']} steps, sampling rate {tr['sample_rate']:.4g}, "
                              f"noise multiplier {tr['noise_multiplier']:.4g}")
    table.add_row("guesses", f"{b['n_correct']} of {b['n_guesses']} correct "
                             f"(k+ {b['k_pos']}, k- {b['k_neg']})")
    table.add_row(f"eps lower bound (delta {b['delta']:g})", f"{b['epsilon']:.3f} "
                  f"(significance {b['beta']:g}; at most {summary['ceiling']:.3f} with these "
                  "guesses)")
    table.add_row("eps lower bound (pure DP)", f"{p['epsilon']:.3f}")
    table.add_row("mu lower bound (Gaussian DP)", f"{g['mu']:.2f} (Mahloujifar et al.)")
    table.add_row(f"eps if the curve is Gaussian (delta {g['delta']:g})",
                  f"{g['epsilon']:.3f} (DP-SGD's nearly is; else use the bounds above)")
    acc = summary["dp_epsilon_accountant"]
    table.add_row("eps accountant", "inf (no DP-SGD noise)" if acc is None else
                  f"{acc:.3f} (RDP, delta {t['privacy']['delta']:g}; canaries counted as "
                  "examples)")
    table.add_row("tightness", escape(summary["tightness"]))
    table.add_row("train accuracy", f"{t['train_accuracy']:.3f}")
    return table


def _ints(text: str | None) -> int | list[int] | None:
    from miaudit.errors import ConfigError

    if text is None:
        return None
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"Expected a whole number or a comma-separated list, got "
                          f"{text!r}.") from None
    if not parts:
        raise ConfigError(f"Expected a whole number or a comma-separated list, got {text!r}.")
    return parts[0] if len(parts) == 1 else parts


@friendly
def sweep_command(
    param: Annotated[str, typer.Option(
        "--param", help="The swept recipe parameter and its values: NAME=V1,V2,... "
        "(';' between values that hold commas, e.g. hidden=64,32;128)."
    )],
    data: opt.Data,
    label_column: opt.LabelColumn = None,
    id_column: opt.IdColumn = None,
    n_records: opt.NRecords = None,
    model: opt.Model = DEFAULT_RECIPE,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", help="Fixed recipe parameter key=value, repeatable."
    )] = None,
    attacks: opt.Attacks = None,
    attack: Annotated[str | None, typer.Option(
        help="The attack of the table; default: each setting's strongest."
    )] = None,
    exposure: opt.Exposure = DEFAULT_EXPOSURE,
    references: opt.References = 0,
    reference_mode: opt.ReferenceMode = "online",
    targets: opt.Targets = 1,
    seed: opt.Seed = 0,
    out: Annotated[Path | None, typer.Option(
        help="Run folder: the last setting's audit with the sweep (default: "
        "runs/<time>-<data>-<model>-sweep)."
    )] = None,
    overwrite: opt.Overwrite = False,
    device: opt.Device = "cpu",
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    executor: opt.Executor = "inprocess",
    workers: opt.Workers = None,
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: the sweep section on stdout."
    )] = OutputFormat.text,
    quiet: opt.Quiet = False,
) -> None:
    """Privacy-utility sweep: audit the recipe once per value of one parameter (DP
    epsilon, weight decay, dropout, ...) and compare accuracy, AUC, TPR at 0.1% FPR,
    the empirical epsilon lower bound and the accountant's epsilon."""
    from rich.markup import escape

    from miaudit.audits.sweep import parse_sweep, sweep
    from miaudit.errors import MiauditWarning
    from miaudit.results.result import check_out_dir

    started = time.perf_counter()
    name, values = parse_sweep(param)
    out_dir = out or default_out(data, f"{model}-sweep")
    check_out_dir(out_dir, overwrite=overwrite)

    def say(i: int, value) -> None:
        if not quiet:
            err_console.print(f"[dim]{name}={value} ({i + 1}/{len(values)})[/]",
                              highlight=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)  # in each summary instead
        result = sweep(
            name, values, attack=attack, on_value=say, data=data,
            label_column=label_column, id_column=id_column, n_records=n_records,
            model=model, model_params=set_, attacks=split_list(attacks),
            exposure=exposure, references=references, reference_mode=reference_mode,
            targets=targets, seed=seed, device=device, executor=executor,
            workers=workers,
            cache=not no_cache, cache_dir=cache_dir)
    saved = result.to_result().save(out_dir, overwrite=overwrite)
    if format is OutputFormat.json:
        print(json.dumps(result.section(), indent=2))
        return
    section = result.section()
    out_console.print(_sweep_table(section))
    if section.get("search_note"):
        out_console.print(section["search_note"], highlight=False)
    err_console.print(f"[bold]run folder[/] {escape(str(saved))} (report.html shows the "
                      "sweep)",
                      highlight=False)
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")

@friendly
def one_run_command(
    data: opt.Data,
    label_column: opt.LabelColumn = None,
    id_column: opt.IdColumn = None,
    n_records: opt.NRecords = None,
    model: opt.Model = DEFAULT_RECIPE,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Recipe key=value, repeatable (e.g. -p dp_epsilon=4)."
    )] = None,
    canaries: Annotated[int, typer.Option(
        help="Canaries m, each included with probability 1/2."
    )] = 1000,
    mislabel: Annotated[bool, typer.Option(
        "--mislabel/--no-mislabel", help="Train canaries with a random wrong label "
        "(a stronger audit)."
    )] = True,
    k_pos: Annotated[str | None, typer.Option(
        help="Guesses 'in' (highest scores); a comma list tries each (Bonferroni). "
        "Default: m/10."
    )] = None,
    k_neg: Annotated[str | None, typer.Option(
        help="Guesses 'out' (lowest scores); as --k-pos."
    )] = None,
    beta: Annotated[float, typer.Option(help="Significance level of the bound.")] = 0.05,
    delta: Annotated[float | None, typer.Option(
        help="Delta of the bound (default: the recipe's dp_delta, 1e-5)."
    )] = None,
    seed: opt.Seed = 0,
    device: opt.Device = "cpu",
    white_box: Annotated[bool, typer.Option(
        "--white-box", help="White-box audit: gradient canaries inserted into DP-SGD "
        "(after clipping, before the noise) and scored from every privatized gradient; "
        "--mislabel does not apply."
    )] = False,
    gradient_canary: Annotated[str, typer.Option(
        help="With --white-box: 'dirac' (one parameter coordinate each) or 'random' "
        "(random unit directions)."
    )] = "dirac",
    score: Annotated[str, typer.Option(
        help="With --white-box: 'sum' (the canary's share of the parameter change) or "
        "'llr' (per-step likelihood ratio; needs DP-SGD noise)."
    )] = "sum",
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: the result on stdout."
    )] = OutputFormat.text,
) -> None:
    """One-run DP audit (Steinke, Nasr & Jagielski 2023): train ONE model with canaries
    and compare the empirical epsilon lower bound with the accountant's epsilon (exit
    code 1 when the bound exceeds it: a bug somewhere). --white-box inserts gradient
    canaries instead of records."""
    from miaudit.errors import ConfigError

    if not white_box and (gradient_canary != "dirac" or score != "sum"):
        raise ConfigError("--gradient-canary and --score apply only with --white-box.")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flag is printed below
        common = {"data": data, "label_column": label_column, "id_column": id_column,
                  "n_records": n_records, "model": model, "model_params": param,
                  "canaries": canaries, "k_pos": _ints(k_pos), "k_neg": _ints(k_neg),
                  "beta": beta, "delta": delta, "seed": seed, "device": device}
        if white_box:
            from miaudit.audits.white_box import audit_one_run_white_box

            result = audit_one_run_white_box(canary_kind=gradient_canary, score=score,
                                             **common)
        else:
            from miaudit.audits.sweep import audit_one_run

            result = audit_one_run(mislabel=mislabel, **common)
    summary = result.summary()
    if format is OutputFormat.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        out_console.print(_white_box_table(summary) if white_box else _one_run_table(summary))
    if format is not OutputFormat.json:
        err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")
    if result.flag:
        err_console.print(f"[bold red]WARNING: {result.flag.upper()}[/]", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``audit-one-run`` to the ``miaudit`` typer app."""

    app.command(
        "sweep",
        epilog=(
            "Examples:\n\n"
            "  miaudit sweep --data location30.npz --param dp_epsilon=1,4,16,inf\n\n"
            "  miaudit sweep --data location30.npz --param weight_decay=0,1e-4,1e-3 "
            "--references 8 --out runs/wd\n\n"
            "  miaudit sweep --data digits --param 'hidden=64;128,64' --set epochs=20"
        ),
    )(sweep_command)
    app.command(
        "audit-one-run",
        epilog=(
            "Examples:\n\n"
            "  miaudit dp one-run --data location30.npz -p dp_epsilon=4\n\n"
            "  miaudit dp one-run --data digits --canaries 500 --no-mislabel\n\n"
            "  miaudit dp one-run --data location30.npz --k-pos 50,100,200 "
            "--k-neg 50,100,200\n\n"
            "  miaudit dp one-run --data location30.npz -p dp_epsilon=4 -p epochs=30 "
            "--white-box --score llr"
        ),
    )(one_run_command)
