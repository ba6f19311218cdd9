"""The audit report: one self-contained HTML page per run folder.

The page needs nothing but itself: CSS in one ``<style>`` block, plots as inline SVG, no
script, no font file, no external link (a Content-Security-Policy forbids any). The layout
is the Jinja2 template ``templates/report.html.j2``, autoescaped: every value that comes
from the data or the summary (record IDs, names, warnings) is escaped; only the SVG plots
are inserted as markup.

The content (verdict, key figures, threat model, records at risk, method and caveats) is
computed once by :func:`~miaudit.report.content.build_content`; :func:`render_html_from`
lays it out with the plots, and :mod:`miaudit.report.markdown` writes the same content as
Markdown.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from miaudit.report.content import EXPOSED_FPR, ReportContent, build_content, fpr_text
from miaudit.results.folder import load_run

if TYPE_CHECKING:  # numpy, pandas, scipy and jinja2 load on first use: the CLI starts fast
    import jinja2
    import pandas as pd

#: The page's template (package data under ``miaudit/report/templates``).
TEMPLATE = "report.html.j2"


class Figure(NamedTuple):
    """One plot of the page: its inline SVG (trusted markup, drawn by
    :mod:`miaudit.report.plots`) and its caption (plain text, escaped)."""

    svg: str
    caption: str


@functools.cache
def environment() -> jinja2.Environment:
    """The page's template environment (built once): autoescaped, ``StrictUndefined``,
    the figure formatters as filters."""
    from miaudit.report.templating import new_environment
    from miaudit.report.terminal import knowledge_text

    env = new_environment()
    env.filters["knowledge"] = knowledge_text
    return env


def _plots(c: ReportContent) -> list[Figure]:
    """The figures of the first exposure: ROC curves (all, and each with its band), score
    histograms, TPR per class."""
    import numpy as np

    from miaudit.metrics import needed_non_members
    from miaudit.report import plots

    s = c.scores
    out: list[Figure] = []
    if "is_member" not in s.columns:
        return out
    alpha = c.summary.get("settings", {}).get("alpha", 0.05)
    curves = {}
    for name in c.summary["attacks"]:
        if name not in s.columns:
            continue
        rows = s[s[name].notna()]
        member = rows["is_member"].to_numpy(bool)
        if member.all() or not member.any():
            continue
        curves[name] = plots.roc_points(rows[name].to_numpy(np.float64), member, alpha=alpha)
    if not curves:
        return out
    pooled = (f", pooled over {s['target'].nunique()} targets"
              if "target" in s.columns and s["target"].nunique() > 1 else "")
    out.append(Figure(plots.roc_svg(curves, strongest=c.verdict.attack),
                      f"ROC curves under exposure '{c.exposure}'{pooled}, log-log axes; "
                      f"dashed: random guess (TPR = FPR). The strongest attack "
                      f"({c.verdict.attack}) is drawn thicker with its {c.confidence}% "
                      "Clopper-Pearson band on the TPR. Curves start at one false positive; "
                      "a TPR of 0 is drawn at the bottom edge."))
    out.append(Figure(plots.roc_bands_svg(curves, alpha=alpha),
                      f"Each attack's ROC curve with its {c.confidence}% Clopper-Pearson "
                      "band on the TPR at each FPR (the band does not include the "
                      "uncertainty of the FPR)."))
    panels = {}
    loss = "lm-loss" if c.is_lm else "loss"
    for name in (c.verdict.attack, loss):
        if name in curves and name not in panels:
            rows = s[s[name].notna()]
            panels[name] = (rows[name].to_numpy(np.float64), rows["is_member"].to_numpy(bool))
    if panels:
        out.append(Figure(plots.histograms_svg(panels),
                          "Score distributions of members and non-members (strongest attack"
                          + (" and LOSS" if len(panels) > 1 else "") + "); where they "
                          "separate, membership leaks. The outer 0.5% of scores on each side "
                          "are counted in the outer bins."))
    best = c.verdict.attack
    n_out = int((~s["is_member"].astype(bool)).sum())
    if ("label" in s.columns and best in curves
            and n_out >= needed_non_members(EXPOSED_FPR)):
        rows = s[s[best].notna()]
        table, overall = plots.per_class_tpr(rows[best].to_numpy(np.float64),
                                             rows["is_member"].to_numpy(bool),
                                             rows["label"].to_numpy(), fpr=EXPOSED_FPR,
                                             alpha=alpha)
        out.append(Figure(plots.per_class_svg(table, fpr=EXPOSED_FPR, overall=overall,
                                              attack=best),
                          f"Members of each class flagged by {best} at one global threshold "
                          f"(FPR {fpr_text(EXPOSED_FPR)} over all records), with "
                          f"{c.confidence}% Clopper-Pearson intervals: classes above the "
                          "line are more exposed than the average member."))
    return out


def _exposures_figure(c: ReportContent) -> Figure | None:
    """The chart of the exposure comparison (None when the run compares none)."""
    from miaudit.report import plots

    section = c.summary.get("exposures")
    if not section or not section.get("table"):
        return None
    key = _comparison_fpr(section["table"], c.fprs)
    return Figure(plots.exposures_svg(section["table"], fpr_key=key),
                  f"The strongest attack under each exposure: AUC and TPR at {fpr_text(key)} "
                  f"FPR with {c.confidence}% intervals; dashed lines: a random guess.")


def _comparison_fpr(rows: list[dict], fprs: list[str]) -> str:
    """The FPR level of the exposure chart: 0.1% where any exposure measures it, else the
    lowest level measured, else the first."""
    def measured(f: str) -> bool:
        return any((r.get("tpr_at_fpr") or {}).get(f) is not None for r in rows)

    preferred = [f for f in fprs if float(f) == 0.001 and measured(f)]
    if preferred:
        return preferred[0]
    return next((f for f in sorted(fprs, key=float) if measured(f)), fprs[0])


def _sweep_figure(c: ReportContent) -> Figure | None:
    """The privacy-utility chart (None without a sweep)."""
    from miaudit.report import plots

    sw = c.sweep
    if not sw:
        return None
    svg = plots.sweep_svg(sw["rows"], parameter=sw["parameter"], tpr_label=sw["tpr_label"])
    return Figure(svg, f"Each setting of {sw['parameter']}: test accuracy against "
                       f"{sw['tpr_label']} (left), and AUC and accuracy by setting (right).")


def _toc(c: ReportContent) -> list[tuple[str, str]]:
    """The sections the page has, as (element id, label) for its contents line."""
    s = c.summary
    toc = [("verdict", "Verdict"), ("attacks", "Attacks"), ("plots", "Plots")]
    if s.get("exposures"):
        toc.append(("exposures", "Exposures"))
    if c.sweep:
        toc.append(("sweep", "Privacy-utility"))
    toc.append(("records", "Records at risk"))
    if c.is_lm or s.get("blind_baseline") or s.get("canaries"):
        toc.append(("language-model", "Language model"))
    toc.append(("method", "Method and caveats"))
    return toc


def render_html_from(summary: dict, scores: pd.DataFrame, *, show_records: bool = False,
                     signals_info: str | None = None, source: str | None = None) -> str:
    """The report page of a summary and its score table (in memory).

    Parameters
    ----------
    summary : dict
        The content of ``summary.json`` (``AuditResult.summary()``).
    scores : pandas.DataFrame
        The content of ``scores.parquet`` (``AuditResult.scores``).
    show_records : bool, default False
        Show the raw content of the records at risk where the score table stores it.
    signals_info, source : str, optional
        A line on ``signals.npz`` and the run folder's name, for the method and footer.

    Returns
    -------
    str
        One self-contained HTML document: no script, no external resource.
    """
    from miaudit.report.templating import context

    c = build_content(summary, scores, show_records=show_records, signals_info=signals_info,
                      source=source)
    d, t = c.summary.get("data", {}), c.summary.get("target", {})
    described = [(name, m) for name, m in c.summary["attacks"].items()
                 if m.get("description") or m.get("reference")]
    return environment().get_template(TEMPLATE).render(
        context(c),
        title=f"Membership-inference audit: {d.get('name', '?')}, {t.get('model', '?')}",
        toc=_toc(c), figures=_plots(c), exposures_figure=_exposures_figure(c),
        sweep_figure=_sweep_figure(c), described=described,
    )


def render_html(run_dir: str | os.PathLike, *, show_records: bool = False) -> str:
    """The report page of a run folder (``summary.json``, ``scores.parquet``,
    ``signals.npz``); see :func:`render_html_from`.

    Example
    -------
    >>> import miaudit                                             # doctest: +SKIP
    >>> miaudit.audit(data="wine", model="logistic").save("runs/w")  # doctest: +SKIP
    >>> "<svg" in render_html("runs/w")                            # doctest: +SKIP
    True
    """
    run = load_run(run_dir, signals=True)
    summary, scores, info = run.summary, run.scores, run.signals
    return render_html_from(summary, scores, show_records=show_records, signals_info=info,
                            source=Path(run_dir).resolve().name)
