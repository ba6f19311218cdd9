"""The ``report`` command: the HTML or Markdown report of a run folder."""

# No "from __future__ import annotations": typer reads the commands' annotations.
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from miaudit.cli.common import err_console, friendly, out_console, run_folder

__all__ = ["register"]


class ReportFormat(StrEnum):
    html = "html"
    md = "md"


@friendly
def report(
    run_dir: Annotated[str, typer.Argument(
        help="A run folder written by 'miaudit run' (summary.json, scores.parquet), or "
        "a run ID, with a registry.", show_default=False)],
    format: Annotated[ReportFormat, typer.Option(
        "--format", help="html: one self-contained page with plots; md: the same "
        "tables and verdict as Markdown.")] = ReportFormat.html,
    show_records: Annotated[bool, typer.Option(
        "--show-records", help="Show the raw content of the records at risk where the "
        "run folder stores it (IDs and fingerprints are always shown).")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="File to write; default: report.html / report.md in RUN_DIR.")
    ] = None,
) -> None:
    """Write the audit report of a run folder: verdict, key figures with intervals,
    plots, records at risk, method and caveats."""
    from miaudit.report.files import write_report

    path = write_report(run_folder(run_dir), format=format.value,
                        show_records=show_records, out=out)
    out_console.print(str(path), highlight=False, soft_wrap=True, markup=False)
    err_console.print(f"[dim]report written ({path.stat().st_size:,} bytes)[/]")


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to a typer app (the ``miaudit`` command line)."""

    app.command(
        "report",
        epilog=("Examples:\n\n"
                "  miaudit report runs/digits\n\n"
                "  miaudit report runs/digits --format md\n\n"
                "  miaudit report runs/digits --out /tmp/audit.html"),
    )(report)
