"""The governance commands of ``miaudit``: ``gate``, ``model-card`` and ``verify-forget``.

Add them to the typer app with :func:`register`. RUN arguments take a run folder or a run
ID of the registry (:func:`~miaudit.cli.common.run_folder`).

Exit codes
----------
``gate``
    0: every rule passed; 1: a rule failed; 2: the policy or the run is unusable (bad TOML,
    an invalid rule, an attack or FPR level the run lacks, a missing folder) or a usage
    error.
``verify-forget``
    0: the check ran (with ``--strict``: and the forgotten records are indistinguishable
    from fresh non-members, or with ``--retrained`` from the retrained model); 1: with
    ``--strict``, they are not; 2: bad input.
``model-card``
    0: written; 1: bad input (one line on stderr, as for ``miaudit run``).

``MIAUDIT_DEBUG=1`` shows the traceback of an error instead of one line.
"""

# No ``from __future__ import annotations`` here: typer reads the annotations of the
# commands defined inside register(), which refer to names imported there.

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape

from miaudit.cli.common import OutputFormat, err_console, friendly, out_console, run_folder
from miaudit.errors import MiauditError, MiauditWarning, UndefinedMetricWarning

__all__ = ["register"]

T = TypeVar("T")


def _checked(err_console, fn: Callable[[], T]) -> T:
    """Run ``fn``; a known error prints one line on stderr and exits with code 2."""
    from rich.markup import escape

    try:
        return fn()
    except MiauditError as exc:
        if os.environ.get("MIAUDIT_DEBUG"):
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(2) from None


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _gate_table(result):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Policy {escape(result.policy_name or result.policy)} on run "
                        f"{escape(result.run)}", title_justify="left")
    for col in ("#", "rule", "attack", "figure", "value", "max", "result", "note"):
        table.add_column(col, justify="right" if col in ("#", "value", "max") else "left")
    for r in result.results:
        table.add_row(str(r.index), escape(r.rule.label), escape(r.attack or ""),
                      escape(r.figure), _num(r.value), f"{r.limit:g}",
                      "[green]PASS[/]" if r.passed else "[bold red]FAIL[/]",
                      escape(r.reason or r.detail or ""))
    return table


def _ci(e: dict, key: str, pct: bool) -> str:
    from miaudit.report.terminal import figure

    return figure(e.get(key), e.get(f"{key}_ci"), pct=pct)


def _forget_table(result):
    from rich.table import Table

    level = f"{100 * result.interval_level:g}%"
    table = Table(title=f"Forgetting check: {result.n_forget} records to forget vs "
                        f"{result.n_fresh} fresh non-members, exposure '{result.exposure}' "
                        f"({level} intervals, simultaneous over the attacks)",
                  title_justify="left")
    table.add_column("attack", style="bold")
    table.add_column("AUC after", justify="right")
    table.add_column("TPR@1%FPR after", justify="right")
    if result.original is not None:
        table.add_column("AUC before", justify="right")
        table.add_column("TPR@1%FPR before", justify="right")
        table.add_column("AUC drop", justify="right")
    cmp = result.retrained
    if cmp is not None:
        table.add_column("AUC retrained", justify="right")
        table.add_column(f"AUC after - retrained ({100 * cmp.interval_level:.4g}%)",
                         justify="right")
        table.add_column("PrivLeak", justify="right")
    for name, e in result.new.attacks.items():
        cells = [name, _ci(e, "auc", False), _ci(e, "tpr_at_1pct_fpr", True)]
        if result.original is not None:
            o = result.original.attacks[name]
            cells += [_ci(o, "auc", False), _ci(o, "tpr_at_1pct_fpr", True),
                      f"{result.auc_drop[name]:+.3f}"]
        if cmp is not None:
            c = cmp.attacks[name]
            lo, hi = c["difference_ci"]
            leak = c["privleak"]
            cells += [_ci(cmp.retrained.attacks[name], "auc", False),
                      f"{c['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                      "n/a" if leak is None else
                      f"{100 * leak:+.1f}% [{100 * c['privleak_ci'][0]:+.1f}, "
                      f"{100 * c['privleak_ci'][1]:+.1f}]"]
        table.add_row(*cells)
    return table


def _ulira_line(u, level: float) -> str:
    from miaudit.report.terminal import figure

    flagged = u.record_ids[u.flagged]
    ids = ", ".join(escape(str(i)) for i in flagged[:5]) + (", ..." if len(flagged) > 5 else "")
    return (f"U-LiRA ({u.n_unlearned_shadows} unlearned / {u.n_retrained_shadows} retrained "
            f"shadows, {u.variance} variance, {100 * level:.4g}% intervals): AUC after forgetting "
            f"vs retrained {figure(u.auc, u.auc_ci)}, accuracy "
            f"{figure(u.accuracy, u.accuracy_ci, pct=True)} (50% = exact unlearning); "
            f"{len(flagged)} record(s) flagged (Benjamini-Hochberg)"
            + (f": {ids}" if len(flagged) else ""))



@friendly
def gate_command(
    run: Annotated[str, typer.Argument(help="Run folder (or run ID).")],
    policy: Annotated[Path, typer.Option(
        "--policy", help="TOML policy file of rule tables (example: "
        "example_policy.toml in the miaudit.governance package)."
    )],
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: every check on stdout."
    )] = OutputFormat.text,
) -> None:
    """Check a run against a privacy policy (a CI gate): PASS or FAIL per rule."""
    from miaudit.governance.policy import gate

    result = _checked(err_console, lambda: gate(run_folder(run), policy))
    if format is OutputFormat.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out_console.print(_gate_table(result))
        n = len(result.results)
        out_console.print(
            f"[bold green]gate passed[/]: {n} of {n} checks" if result.passed else
            f"[bold red]gate failed[/]: {result.n_failed} of {n} checks failed")
    if not result.passed:
        raise typer.Exit(1)

@friendly
def model_card_command(
    run: Annotated[str, typer.Argument(help="Run folder (or run ID).")],
    out: Annotated[Path | None, typer.Option(
        help="Write the Markdown to this file (default: stdout)."
    )] = None,
    top_records: Annotated[int, typer.Option(
        help="Most exposed member records listed (by ID)."
    )] = 10,
) -> None:
    """Write the "Privacy: membership inference" section of a model card (Markdown)."""
    from miaudit.errors import ConfigError
    from miaudit.governance.model_card import model_card_section
    from miaudit.results.folder import RUN_FILES, load_run, write_text_file

    if top_records < 0:
        raise ConfigError(f"--top-records must be >= 0, got {top_records}.")

    run_dir = run_folder(run)
    folder = load_run(run_dir, scores="optional")
    summary, scores = folder.summary, folder.scores
    text = model_card_section(summary, scores, top_records=top_records)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.name in RUN_FILES and out.parent.resolve() == Path(run_dir).resolve():
        raise ConfigError(f"Refusing to write over the run's own {out.name}; choose "
                          "another --out, such as model_card.md.")
    write_text_file(out, text)
    err_console.print(f"wrote {escape(str(out))}", highlight=False)

@friendly
def verify_forget_command(
    data: Annotated[str, typer.Option(help="Built-in name or data file holding both "
                                      "sets.")],
    forget: Annotated[Path, typer.Option(
        help="Text file: IDs of the records the model should have forgotten, one per "
        "line."
    )],
    fresh: Annotated[Path, typer.Option(
        help="Text file: IDs of records neither model trained on, one per line."
    )],
    outputs: Annotated[Path, typer.Option(
        help="The model's outputs after forgetting (.npz with ids and logits or probs)."
    )],
    original_outputs: Annotated[Path | None, typer.Option(
        help="The original model's outputs, in the same format."
    )] = None,
    retrained: Annotated[Path | None, typer.Option(
        help="Outputs of a model retrained from scratch without the records (the "
        "oracle), in the same format: the check then compares against it, two-sided "
        "(AUC difference with a paired DeLong interval, PrivLeak)."
    )] = None,
    shadows: Annotated[Path | None, typer.Option(
        help="Shadow models' outputs for U-LiRA (.npz: ids, unlearned_logits and "
        "retrained_logits of shape models x records x classes; needs --retrained)."
    )] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table.")
                            ] = None,
    id_column: Annotated[str | None, typer.Option(help="Record-ID column of a table.")
                         ] = None,
    attacks: Annotated[str, typer.Option(help="Comma-separated reference-free attacks.")
                       ] = "loss,mentr",
    exposure: Annotated[str, typer.Option(help="What the attacker sees.")
                        ] = "probabilities",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    alpha: Annotated[float, typer.Option(
        help="Error rate of the verdict (intervals: 1 - alpha / number of attacks)."
    )] = 0.05,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 unless the records are indistinguishable from fresh "
        "non-members (with --retrained: from the retrained model)."
    )] = False,
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: the result on stdout."
    )] = OutputFormat.text,
) -> None:
    """Do records a model claims to have forgotten still look like its members?"""
    from miaudit.governance.forget import INDISTINGUISHABLE, load_id_list, verify_forget

    def check():
        return verify_forget(
            data=data, forget=load_id_list(forget), fresh=load_id_list(fresh),
            model=outputs, original=original_outputs, retrained=retrained, shadows=shadows,
            attacks=[a.strip() for a in attacks.split(",") if a.strip()],
            exposure=exposure, seed=seed, alpha=alpha, label_column=label_column,
            id_column=id_column)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _checked(err_console, check)
    seen = []
    for w in caught:
        if (issubclass(w.category, MiauditWarning)
                and not issubclass(w.category, UndefinedMetricWarning)
                and str(w.message) not in seen):
            seen.append(str(w.message))
            err_console.print(f"[yellow]warning[/] {escape(str(w.message))}",
                              highlight=False)
    if format is OutputFormat.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out_console.print(_forget_table(result))
        cmp = result.retrained
        if cmp is not None and cmp.ulira is not None:
            out_console.print(_ulira_line(cmp.ulira, cmp.interval_level), highlight=False)
        color = "green" if result.verdict == INDISTINGUISHABLE else "red"
        text = result.headline()
        if cmp is not None:  # two sentences, each in its verdict's colour
            second = cmp.headline(result.n_forget)
            text = text[: -len(second) - 1]
            out_console.print(f"[{color}]{escape(text)}[/]", highlight=False)
            color = "green" if cmp.matches else "red"
            text = second
        out_console.print(f"[bold {color}]{escape(text)}[/]", highlight=False)
    passed = (result.retrained.matches if result.retrained is not None
              else result.verdict == INDISTINGUISHABLE)
    if strict and not passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``gate``, ``model-card`` and ``verify-forget`` to the ``miaudit`` typer app."""

    app.command(
        "gate",
        epilog=(
            "Exit codes: 0 every rule passed, 1 a rule failed, 2 unusable policy or run.\n\n"
            "Examples:\n\n"
            "  miaudit gate runs/digits --policy policy.toml\n\n"
            "  miaudit gate runs/digits --policy policy.toml --format json"
        ),
    )(gate_command)
    app.command(
        "model-card",
        epilog=(
            "Examples:\n\n"
            "  miaudit model-card runs/digits > privacy.md\n\n"
            "  miaudit model-card runs/digits --out privacy.md --top-records 5"
        ),
    )(model_card_command)
    app.command(
        "verify-forget",
        epilog=(
            "Outputs (.npz): 'ids' (record IDs of the data) and 'logits' or 'probs' "
            "(records x classes, in the data's class order).\n\n"
            "Against fresh records the verdict is: still members / indistinguishable / "
            "less member-like. With --retrained (a model retrained without the records: "
            "the truth of exact unlearning) it is also: matches the retrained model / more "
            "member-like than on it (under-unlearning) / less member-like than on it "
            "(over-unlearning, e.g. gradient ascent that overshoots) / told apart by "
            "U-LiRA (with --shadows: shadow models that unlearned the records the same way "
            "and shadows retrained without them, Hayes et al. 2024). PrivLeak = (AUC after "
            "- AUC retrained) / AUC retrained (MUSE, Shi et al. 2024).\n\n"
            "Exit codes: 0 the check ran (--strict: and the records look forgotten; with "
            "--retrained: and the model matches the retrained one), 1 --strict and they "
            "do not, 2 bad input.\n\n"
            "Examples:\n\n"
            "  miaudit verify-forget --data digits --forget forget.txt --fresh fresh.txt "
            "--outputs unlearned.npz --original-outputs original.npz\n\n"
            "  miaudit verify-forget --data digits --forget forget.txt --fresh fresh.txt "
            "--outputs unlearned.npz --retrained retrained.npz --shadows shadows.npz "
            "--strict"
        ),
    )(verify_forget_command)
