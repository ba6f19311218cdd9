"""Commands ``spec-check``, ``run-spec`` and ``rerun``, added to a typer app by
:func:`register`."""

# No "from __future__ import annotations": typer reads the commands' annotations, which
# name types imported inside register().
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

import miaudit.cli.options as opt
from miaudit.cli.common import (
    OutputFormat,
    err_console,
    examples_epilog,
    friendly,
    out_console,
    run_folder,
)
from miaudit.errors import MiauditWarning

__all__ = ["register"]

def _settings_table(spec: Any):
    from rich.table import Table

    table = Table(title=f"{spec.task} audit: {'audit_lm' if spec.task == 'lm' else 'audit'}"
                        "() keyword arguments", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    for key, value in spec.to_audit_kwargs().items():
        table.add_row(key, "-" if value is None else json.dumps(value))
    for key, value in spec.thresholds.items():
        table.add_row(f"threshold {key}", f"{value:g}")
    return table


def show(result: Any, saved: Path, format: OutputFormat, started: float) -> None:
    from miaudit.report import print_exposures, print_summary

    summary = result.summary()
    if format is OutputFormat.json:
        print(json.dumps(summary, indent=2))
        return
    print_summary(summary, out_console, run_dir=str(saved))
    if "exposures" in summary:
        print_exposures(summary, out_console)
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")

@friendly
def spec_check(
    file: Annotated[Path, typer.Argument(help="Audit spec (.toml, .yaml or .yml).")],
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table; json: the resolved settings as JSON.")
                      ] = OutputFormat.text,
) -> None:
    """Validate an audit spec and show the settings it resolves to."""
    from miaudit.spec import load_spec

    spec = load_spec(file)
    if format is OutputFormat.json:
        source = spec.source or {}
        print(json.dumps({"task": spec.task, "kwargs": spec.to_audit_kwargs(),
                          "spec": spec.to_dict(), "source": {
                              k: source.get(k) for k in ("path", "sha256", "format")}},
                         indent=2))
        return
    out_console.print(_settings_table(spec))
    err_console.print(f"[green]ok[/]: {file} is a valid audit spec "
                      f"(sha256 {(spec.source or {}).get('sha256', '')[:12]})",
                      highlight=False)

@friendly
def run_spec_command(
    file: Annotated[Path, typer.Argument(help="Audit spec (.toml, .yaml or .yml).")],
    out: opt.Out = None,
    overwrite: opt.Overwrite = False,
    format: opt.Format = OutputFormat.text,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Run the audit a spec file describes; the spec is stored in summary.json."""
    from miaudit.spec import load_spec, run_spec

    started = time.perf_counter()
    spec = load_spec(file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)  # shown in the summary
        result, saved = run_spec(spec, out, overwrite,
                                 cache=not no_cache, cache_dir=cache_dir,
                                 progress=not quiet and sys.stderr.isatty())
    show(result, saved, format, started)

@friendly
def rerun_command(
    run: Annotated[str, typer.Argument(help="A run folder (or a run ID, with a registry).")],
    out: opt.Out = None,
    overwrite: opt.Overwrite = False,
    format: opt.Format = OutputFormat.text,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Run a previous audit again, from the spec stored with it or from its settings,
    and say whether the figures came out the same."""
    from miaudit.spec import rerun

    started = time.perf_counter()
    folder = run_folder(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        result, saved = rerun(folder, out, overwrite=overwrite,
                              cache=not no_cache, cache_dir=cache_dir,
                              progress=not quiet and sys.stderr.isatty())
    show(result, saved, format, started)
    info = result.summary()["rerun_of"]
    if info["reproduced"]:
        err_console.print(f"[green]reproduced[/]: every AUC and TPR equals {folder}'s "
                          f"(rebuilt from its {info['rebuilt_from']})", highlight=False)
    else:
        diff = info["max_abs_difference"]
        what = "other attacks or levels" if diff is None else f"up to {diff:.3g}"
        err_console.print(f"[yellow]not reproduced[/]: figures differ from {folder}'s "
                          f"({what})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``spec-check``, ``run-spec`` and ``rerun`` to ``app``."""

    commands = [
        ("spec-check", spec_check, ["miaudit spec check audit.toml",
                                    "miaudit spec check audit.yaml --format json"]),
        ("run-spec", run_spec_command, ["miaudit spec run audit.toml --out runs/a",
                                        "miaudit spec run audit.yaml --format json"]),
        ("rerun", rerun_command, [
            "miaudit spec rerun runs/digits",
            "miaudit spec rerun runs/digits --out runs/digits-again --format json"]),
    ]
    for name, command, examples in commands:
        app.command(name, epilog=examples_epilog(examples))(command)
