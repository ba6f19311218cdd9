"""The audit report as Markdown: the verdict and every table of the HTML page, without the
plots (they are in ``report.html``).

Values from the data are HTML-escaped (a Markdown viewer renders raw HTML) and their
Markdown syntax characters are backslash-escaped, so a record ID stays text.
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from miaudit.report.content import (
    ReportContent,
    build_content,
    format_figure,
    format_interval,
    fpr_text,
    raw_values_note,
)
from miaudit.results.folder import load_run

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


def _fig(value: float | None, ci, kind: str) -> str:
    text = format_figure(value, kind)
    return f"{text} {format_interval(ci, kind)}" if ci else text


def _table(head: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] * len(head)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _attacks(c: ReportContent) -> str:
    head = ["attack", "AUC", *[f"TPR at {fpr_text(f)} FPR" for f in c.fprs], "bal. acc.",
            "advantage", "eps lower bound"]
    rows = []
    for name, m in c.summary["attacks"].items():
        label = md_escape(name)
        if name == c.verdict.attack:
            label = f"**{label}** (strongest)"
        rows.append([label, md_escape(_fig(m["auc"], m.get("auc_ci"), "auc")),
                     *[md_escape(_fig(m["tpr_at_fpr"].get(f),
                                      (m.get("tpr_at_fpr_ci") or {}).get(f), "pct"))
                       for f in c.fprs],
                     md_escape(format_figure(m.get("balanced_accuracy"), "acc")),
                     md_escape(format_figure(m.get("advantage"), "acc")),
                     md_escape(format_figure(m.get("epsilon_lower_bound"), "eps"))])
    return _table(head, rows, ["l"] + ["r"] * (len(head) - 1))


def _exposures(c: ReportContent) -> list[str]:
    section = c.summary.get("exposures")
    if not section or not section.get("table"):
        return []
    head = ["exposure", "strongest attack", "AUC", *[f"TPR at {fpr_text(f)} FPR" for f in c.fprs],
            "test acc.", "members exposed", "queries"]
    rows = []
    for r in section["table"]:
        rows.append([md_escape(r["exposure"]), md_escape(r.get("strongest_attack", "")),
                     md_escape(_fig(r.get("auc"), r.get("auc_ci"), "auc")),
                     *[md_escape(_fig((r.get("tpr_at_fpr") or {}).get(f),
                                      (r.get("tpr_at_fpr_ci") or {}).get(f), "pct"))
                       for f in c.fprs],
                     md_escape(format_figure(r.get("test_accuracy"), "acc")),
                     md_escape(f"{r.get('members_exposed', '?')}/{r.get('members', '?')}"),
                     md_escape(format_figure(r.get("queries_to_target"), "int"))])
    out = ["## Exposure settings compared", "",
           md_escape(f"{section.get('criterion', '')}. {section.get('utility_note', '')}"), "",
           _table(head, rows, ["l", "l"] + ["r"] * (len(head) - 2)), "",
           md_escape(section.get("risk_note", "")), ""]
    every = section.get("exposed_under_every_exposure") or {}
    if every:
        ids = ", ".join(str(x.get("record_id")) for x in every.get("examples", []))
        out += [f"**Exposed under every exposure:** {md_escape(every.get('count', 0))} "
                f"member(s){': ' + md_escape(ids) if ids else ''}", ""]
    return out


def _sweep(c: ReportContent) -> list[str]:
    sw = c.sweep
    if not sw:
        return []
    rows = [[md_escape(r.get("value")), md_escape(format_figure(r.get("test_accuracy"), "acc")),
             md_escape(_fig(r.get("auc"), r.get("auc_ci"), "auc")),
             md_escape(format_figure(r.get("tpr"), "pct"))] for r in sw["rows"]]
    return ["## Privacy-utility trade-off", "",
            _table([md_escape(sw["parameter"]), "test acc.", "AUC", md_escape(sw["tpr_label"])],
                   rows, ["l", "r", "r", "r"]), ""]


def _records(c: ReportContent) -> list[str]:
    out = ["## Records at risk", ""]
    if c.records_note:
        out += [md_escape(c.records_note), ""]
    if c.records is None or not len(c.records):
        return [*out, "No per-record scores for the strongest attack.", ""]
    many = c.records["target"].nunique() > 1 or c.summary.get("target", {}).get("targets")
    raw = c.raw_columns if c.show_records else []
    head = ["#", "record ID", *(["target"] if many else []), "fingerprint", "risk",
            "flagged at FPR", *raw]
    rows = []
    for i, r in enumerate(c.records.to_dict("records"), 1):
        fp = r.get("fingerprint")
        fp_text = str(fp)[:12] if isinstance(fp, str) and fp else "none"
        rows.append([str(i), md_escape(r["record_id"]),
                     *([md_escape(r["target"])] if many else []), md_escape(fp_text),
                     md_escape(format_figure(r["risk"], "risk")),
                     md_escape(format_figure(1 - r["risk"], "fpr")),
                     *[md_escape(r.get(col, "")) for col in raw]])
    align = ["r", "l", *(["r"] if many else []), "l", "r", "r", *["l"] * len(raw)]
    return [*out, _table(head, rows, align), "", md_escape(raw_values_note(c)), ""]


def _lm(c: ReportContent) -> list[str]:
    blind = c.summary.get("blind_baseline")
    canaries = c.summary.get("canaries")
    if not blind and not canaries:
        return []
    out = ["## Language-model checks", ""]
    if blind:
        out += ["### Blind baseline (texts only, no model)", "",
                _table(["classifier", "AUC"],
                       [["blind baseline", md_escape(_fig(blind.get("auc"), blind.get("auc_ci"),
                                                          "auc"))],
                        ["best attack", md_escape(format_figure(blind.get("best_attack_auc")))]],
                       ["l", "r"]), ""]
    if canaries:
        rows = [[md_escape(r.get("secret", "")), md_escape(r.get("repetitions")),
                 _bits(r.get("exposure")), _bits(r.get("exposure_sampled")),
                 _bits(r.get("max_exposure"))] for r in canaries]
        out += ["### Canary exposure", "",
                _table(["canary", "copies", "exposure (bits)", "sampled estimate", "maximum"],
                       rows, ["l", "r", "r", "r", "r"]), ""]
    return out


def _bits(v: float | None) -> str:
    return "n/a" if v is None else md_escape(f"{float(v):.1f}")


def render_markdown_from(summary: dict, scores: pd.DataFrame, *, show_records: bool = False,
                         signals_info: str | None = None, source: str | None = None) -> str:
    """The report of a summary and its score table as Markdown (the tables and verdict of
    :func:`~miaudit.report.html.render_html_from`; the plots are in ``report.html``)."""
    c = build_content(summary, scores, show_records=show_records, signals_info=signals_info,
                      source=source)
    s = c.summary
    d, t = s.get("data", {}), s.get("target", {})
    v = c.verdict
    out = ["# Membership-inference audit", "",
           f"{md_escape(d.get('name', '?'))} · {md_escape(t.get('description') or t.get('model'))}"
           f" · exposure {md_escape(c.exposure)}", ""]
    blind = s.get("blind_baseline") or {}
    if blind.get("warning"):
        out += [f"> **WARNING: the attacks may not measure memorisation.** "
                f"{md_escape(blind['warning'])}", ""]
    out += [f"**{md_escape(v.label)}.** {md_escape(v.sentence)}", "",
            "Plots (ROC curves, score histograms, TPR per class"
            + (", exposure comparison" if s.get("exposures") else "")
            + (", privacy-utility" if c.sweep else "") + ") are in report.html.", ""]
    if c.key_figures:
        out += [f"## Key figures of the strongest attack ({md_escape(v.attack)})", "",
                _table(["figure", f"value [{c.confidence}% interval]", "meaning"],
                       [[md_escape(n), md_escape(f"{val} {ci}".strip()), md_escape(m)]
                        for n, val, ci, m in c.key_figures], ["l", "r", "l"]), ""]
    out += ["## Data and model", ""]
    out += [f"- **{md_escape(label)}:** " + (f"`{value}`" if mono and "`" not in value
                                              else md_escape(value))
            for label, value, mono in c.identity]
    out += ["", "## Threat model", "", *[f"- {md_escape(i)}" for i in c.threat], ""]
    out += [f"## Every attack under exposure {md_escape(c.exposure)}", "",
            f"{c.confidence}% intervals in brackets; n/a: not measurable.", "",
            _attacks(c), ""]
    out += _exposures(c)
    out += _sweep(c)
    out += _records(c)
    out += _lm(c)
    out += ["## Method and caveats", "", *[f"- {md_escape(i)}" for i in c.method], ""]
    if c.undefined:
        out += ["### Not measurable at this sample size", "",
                *[f"- {md_escape(reason)}: {md_escape(figs)} ({md_escape(who)})"
                  for reason, (figs, who) in c.undefined], ""]
    out += ["### Warnings of the run", ""]
    out += [f"- {md_escape(w)}" for w in c.warnings] if c.warnings else ["None."]
    out += ["", "---", "",
            f"Generated by miaudit {md_escape(s.get('miaudit_version', '?'))}"
            + (f" from the run folder {md_escape(c.source)}" if c.source else "") + "."]
    return "\n".join(out) + "\n"


def render_markdown(run_dir: str | os.PathLike, *, show_records: bool = False) -> str:
    """The Markdown report of a run folder; see :func:`render_markdown_from`."""
    run = load_run(run_dir, signals=True)
    summary, scores, info = run.summary, run.scores, run.signals
    return render_markdown_from(summary, scores, show_records=show_records, signals_info=info,
                                source=Path(run_dir).resolve().name)
