"""The audit report: one self-contained HTML page per run folder.

The page needs nothing but itself: CSS in one ``<style>`` block, plots as inline SVG, no
script, no font file, no external link (a Content-Security-Policy forbids any). Every value
that comes from the data or the summary (record IDs, names, warnings) is escaped.

The content (verdict, key figures, threat model, records at risk, method and caveats) is
computed once by :func:`~miaudit.report.content.build_content`; :func:`render_html_from`
lays it out with the plots, and :mod:`miaudit.report.markdown` writes the same content as
Markdown.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miaudit.report.content import (
    EXPOSED_FPR,
    ReportContent,
    build_content,
    format_figure,
    format_interval,
    fpr_text,
    raw_values_note,
)
from miaudit.results.folder import load_run

if TYPE_CHECKING:  # numpy, pandas and scipy load on first use: the CLI starts fast
    import pandas as pd

# -- HTML ----------------------------------------------------------------------------------

_CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --soft: #f6f8fa;
  --high: #b42318; --moderate: #b54708; --low: #1d4ed8; --none: #027a48; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45; font-size: 15px;
  font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.55em; margin: 0 0 2px; }
h2 { font-size: 1.2em; border-bottom: 1px solid var(--line); padding-bottom: 4px;
  margin: 2.2em 0 .6em; }
h3 { font-size: 1.02em; margin: 1.4em 0 .4em; }
p, ul { margin: .5em 0; }
li { margin: .2em 0; }
.sub { color: var(--muted); margin: 0; }
.verdict { border-left: 6px solid var(--none); background: var(--soft); padding: 12px 16px;
  margin: 18px 0 8px; border-radius: 4px; }
.verdict .badge { display: inline-block; color: #fff; background: var(--none);
  font-weight: 700; font-size: .78em; letter-spacing: .05em; text-transform: uppercase;
  padding: 2px 9px; border-radius: 10px; }
.verdict.high { border-color: var(--high); } .verdict.high .badge { background: var(--high); }
.verdict.moderate { border-color: var(--moderate); }
.verdict.moderate .badge { background: var(--moderate); }
.verdict.low { border-color: var(--low); } .verdict.low .badge { background: var(--low); }
.headline { font-size: 1.18em; margin: 8px 0 2px; }
.alert { border: 2px solid var(--high); background: #fef3f2; padding: 10px 16px;
  border-radius: 4px; margin: 14px 0; }
.alert strong { color: var(--high); }
table { border-collapse: collapse; min-width: 50%; font-size: .88em; margin: 6px 0 14px; }
#attack-table, #exposures-table, #key-figures-table, table.attacks-described { width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--line); background: var(--soft); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { display: block; color: var(--muted); font-size: .86em; }
tr.strongest > * { background: #fff7e0; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .88em; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px;
  margin: 8px 0; font-size: .93em; }
dl.facts dt { color: var(--muted); font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 32px; }
figure { margin: 14px 0 22px; }
figcaption { color: var(--muted); font-size: .88em; margin-top: 4px; }
svg.plot { display: block; width: 100%; height: auto; margin: 0 auto; }
svg.plot * { stroke-linejoin: round; stroke-linecap: butt; }
nav.toc { font-size: .9em; color: var(--muted); margin: 10px 0 0; }
nav.toc a { color: var(--low); text-decoration: none; margin-right: 12px; white-space: nowrap; }
.note { color: var(--muted); font-size: .9em; }
footer { margin-top: 3em; padding-top: 8px; border-top: 1px solid var(--line);
  color: var(--muted); font-size: .85em; }
@media (max-width: 760px) { .cols { grid-template-columns: 1fr; } main { padding: 14px; } }
@page { margin: 14mm; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  h2 { break-after: avoid; }
  figure, .verdict, .alert, tr, dl.facts { break-inside: avoid; }
  .cols { grid-template-columns: 1fr 1fr; }
  .verdict, .verdict .badge, .alert, tr.strongest > *, thead th {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

#: No network, no script, no frame: the page is inert whatever it contains.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _figure_cell(value: float | None, ci, kind: str, key: str) -> str:
    inner = _e(format_figure(value, kind))
    if ci:
        inner += f'<span class="ci">{_e(format_interval(ci, kind))}</span>'
    return f'<td class="num" data-figure="{_e(key)}">{inner}</td>'


def _attack_table(c: ReportContent) -> str:
    heads = ["attack", "AUC", *[f"TPR at {fpr_text(f)} FPR" for f in c.fprs],
             "bal. acc.", "advantage", "eps lower bound"]
    head = "".join(f'<th scope="col"{"" if i == 0 else " class=num"}>{_e(h)}</th>'
                   for i, h in enumerate(heads))
    rows = []
    for name, m in c.summary["attacks"].items():
        cls = ' class="strongest"' if name == c.verdict.attack else ""
        cells = [_figure_cell(m["auc"], m.get("auc_ci"), "auc", "auc")]
        for f in c.fprs:
            cells.append(_figure_cell(m["tpr_at_fpr"].get(f),
                                      (m.get("tpr_at_fpr_ci") or {}).get(f), "pct",
                                      f"tpr@{f}"))
        cells.append(_figure_cell(m.get("balanced_accuracy"), None, "acc",
                                  "balanced_accuracy"))
        cells.append(_figure_cell(m.get("advantage"), None, "acc", "advantage"))
        cells.append(_figure_cell(m.get("epsilon_lower_bound"), None, "eps",
                                  "epsilon_lower_bound"))
        rows.append(f'<tr data-attack="{_e(name)}"{cls}><th scope="row">{_e(name)}</th>'
                    + "".join(cells) + "</tr>")
    return (f'<table id="attack-table"><thead><tr>{head}</tr></thead><tbody>'
            + "\n".join(rows) + "</tbody></table>")


def _attack_list(c: ReportContent) -> str:
    from miaudit.report.terminal import knowledge_text

    items = []
    for name, m in c.summary["attacks"].items():
        desc = m.get("description")
        ref = m.get("reference")
        if desc or ref:
            items.append(f"<tr><th scope=row>{_e(name)}</th><td>{_e(desc or '')}</td>"
                         f"<td>{_e(knowledge_text(m.get('knowledge')))}</td>"
                         f"<td>{_e(ref or '')}</td></tr>")
    if not items:
        return ""
    return ('<table class="attacks-described"><thead><tr><th scope=col>attack</th>'
            '<th scope=col>score (higher = member)</th><th scope=col>attacker knows</th>'
            '<th scope=col>paper</th></tr></thead>'
            "<tbody>" + "".join(items) + "</tbody></table>")


def _facts(items: list[tuple[str, str, bool]]) -> str:
    parts = []
    for label, value, mono in items:
        v = f'<code>{_e(value)}</code>' if mono else _e(value)
        parts.append(f"<dt>{_e(label)}</dt><dd>{v}</dd>")
    return '<dl class="facts">' + "".join(parts) + "</dl>"


def _ul(items: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _plots(c: ReportContent) -> list[str]:
    """The figures of the first exposure: ROC curves (all, and each with its band), score
    histograms, TPR per class."""
    import numpy as np

    from miaudit.metrics import needed_non_members
    from miaudit.report import plots

    s = c.scores
    out: list[str] = []
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
    out.append(_figure(plots.roc_svg(curves, strongest=c.verdict.attack),
                       f"ROC curves under exposure '{c.exposure}'{pooled}, log-log axes; "
                       f"dashed: random guess (TPR = FPR). The strongest attack "
                       f"({c.verdict.attack}) is drawn thicker with its {c.confidence}% "
                       "Clopper-Pearson band on the TPR. Curves start at one false positive; "
                       "a TPR of 0 is drawn at the bottom edge."))
    out.append(_figure(plots.roc_bands_svg(curves, alpha=alpha),
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
        out.append(_figure(plots.histograms_svg(panels),
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
        out.append(_figure(plots.per_class_svg(table, fpr=EXPOSED_FPR, overall=overall,
                                               attack=best),
                           f"Members of each class flagged by {best} at one global threshold "
                           f"(FPR {fpr_text(EXPOSED_FPR)} over all records), with "
                           f"{c.confidence}% Clopper-Pearson intervals: classes above the "
                           "line are more exposed than the average member."))
    return out


def _records_html(c: ReportContent) -> str:
    parts = [f'<p>{_e(c.records_note)}</p>' if c.records_note else ""]
    if c.records is None or not len(c.records):
        parts.append('<p class="note">No per-record scores for the strongest attack.</p>')
        return "".join(parts)
    many = c.records["target"].nunique() > 1 or c.summary.get("target", {}).get("targets")
    raw = c.raw_columns if c.show_records else []
    heads = ["#", "record ID", *(["target"] if many else []), "fingerprint", "risk",
             "flagged at FPR", *raw]
    head = "".join(f"<th scope=col>{_e(h)}</th>" for h in heads)
    rows = []
    for i, r in enumerate(c.records.to_dict("records"), 1):
        fp = r.get("fingerprint")
        fp_text = str(fp)[:12] if isinstance(fp, str) and fp else "none"
        cells = [f'<td class="num">{i}</td>', f"<td><code>{_e(r['record_id'])}</code></td>"]
        if many:
            cells.append(f'<td class="num">{_e(r["target"])}</td>')
        cells += [f"<td><code>{_e(fp_text)}</code></td>",
                  f'<td class="num">{_e(format_figure(r["risk"], "risk"))}</td>',
                  f'<td class="num">{_e(format_figure(1 - r["risk"], "fpr"))}</td>']
        cells += [f"<td>{_e(r.get(col, ''))}</td>" for col in raw]
        rows.append(f'<tr class="record">{"".join(cells)}</tr>')
    parts.append(f'<table id="records-table"><thead><tr>{head}</tr></thead><tbody>'
                 + "\n".join(rows) + "</tbody></table>")
    parts.append(f'<p class="note">{_e(raw_values_note(c))}</p>')
    return "".join(parts)


def _exposures_html(c: ReportContent) -> str:
    from miaudit.report import plots

    section = c.summary.get("exposures")
    if not section or not section.get("table"):
        return ""
    fprs = c.fprs
    heads = ["exposure", "strongest attack", "AUC", *[f"TPR at {fpr_text(f)} FPR" for f in fprs],
             "test acc.", "members exposed", "queries"]
    head = "".join(f"<th scope=col>{_e(h)}</th>" for h in heads)
    rows = []
    for r in section["table"]:
        cells = [f'<th scope="row">{_e(r["exposure"])}<span class="ci">'
                 f'{_e(r.get("description", ""))}</span></th>',
                 f"<td>{_e(r.get('strongest_attack', ''))}</td>",
                 _figure_cell(r.get("auc"), r.get("auc_ci"), "auc", "auc")]
        for f in fprs:
            cells.append(_figure_cell((r.get("tpr_at_fpr") or {}).get(f),
                                      (r.get("tpr_at_fpr_ci") or {}).get(f), "pct", f"tpr@{f}"))
        cells.append(_figure_cell(r.get("test_accuracy"), None, "acc", "test_accuracy"))
        cells.append(f'<td class="num">{_e(r.get("members_exposed", "?"))}/'
                     f'{_e(r.get("members", "?"))}</td>')
        q = r.get("queries_to_target")
        cells.append(f'<td class="num">{_e(format_figure(q, "int"))}</td>')
        rows.append(f'<tr data-exposure="{_e(r["exposure"])}">' + "".join(cells) + "</tr>")
    key = _comparison_fpr(section["table"], fprs)
    parts = [
        '<section id="exposures"><h2>Exposure settings compared</h2>',
        f"<p>{_e(_capital(section.get('criterion', '')))}. "
        f"{_e(section.get('utility_note', ''))}</p>",
        f'<table id="exposures-table"><thead><tr>{head}</tr></thead><tbody>'
        + "\n".join(rows) + "</tbody></table>",
        _figure(plots.exposures_svg(section["table"], fpr_key=key),
                f"The strongest attack under each exposure: AUC and TPR at {fpr_text(key)} "
                f"FPR with {c.confidence}% intervals; dashed lines: a random guess."),
        f'<p class="note">{_e(section.get("risk_note", ""))}</p>',
    ]
    every = section.get("exposed_under_every_exposure") or {}
    if every:
        ids = ", ".join(str(x.get("record_id")) for x in every.get("examples", []))
        parts.append(f"<p><strong>Exposed under every exposure:</strong> "
                     f"{_e(every.get('count', 0))} member(s)"
                     + (f": <code>{_e(ids)}</code>" if ids else "") + "</p>")
    per = section.get("records_at_risk") or {}
    if per:
        items = []
        for name, recs in per.items():
            shown = ", ".join(f"{r.get('record_id')} ({format_figure(r.get('risk'), 'risk')})"
                              for r in recs[:5])
            items.append(f"<li><strong>{_e(name)}</strong>: <code>{_e(shown)}</code></li>")
        parts.append("<h3>Most exposed records under each setting (ID, risk)</h3><ul>"
                     + "".join(items) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _comparison_fpr(rows: list[dict], fprs: list[str]) -> str:
    """The FPR level of the exposure chart: 0.1% where any exposure measures it, else the
    lowest level measured, else the first."""
    def measured(f: str) -> bool:
        return any((r.get("tpr_at_fpr") or {}).get(f) is not None for r in rows)

    preferred = [f for f in fprs if float(f) == 0.001 and measured(f)]
    if preferred:
        return preferred[0]
    return next((f for f in sorted(fprs, key=float) if measured(f)), fprs[0])


def _sweep_html(c: ReportContent) -> str:
    from miaudit.report import plots

    sw = c.sweep
    if not sw:
        return ""
    head = "".join(f"<th scope=col>{_e(h)}</th>" for h in
                   (sw["parameter"], "test acc.", "AUC", sw["tpr_label"]))
    rows = "".join(
        f'<tr data-value="{_e(r.get("value"))}"><th scope=row>{_e(r.get("value"))}</th>'
        + _figure_cell(r.get("test_accuracy"), None, "acc", "test_accuracy")
        + _figure_cell(r.get("auc"), r.get("auc_ci"), "auc", "auc")
        + _figure_cell(r.get("tpr"), None, "pct", "tpr") + "</tr>"
        for r in sw["rows"])
    svg = plots.sweep_svg(sw["rows"], parameter=sw["parameter"], tpr_label=sw["tpr_label"])
    return ('<section id="sweep"><h2>Privacy-utility trade-off</h2>'
            f'<table id="sweep-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            "</table>"
            + _figure(svg, f"Each setting of {sw['parameter']}: test accuracy against "
                           f"{sw['tpr_label']} (left), and AUC and accuracy by setting "
                           "(right).")
            + "</section>")


def _lm_html(c: ReportContent) -> str:
    blind = c.summary.get("blind_baseline")
    canaries = c.summary.get("canaries")
    if not c.is_lm and not blind and not canaries:
        return ""
    parts = ['<section id="language-model"><h2>Language-model checks</h2>']
    if blind:
        parts.append(
            "<h3>Blind baseline (texts only, no model)</h3>"
            "<p>A model-free classifier cross-fitted to tell members from non-members from "
            "the text alone: when it does about as well as the attacks, the attacks measure "
            "a distribution shift between member and non-member texts, not memorisation.</p>"
            '<table id="blind-table"><thead><tr><th scope=col>classifier</th>'
            "<th scope=col class=num>AUC</th></tr></thead><tbody>"
            f"<tr><th scope=row>blind baseline</th>"
            f"{_figure_cell(blind.get('auc'), blind.get('auc_ci'), 'auc', 'blind_auc')}</tr>"
            f"<tr><th scope=row>best attack</th>"
            f"{_figure_cell(blind.get('best_attack_auc'), None, 'auc', 'best_attack_auc')}"
            "</tr></tbody></table>")
        if blind.get("features"):
            feats = blind["features"]
            text = ", ".join(map(str, feats)) if isinstance(feats, list) else str(feats)
            parts.append(f'<p class="note">Features: {_e(text)}</p>')
    if canaries:
        rows = []
        for r in canaries:
            copies = r.get("repetitions")
            rows.append(
                f"<tr><td><code>{_e(r.get('secret', ''))}</code></td>"
                f'<td class="num">{_e(copies)}</td>'
                f'<td class="num" data-figure="exposure">{_e(_bits(r.get("exposure")))}</td>'
                f'<td class="num">{_e(_bits(r.get("exposure_sampled")))}</td>'
                f'<td class="num">{_e(_bits(r.get("max_exposure")))}</td>'
                f'<td class="num">{_e(_rank(r.get("rank_estimate")))}</td></tr>')
        parts.append(
            "<h3>Canary exposure</h3><p>Secrets inserted into the training texts a given "
            "number of times; exposure = log2 of the number of possible secrets minus log2 "
            "of the canary's rank among them by the model's likelihood (Carlini et al. 2019)."
            " An exposure near the maximum means the model gives the secret away.</p>"
            '<table id="canary-table"><thead><tr><th scope=col>canary</th>'
            "<th scope=col class=num>copies</th><th scope=col class=num>exposure (bits)</th>"
            "<th scope=col class=num>sampled estimate</th><th scope=col class=num>maximum</th>"
            "<th scope=col class=num>rank estimate</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _bits(v: float | None) -> str:
    return "n/a" if v is None else f"{float(v):.1f}"


def _rank(v: float | None) -> str:
    return "n/a" if v is None else f"{float(v):,.0f}"


def _blind_alert(c: ReportContent) -> str:
    blind = c.summary.get("blind_baseline") or {}
    if not blind.get("warning"):
        return ""
    return ('<div class="alert" id="blind-warning" role="alert"><strong>Warning: the '
            "attacks may not measure memorisation.</strong> "
            f"{_e(blind['warning'])} (blind baseline AUC "
            f"{_e(format_figure(blind.get('auc')))} vs best attack "
            f"{_e(format_figure(blind.get('best_attack_auc')))}).</div>")


def _method_html(c: ReportContent) -> str:
    parts = ['<section id="method"><h2>Method and caveats</h2>', _ul(c.method)]
    if c.undefined:
        items = [f"{reason}: {figs} ({who})." for reason, (figs, who) in c.undefined]
        parts.append("<h3>Not measurable at this sample size</h3>"
                     "<p>Reported as n/a, never as 0:</p>" + _ul(items, "undefined"))
    parts.append("<h3>Warnings of the run</h3>")
    parts.append(_ul(c.warnings, "warnings") if c.warnings
                 else '<p class="note">None.</p>')
    parts.append("<h3>The attacks</h3>" + _attack_list(c))
    parts.append("</section>")
    return "".join(parts)


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
    c = build_content(summary, scores, show_records=show_records, signals_info=signals_info,
                      source=source)
    s = c.summary
    d, t = s.get("data", {}), s.get("target", {})
    title = f"Membership-inference audit: {d.get('name', '?')}, {t.get('model', '?')}"
    v = c.verdict
    key_rows = "".join(
        f"<tr><th scope=row>{_e(name)}</th><td class=num>{_e(val)}"
        + (f'<span class="ci">{_e(ci)}</span>' if ci else "")
        + f"</td><td class=note>{_e(meaning)}</td></tr>"
        for name, val, ci, meaning in c.key_figures)
    key_table = (f'<table id="key-figures-table"><thead><tr><th scope=col>figure '
                 f"({_e(v.attack)})</th><th scope=col class=num>value "
                 f"[{c.confidence}% interval]</th><th scope=col>meaning</th></tr></thead>"
                 f"<tbody>{key_rows}</tbody></table>") if c.key_figures else ""
    plots_html = "".join(_plots(c))
    toc = [("verdict", "Verdict"), ("attacks", "Attacks"), ("plots", "Plots")]
    if s.get("exposures"):
        toc.append(("exposures", "Exposures"))
    if c.sweep:
        toc.append(("sweep", "Privacy-utility"))
    toc.append(("records", "Records at risk"))
    if c.is_lm or s.get("blind_baseline") or s.get("canaries"):
        toc.append(("language-model", "Language model"))
    toc.append(("method", "Method and caveats"))
    nav = "".join(f'<a href="#{k}">{_e(label)}</a>' for k, label in toc)
    footer = (f"Generated by miaudit {_e(s.get('miaudit_version', '?'))}"
              + (f" from the run folder <code>{_e(c.source)}</code>" if c.source else "")
              + ". Self-contained page: no script, no external resource; print it or attach "
              "it as it is.")
    body = [
        "<header>",
        f"<h1>Membership-inference audit</h1><p class=sub>{_e(d.get('name', '?'))} &middot; "
        f"{_e(t.get('description') or t.get('model', '?'))} &middot; exposure "
        f"{_e(c.exposure)}</p>",
        f'<nav class="toc" aria-label="contents">{nav}</nav>',
        "</header>",
        _blind_alert(c),
        f'<section id="verdict" class="verdict {_e(v.level)}">'
        f'<span class="badge">{_e(v.label)}</span>'
        f'<p class="headline" id="headline">{_e(v.sentence)}</p></section>',
        '<section id="key-figures"><h2>Key figures of the strongest attack</h2>'
        f"{key_table}</section>",
        '<div class="cols"><section id="identity"><h2>Data and model</h2>'
        f"{_facts(c.identity)}</section>"
        '<section id="threat-model"><h2>Threat model</h2><p>What the attacker sees and '
        f"knows:</p>{_ul(c.threat)}</section></div>",
        f'<section id="attacks"><h2>Every attack under exposure {_e(c.exposure)}</h2>'
        f"<p class=note>{c.confidence}% intervals under each figure; n/a: not measurable "
        "(see Method and caveats). The strongest attack is highlighted.</p>"
        f"{_attack_table(c)}</section>",
        f'<section id="plots"><h2>Plots</h2>{plots_html or "<p class=note>No scores.</p>"}'
        "</section>",
        _exposures_html(c),
        _sweep_html(c),
        f'<section id="records"><h2>Records at risk</h2>{_records_html(c)}</section>',
        _lm_html(c),
        _method_html(c),
        f"<footer>{footer}</footer>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(part for part in body if part)
            + "\n</main>\n</body>\n</html>\n")


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
