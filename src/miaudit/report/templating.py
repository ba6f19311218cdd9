"""The Jinja2 side of the reports: the template environment over ``report/templates`` with
the figure formatters of :mod:`miaudit.report.content` as filters, and the table rows both
templates lay out.

:mod:`miaudit.report.html` and :mod:`miaudit.report.markdown` import this module when they
render, never at import time: jinja2 loads on first use and the command line starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jinja2

from miaudit.report.content import (
    ReportContent,
    format_figure,
    format_interval,
    fpr_text,
    raw_values_note,
)

if TYPE_CHECKING:
    import pandas as pd

#: The package and folder the templates are loaded from (package data of the wheel).
TEMPLATE_PACKAGE, TEMPLATE_FOLDER = "miaudit.report", "templates"


def bits(value: float | None) -> str:
    """An exposure in bits with 1 decimal, ``n/a`` for None."""
    return "n/a" if value is None else f"{float(value):.1f}"


def rank(value: float | None) -> str:
    """A rank estimate with thousands separators, ``n/a`` for None."""
    return "n/a" if value is None else f"{float(value):,.0f}"


def capital(text: str) -> str:
    """The text with its first letter upper-cased (the rest as it is)."""
    return text[:1].upper() + text[1:]


def figure_with_interval(value: float | None, ci: Any, kind: str = "auc") -> str:
    """A figure followed by its interval (``0.964 [0.951, 0.977]``), as one text."""
    text = format_figure(value, kind)
    return f"{text} {format_interval(ci, kind)}" if ci else text


#: The formatters every template uses (one rounding rule for the page and the Markdown).
FILTERS: dict[str, Callable[..., str]] = {
    "figure": format_figure,
    "interval": format_interval,
    "figure_ci": figure_with_interval,
    "fpr_text": fpr_text,
    "bits": bits,
    "rank": rank,
    "capital": capital,
}


def new_environment(*, finalize: Callable[[Any], Any] | None = None) -> jinja2.Environment:
    """A template environment over ``miaudit/report/templates``.

    Without ``finalize`` (the HTML page), every ``{{ value }}`` of an ``.html.j2``
    template is HTML-escaped (autoescape) unless marked safe; with it (the Markdown, whose
    escaper it is), autoescape is off and every value goes through ``finalize``. An
    undefined name or key is an error (``StrictUndefined``), never an empty string.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_FOLDER),
        autoescape=(False if finalize is not None else
                    jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                             default_for_string=True, default=True)),
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


# -- what both templates lay out -------------------------------------------------------------

class RecordRow(NamedTuple):
    """One member of the records-at-risk table (plain, unescaped values)."""

    record_id: Any
    target: Any
    fingerprint: str  # the first 12 hex digits, or "none"
    risk: float
    raw: list[Any]  # the raw-content cells, shown on request only
    p_member: float | None = None  # the privacy risk score, when the run has it


def records_view(c: ReportContent) -> dict[str, Any] | None:
    """The records-at-risk table: ``many`` (a target column), ``raw`` (raw-content
    columns shown), ``heads`` and ``rows``; None when there are no per-record scores."""
    records: pd.DataFrame | None = c.records
    if records is None or not len(records):
        return None
    many = bool(records["target"].nunique() > 1 or c.summary.get("target", {}).get("targets"))
    raw = c.raw_columns if c.show_records else []
    rows = []
    for r in records.to_dict("records"):
        fp = r.get("fingerprint")
        rows.append(RecordRow(r["record_id"], r["target"],
                              str(fp)[:12] if isinstance(fp, str) and fp else "none",
                              r["risk"], [r.get(col, "") for col in raw], r.get("p_member")))
    posterior = "p_member" in records.columns
    heads = ["#", "record ID", *(["target"] if many else []), "fingerprint", "risk",
             "flagged at FPR", *(["P(member)"] if posterior else []), *raw]
    note = raw_values_note(c)
    if posterior:
        note = (f"{note} P(member): the privacy risk score (Song & Mittal 2021), the "
                "probability that a record with this output and label is a member of such "
                "a model, from the reference models' outputs on records they were and were "
                "not trained on (prior 1/2).").strip()
    return {"many": many, "raw": raw, "heads": heads, "rows": rows, "posterior": posterior,
            "note": note}


def exposures_view(c: ReportContent) -> dict[str, Any] | None:
    """The exposure comparison: the summary's ``exposures`` section, the IDs exposed
    under every exposure and each setting's most exposed records as one text ("ID
    (risk), ..."); None when the run compares no exposures."""
    section = c.summary.get("exposures")
    if not section or not section.get("table"):
        return None
    every = section.get("exposed_under_every_exposure") or {}
    ids = ", ".join(str(x.get("record_id")) for x in every.get("examples", []))
    per = [(name, ", ".join(f"{r.get('record_id')} ({format_figure(r.get('risk'), 'risk')})"
                            for r in recs[:5]))
           for name, recs in (section.get("records_at_risk") or {}).items()]
    return {"section": section, "table": section["table"], "every": every, "ids": ids,
            "per_setting": per}


def context(c: ReportContent) -> dict[str, Any]:
    """The names both templates use: the content ``c``, the summary ``s`` and its
    ``data`` (``d``) and ``target`` (``t``) sections, the verdict ``v``, the language-model
    checks (``blind``, ``canaries``, ``extraction``), the records and the exposure
    comparison."""
    s = c.summary
    return {"c": c, "s": s, "d": s.get("data", {}), "t": s.get("target", {}),
            "v": c.verdict, "blind": s.get("blind_baseline") or {},
            "canaries": s.get("canaries") or [], "extraction": s.get("extraction") or {},
            "records": records_view(c),
            "exposures": exposures_view(c)}
