"""The audit report as Markdown: the verdict and every table of the HTML page, without the
plots (they are in ``report.html``).

The layout is the Jinja2 template ``templates/report.md.j2``. Autoescape is off and every
value goes through :func:`md_escape` instead (the environment's ``finalize``): values from
the data are HTML-escaped (a Markdown viewer renders raw HTML) and their Markdown syntax
characters are backslash-escaped, so a record ID stays text.
"""

from __future__ import annotations

import functools
import os
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miaudit.report.content import build_content
from miaudit.results.folder import load_run

if TYPE_CHECKING:  # pandas and jinja2 load on first use: the CLI starts fast
    import jinja2
    import pandas as pd

#: The Markdown report's template (package data under ``miaudit/report/templates``).
TEMPLATE = "report.md.j2"

#: Characters with a meaning in Markdown (CommonMark and GitHub tables), backslash-escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~!$])")


def md_escape(value: Any) -> str:
    """One value as inert Markdown text: HTML-escaped, syntax characters backslash-escaped,
    on one line.

    >>> md_escape("<script>a|b</script>")
    '&lt;script&gt;a\\\\|b&lt;/script&gt;'
    """
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", escape(text, quote=False))


class MarkdownText(str):
    """Markdown that is safe as it is (built from escaped or verbatim-safe parts): the
    template environment's finalize passes it through unescaped."""

    __slots__ = ()


def md_finalize(value: Any) -> str:
    """What the Markdown template writes for ``{{ value }}``: :func:`md_escape` of it, or the
    value itself when it is :class:`MarkdownText`."""
    return value if isinstance(value, MarkdownText) else md_escape(value)


def md_code(value: Any) -> MarkdownText:
    """A value as a code span (`` `value` ``, shown verbatim); escaped text instead when the
    value holds a backtick or a line break, which would end the span."""
    text = str(value)
    if "`" in text or "\n" in text or "\r" in text:
        return MarkdownText(md_escape(text))
    return MarkdownText(f"`{text}`")


@functools.cache
def environment() -> jinja2.Environment:
    """The Markdown template environment (built once): autoescape off, every value through
    :func:`md_finalize`, ``StrictUndefined``, the figure formatters and ``code`` as
    filters."""
    from miaudit.report.templating import new_environment

    env = new_environment(finalize=md_finalize)
    env.filters["code"] = md_code
    return env


def render_markdown_from(summary: dict, scores: pd.DataFrame, *, show_records: bool = False,
                         signals_info: str | None = None, source: str | None = None) -> str:
    """The report of a summary and its score table as Markdown (the tables and verdict of
    :func:`~miaudit.report.html.render_html_from`; the plots are in ``report.html``)."""
    from miaudit.report.templating import context

    c = build_content(summary, scores, show_records=show_records, signals_info=signals_info,
                      source=source)
    return environment().get_template(TEMPLATE).render(context(c))


def render_markdown(run_dir: str | os.PathLike, *, show_records: bool = False) -> str:
    """The Markdown report of a run folder; see :func:`render_markdown_from`."""
    run = load_run(run_dir, signals=True)
    summary, scores, info = run.summary, run.scores, run.signals
    return render_markdown_from(summary, scores, show_records=show_records, signals_info=info,
                                source=Path(run_dir).resolve().name)
