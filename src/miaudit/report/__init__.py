"""Reports: the terminal summaries, the self-contained HTML page and its Markdown twin."""

from miaudit.report.terminal import exposures_table, print_exposures, print_summary, summary_table

__all__ = ["exposures_table", "print_exposures", "print_summary", "summary_table"]
