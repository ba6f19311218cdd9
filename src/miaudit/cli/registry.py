"""The registry's commands: ``miaudit runs``, ``models``, ``show``, ``compare``, ``trace``
and ``record``, added to the main app by :func:`register`.

No ``from __future__ import annotations`` here: Typer reads the option types of the commands
defined inside :func:`register` at definition time.
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from miaudit.cli.common import OutputFormat, examples_epilog, friendly, out_console

__all__ = ["register"]

RegistryOption = Annotated[str | None, typer.Option(
    "--registry", help="Registry URL (default: $MIAUDIT_REGISTRY, else "
    "sqlite:///~/.local/share/miaudit/registry.db); postgresql://USER@HOST/DB works too.",
    show_default=False)]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ci(lo: float | None, hi: float | None, pct: bool = False) -> str:
    if lo is None or hi is None:
        return ""
    f = _pct if pct else _fmt
    return f" [{f(lo)}, {f(hi)}]"


def _json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _print_runs(runs: list[dict], console: Console) -> None:
    table = Table(title="runs (newest first)", title_justify="left")
    for col in ("run", "created (UTC)", "data", "model", "exposure", "best AUC",
                "best TPR@0.1%", "max eps LB", "run folder"):
        table.add_column(col, overflow="fold")
    for r in runs:
        best = _pct(r["best_tpr_at_0_1"]) + (f" ({r['best_tpr_attack']})"
                                              if r["best_tpr_attack"] else "")
        table.add_row(r["id"], (r["created"] or "")[:19].replace("T", " "), r["data"] or "-",
                      r["model"] or "-", r["exposure"] or "-", _fmt(r["best_auc"]), best,
                      _fmt(r["max_epsilon_lb"], 2), r["run_dir"] or "-")
    console.print(table)


def _print_models(models: list[dict], console: Console) -> None:
    table = Table(title="models", title_justify="left")
    for col in ("id", "data", "model", "seed", "members", "runs (target)", "reference in",
                "content hash"):
        table.add_column(col, overflow="fold")
    for m in models:
        table.add_row(str(m["id"]), m["data"] or "-", m["description"] or m["name"] or "-",
                      _fmt(m["seed"]), str(m["n_members"]), ", ".join(m["runs"]) or "-",
                      str(len(m["reference_in"])) if m["reference_in"] else "-",
                      m["content_hash"][:16])
    console.print(table)


def _print_show(run: dict, console: Console) -> None:
    d = run["dataset"] or {}
    console.print(f"[bold]run {run['id']}[/]  created {run['created']}  miaudit "
                  f"{run['miaudit_version']}", highlight=False)
    console.print(f"folder: {run['run_dir'] or '-'}", highlight=False)
    console.print(f"data: {d.get('name')} ({d.get('n_records')} records, fingerprint "
                  f"{d.get('fingerprint')}, source {d.get('source')})", highlight=False)
    console.print(f"exposure: {run['exposure']}", highlight=False)
    s = run["settings"] or {}
    console.print("settings: " + ", ".join(f"{k}={v}" for k, v in s.items()), highlight=False)
    models = Table(title="models", title_justify="left")
    for col in ("id", "role", "target", "model", "seed", "members"):
        models.add_column(col)
    for m in run["models"]:
        models.add_row(str(m["id"]), m["role"], _fmt(m["target_index"]),
                       m["description"] or m["name"] or "-", _fmt(m["seed"]),
                       str(m["n_members"]))
    console.print(models)
    attacks = Table(title="attacks (first exposure, pooled over targets)", title_justify="left")
    for col in ("attack", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "eps LB"):
        attacks.add_column(col)
    for a in run["attacks"]:
        attacks.add_row(a["attack"], _fmt(a["auc"]) + _ci(a["auc_lo"], a["auc_hi"]),
                        _pct(a["tpr_at_1"]) + _ci(a["tpr_at_1_lo"], a["tpr_at_1_hi"], True),
                        _pct(a["tpr_at_0_1"]) + _ci(a["tpr_at_0_1_lo"], a["tpr_at_0_1_hi"],
                                                    True),
                        _fmt(a["epsilon_lb"], 2))
    console.print(attacks)
    r = run["risk"]
    console.print(f"record risk under {r['attack'] or '-'}: {r['n_members']} members, "
                  f"{r['members_at_risk_0_99']} caught at 1% FPR (risk >= 0.99), "
                  f"{r['members_at_risk_0_999']} at 0.1% FPR (risk >= 0.999)", highlight=False)
    if r["top_members"]:
        top = Table(title="most exposed members", title_justify="left")
        for col in ("model", "record", "risk", "fingerprint"):
            top.add_column(col, overflow="fold")
        for t in r["top_members"]:
            top.add_row(str(t["model_id"]), t["record_id"] or "-", _fmt(t["risk"], 4),
                        t["fingerprint"])
        console.print(top)


def _print_compare(c: dict, console: Console) -> None:
    console.print(f"[bold]{c['run_a']}[/] (a) vs [bold]{c['run_b']}[/] (b)", highlight=False)
    if not c["changed"]:
        console.print("changed: nothing (same data, model recipe, exposure and settings)")
    for key, value in c["changed"].items():
        if key in ("settings", "model_recipe"):
            for path, ab in value.items():
                console.print(f"changed {key}.{path}: {ab['a']!r} -> {ab['b']!r}",
                              highlight=False)
        else:
            console.print(f"changed {key}: {value['a']!r} -> {value['b']!r}", highlight=False)
    table = Table(title="attacks in both runs (a -> b; * = beyond the intervals)",
                  title_justify="left")
    for col in ("attack", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "eps LB"):
        table.add_column(col)
    for name, figs in c["attacks"].items():
        cells = []
        for fig, e in figs.items():
            f = _pct if fig.startswith("tpr") else _fmt
            mark = " *" if e["beyond_intervals"] else ""
            cells.append(f"{f(e['a'])} -> {f(e['b'])}{mark}")
        table.add_row(name, *cells)
    console.print(table)
    for side in ("a", "b"):
        if c[f"only_in_{side}"]:
            console.print(f"only in {side}: {', '.join(c[f'only_in_{side}'])}", highlight=False)
    console.print(f"[bold]{c['verdict']}[/]", highlight=False)
    console.print(f"[dim]rule: {c['rule']}[/]", highlight=False)


def _print_trace(record: str, traced: list[dict], known: list[str], console: Console) -> None:
    if not traced:
        where = (f"registered as {', '.join(known)}, but " if known else "")
        console.print(f"record {record}: {where}in no registered model's training set.",
                      highlight=False)
        return
    table = Table(title=f"models trained on record {record}", title_justify="left")
    for col in ("record", "model", "data", "recipe", "run", "role", "attack", "risk"):
        table.add_column(col, overflow="fold")
    for t in traced:
        m = t["model"]
        runs = t["runs"] or [{"run_id": "-", "role": "-", "attack": None, "risk": None}]
        for r in runs:
            table.add_row(", ".join(t["record_ids"]) or t["record_fingerprint"][:16],
                          str(m["id"]), m["data"] or "-", m["description"] or m["name"] or "-",
                          r["run_id"], r["role"], r["attack"] or "-", _fmt(r["risk"], 4))
    console.print(table)
    console.print("[dim]risk: share of the model's non-members that the run's strongest "
                  "attack scores lower (0.99: caught at 1% FPR).[/]")


def _record_key(record: str, id_column: str | None) -> str:
    """A fingerprint for a record file, else the argument (a fingerprint or an ID)."""
    from miaudit.registry.records import RECORD_FILE_SUFFIXES, record_file_fingerprint

    path = Path(record).expanduser()
    if record.lower().endswith(RECORD_FILE_SUFFIXES) or path.is_file():
        return record_file_fingerprint(path, id_column=id_column)
    return record


FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", help="text: tables on stdout; json: the data on stdout.")]

def open_registry(url: str | None):
    from miaudit.registry.core import Registry

    return Registry(url)

@friendly
def runs_command(
    limit: Annotated[int, typer.Option(help="Most runs to list (newest first).",
                                       min=1)] = 50,
    registry: RegistryOption = None,
    format: FormatOption = OutputFormat.text,
) -> None:
    """List the recorded audit runs with their headline figures."""
    with open_registry(registry) as reg:
        runs = reg.runs(limit=limit)
    if format is OutputFormat.json:
        _json(runs)
    elif not runs:
        out_console.print("No runs recorded yet (record one with 'miaudit registry record "
                          "RUN_DIR').")
    else:
        _print_runs(runs, out_console)

@friendly
def models_command(registry: RegistryOption = None,
                   format: FormatOption = OutputFormat.text) -> None:
    """List the registered models: data set, recipe, seed, training-set size, runs."""
    with open_registry(registry) as reg:
        models = reg.models()
    if format is OutputFormat.json:
        _json(models)
    elif not models:
        out_console.print("No models registered yet.")
    else:
        _print_models(models, out_console)

@friendly
def show_command(
    run_id: Annotated[str, typer.Argument(help="Run ID or a unique prefix of it.")],
    registry: RegistryOption = None,
    format: FormatOption = OutputFormat.text,
) -> None:
    """Show everything about a run: data, models, attacks, record risks."""
    with open_registry(registry) as reg:
        run = reg.show(run_id)
    if format is OutputFormat.json:
        _json(run)
    else:
        _print_show(run, out_console)

@friendly
def compare_command(
    run_a: Annotated[str, typer.Argument(help="First run (ID or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="Second run (ID or unique prefix).")],
    registry: RegistryOption = None,
    format: FormatOption = OutputFormat.text,
) -> None:
    """Compare two runs: what changed, and which figures moved beyond the intervals
    (non-overlapping confidence intervals)."""
    with open_registry(registry) as reg:
        comparison = reg.compare(run_a, run_b)
    if format is OutputFormat.json:
        _json(comparison)
    else:
        _print_compare(comparison, out_console)

@friendly
def trace_command(
    record: Annotated[str, typer.Option(
        "--record", help="Record fingerprint (64 hex), record ID, or a one-row "
        ".csv/.json/.parquet file holding the record (all columns, label included).")],
    id_column: Annotated[str | None, typer.Option(
        help="ID column of a record file (left out of the fingerprint).")] = None,
    registry: RegistryOption = None,
    format: FormatOption = OutputFormat.text,
) -> None:
    """Which registered models were trained on a record, and how exposed it was in
    each run auditing them."""
    key = _record_key(record, id_column)
    with open_registry(registry) as reg:
        traced = reg.trace(key)
        known = [] if traced else reg.known_record(key)
    if format is OutputFormat.json:
        _json({"record": key, "models": traced, "registered_as": known})
    else:
        _print_trace(key, traced, known, out_console)

@friendly
def record_command(
    run_dir: Annotated[Path, typer.Argument(help="A saved run folder (summary.json, "
                                                 "scores.parquet).")],
    registry: RegistryOption = None,
    format: FormatOption = OutputFormat.text,
) -> None:
    """Record a saved run folder in the registry and print its run ID."""
    with open_registry(registry) as reg:
        run_id = reg.record_run_dir(run_dir)
    if format is OutputFormat.json:
        _json({"run_id": run_id, "run_dir": str(run_dir)})
    else:
        print(run_id)


def register(app: typer.Typer) -> None:
    """Add the registry's commands to a Typer app.

    Parameters
    ----------
    app : typer.Typer
        The ``miaudit`` app (or any other); gains ``runs``, ``models``, ``show``,
        ``compare``, ``trace`` and ``record``.
    """

    commands = [
        ("runs", runs_command, ["miaudit runs", "miaudit runs --limit 5 --format json",
                                "miaudit runs --registry postgresql://me@db/audits"]),
        ("models", models_command, ["miaudit registry models",
                                    "miaudit registry models --format json"]),
        ("show", show_command, ["miaudit show 20260520-143000-1a2b3c",
                                "miaudit show 20260520-1430 --format json   (a unique prefix)"]),
        ("compare", compare_command, [
            "miaudit registry compare 20260520-143000-1a2b3c 20260521-090000-4d5e6f",
            "miaudit registry compare RUN_A RUN_B --format json"]),
        ("trace", trace_command, [
            "miaudit registry trace --record 1f3a...c9 (64 hex digits)",
            "miaudit registry trace --record 1234   (a record ID)",
            "miaudit registry trace --record person.csv --id-column id"]),
        ("record", record_command, [
            "miaudit registry record runs/digits",
            "miaudit registry record runs/digits --registry postgresql://me@db/audits"]),
    ]
    for name, command, examples in commands:
        app.command(name, epilog=examples_epilog(examples))(command)
