"""Reports: the terminal summary (and, later, HTML)."""

from miaudit.report.terminal import print_summary, summary_table

__all__ = ["print_summary", "summary_table"]
