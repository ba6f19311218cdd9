"""Reports: the terminal summary (and, later, HTML)."""

from miaudit.report.terminal import exposures_table, print_exposures, print_summary, summary_table

__all__ = ["exposures_table", "print_exposures", "print_summary", "summary_table"]
