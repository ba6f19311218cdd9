"""Writing a run folder's report file (HTML or Markdown)."""

from __future__ import annotations

import os
from pathlib import Path

from miaudit.errors import ConfigError
from miaudit.report.html import render_html
from miaudit.report.markdown import render_markdown
from miaudit.results.folder import write_text_file

__all__ = ["write_report"]


def write_report(run_dir: str | os.PathLike, *, format: str = "html",
                 show_records: bool = False, out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` (or ``report.md``) into the run folder, atomically.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``miaudit run`` / ``AuditResult.save``.
    format : {"html", "md"}, default "html"
    show_records : bool, default False
        Show raw record content where the run folder stores it.
    out : path, optional
        Write here instead of ``run_dir / "report.<format>"``.

    Returns
    -------
    Path
        The file written.
    """
    if format not in ("html", "md"):
        raise ConfigError(f"The report format {format!r} is unknown; use html or md.")
    if format == "html":
        text = render_html(run_dir, show_records=show_records)
    else:
        text = render_markdown(run_dir, show_records=show_records)
    return write_text_file(Path(out) if out is not None else Path(run_dir) / f"report.{format}",
                           text)
