"""The audit report: a self-contained HTML page (and its Markdown twin) per run folder."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import miaudit
from miaudit.cli.report import register
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.metrics import evaluate
from miaudit.report.content import format_figure, fpr_text, records_at_risk, verdict
from miaudit.report.files import write_report
from miaudit.report.html import render_html, render_html_from
from miaudit.report.markdown import md_escape, render_markdown, render_markdown_from
from miaudit.report.plots import per_class_tpr, roc_points

HOSTILE = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Page(HTMLParser):
    """The facts of a page the tests check: elements, attributes, cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.cells: dict[tuple[str, str, str], str] = {}  # (table row key, value) -> text
        self._row: tuple[str, str] | None = None
        self._cell: tuple[str, str, str] | None = None
        self._depth = 0
        self.text_parts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr":
            for key in ("data-attack", "data-exposure", "data-value"):
                if key in a:
                    self._row = (key, a[key])
        if tag == "td" and self._row and "data-figure" in a:
            self._cell = (*self._row, a["data-figure"])
            self.cells[self._cell] = ""
        if tag == "span" and self._cell:  # the interval below the figure
            self._cell = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._cell:
            self.cells[self._cell] += data

    @property
    def text(self) -> str:
        return " ".join(self.text_parts)

    def plots(self) -> dict[str, dict]:
        return {a["id"]: a for t, a in self.tags if t == "svg" and "plot" in a.get("class", "")}


def _quiet_audit(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        return miaudit.audit(**kwargs)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    result = _quiet_audit(data="digits", model="logistic", model_params={"epochs": 3},
                          references=2)
    return result.save(tmp_path_factory.mktemp("report") / "digits")


@pytest.fixture(scope="module")
def digits_page(digits_run) -> str:
    return render_html(digits_run)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    """Outputs whose most exposed member has a script tag as its record ID."""
    rng = np.random.default_rng(0)
    n = 240
    y = rng.integers(0, 3, n)
    member = np.arange(n) % 2 == 0
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += np.where(member, 1.0, 0.3)
    logits[0, y[0]] += 25.0  # record 0, a member, scores far above every non-member
    ids = np.array([HOSTILE, *[f"rec-{i}" for i in range(1, n)]])
    folder = tmp_path_factory.mktemp("hostile")
    np.savez(folder / "outputs.npz", logits=logits, y=y, is_member=member, ids=ids)
    result = _quiet_audit(outputs=folder / "outputs.npz", exposure="logits")
    return result.save(folder / "run")


@pytest.fixture(scope="module")
def exposures_run(tmp_path_factory) -> Path:
    result = _quiet_audit(data="wine", model="logistic", model_params={"epochs": 3},
                          exposure=["logits", "rounded:1", "top-k:1"])
    return result.save(tmp_path_factory.mktemp("exposures") / "wine")


def _lm_summary_and_scores() -> tuple[dict, pd.DataFrame]:
    """A hand-made language-model run (the layout of audit_lm's summary)."""
    rng = np.random.default_rng(1)
    n = 300
    member = np.arange(n) < n // 2
    scores = {"lm-loss": rng.normal(size=n) + 0.8 * member,
              "zlib": rng.normal(size=n) + 0.5 * member}
    entries = {}
    for name, s in scores.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MiauditWarning)
            entries[name] = {**evaluate(s, member).to_dict(), "description": f"{name} score",
                             "reference": "Carlini et al. 2021", "needs": []}
    summary = {
        "miaudit_version": miaudit.__version__, "task": "language model",
        "data": {"name": "notes <b>.jsonl", "n_records": n, "fingerprint": "ab" * 32,
                 "source": "notes.jsonl"},
        "target": {"model": "gpt2 recipe", "description": "tiny gpt2", "seed": 0,
                   "recipe": {"n_layer": 2}, "n_members": n // 2, "n_non_members": n // 2,
                   "member_mean_nll": 3.1, "non_member_mean_nll": 3.6},
        "exposure": "token log-probabilities",
        "attacks": entries,
        "blind_baseline": {"auc": 0.71, "auc_ci": [0.65, 0.77], "best_attack_auc": 0.72,
                           "features": ["word n-grams", "lengths"],
                           "warning": "The blind baseline reaches AUC 0.71 <i>without</i> the "
                                      "model: members and non-members differ in distribution."},
        "canaries": [{"secret": "my PIN is 4 8 1 9 3 7", "repetitions": r, "exposure": e,
                      "exposure_sampled": e, "exposure_fitted": e, "max_exposure": 19.9,
                      "rank_estimate": 2 ** (19.9 - e), "n_candidates": 2000, "exact": False,
                      "distribution": "skewnorm", "nll": 20.0}
                     for r, e in ((1, 2.5), (16, 14.2))],
        "settings": {"seed": 0, "alpha": 0.05, "prior": 0.5, "delta": 1e-5,
                     "fprs": [0.01, 0.001], "references": 0},
        "warnings": ["MiauditWarning: a warning with <tags> & ampersands"],
    }
    table = pd.DataFrame({"target": 0, "record_id": [f"doc-{i}" for i in range(n)],
                          "fingerprint": [f"{i:064x}" for i in range(n)], "is_member": member,
                          "n_tokens": 40, **scores})
    return summary, table


def _attack_rows(page: _Page, summary: dict) -> None:
    """Every attack figure of the summary is on the page with the report's rounding."""
    fprs = [str(float(f)) for f in summary["settings"]["fprs"]]
    for name, m in summary["attacks"].items():
        assert page.cells[("data-attack", name, "auc")].strip() == format_figure(m["auc"])
        for f in fprs:
            shown = page.cells[("data-attack", name, f"tpr@{f}")].strip()
            assert shown == format_figure(m["tpr_at_fpr"][f], "pct")
        eps = page.cells[("data-attack", name, "epsilon_lower_bound")].strip()
        assert eps == format_figure(m["epsilon_lower_bound"], "eps")


def _no_outside_references(page: _Page, text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<script|javascript:|@import|url\((?!#)", text, re.I)
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href", "action", "data", "poster", "srcset"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, key, value)
        assert tag not in ("script", "iframe", "object", "embed", "link", "img", "base")


# -- formatting and numbers --------------------------------------------------------------

def test_format_figure_one_rounding_rule():
    assert format_figure(0.96449) == "0.964"
    assert format_figure(0.2291, "pct") == "22.9%"
    assert format_figure(None, "pct") == "n/a"
    assert format_figure(float("nan")) == "n/a"
    assert format_figure(0.0011, "fpr") == "0.11%"
    assert format_figure(1.234, "eps") == "1.23"
    assert fpr_text("0.001") == "0.1%"
    with pytest.raises(ValueError):
        format_figure(0.5, "nope")


def test_roc_points_and_per_class_tpr_match_the_summary(digits_run):
    summary, scores = _summary(digits_run), pd.read_parquet(digits_run / "scores.parquet")
    name = verdict(summary).attack
    s, m = scores[name].to_numpy(), scores["is_member"].to_numpy(bool)
    p = roc_points(s, m)
    at = np.searchsorted(p.fpr, 0.01, side="right") - 1
    assert p.tpr[at] == pytest.approx(summary["attacks"][name]["tpr_at_fpr"]["0.01"])
    assert np.all(p.tpr_lo <= p.tpr) and np.all(p.tpr <= p.tpr_hi)
    table, overall = per_class_tpr(s, m, scores["label"].to_numpy(), fpr=0.01)
    assert overall == pytest.approx(summary["attacks"][name]["tpr_at_fpr"]["0.01"])
    assert table["caught"].sum() / table["n_members"].sum() == pytest.approx(overall)
    assert (table["tpr_lo"] <= table["tpr"]).all() and (table["tpr"] <= table["tpr_hi"]).all()


def test_verdict_names_strongest_attack_and_random_guess_ratio():
    e = {"auc": 0.96, "auc_ci": [0.95, 0.97], "tpr_at_fpr": {"0.01": 0.5, "0.001": 0.229},
         "tpr_at_fpr_ci": {"0.01": [0.45, 0.55], "0.001": [0.2, 0.26]}, "n_non_members": 5000}
    weak = {**e, "auc": 0.6, "tpr_at_fpr": {"0.01": 0.02, "0.001": 0.002}}
    summary = {"exposure": "logits", "attacks": {"lira-online": e, "loss": weak},
               "settings": {"fprs": [0.01, 0.001], "alpha": 0.05}}
    v = verdict(summary)
    assert (v.attack, v.fpr, v.level) == ("lira-online", "0.001", "high")
    assert v.sentence == ("Under exposure 'logits' the strongest attack (lira-online) "
                          "identifies 22.9% of members at a 0.1% false-positive rate, 229 times "
                          "a random guess (AUC 0.960).")
    noise = {"loss": {**weak, "auc": 0.51, "auc_ci": [0.48, 0.54],
                      "tpr_at_fpr": {"0.01": 0.012, "0.001": 0.0},
                      "tpr_at_fpr_ci": {"0.01": [0.005, 0.02], "0.001": [0.0, 0.004]}}}
    v = verdict({**summary, "attacks": noise})
    assert v.level == "none" and "within the uncertainty of a random guess" in v.sentence


# -- the page of a real run ----------------------------------------------------------------

def _summary(run: Path) -> dict:
    import json

    return json.loads((run / "summary.json").read_text())


def test_html_report_of_a_run_with_references(digits_run, digits_page):
    page = _Page(digits_page)
    summary = _summary(digits_run)
    assert set(page.plots()) == {"plot-roc", "plot-roc-bands", "plot-histograms",
                                 "plot-per-class"}
    for attrs in page.plots().values():
        assert attrs.get("role") == "img" and attrs.get("aria-label")
    _attack_rows(page, summary)
    v = verdict(summary)
    assert v.sentence in page.text and v.label in page.text
    assert summary["data"]["fingerprint"] in page.text
    assert f"miaudit {summary['miaudit_version']}" in page.text
    # every attack's not-measurable reasons are stated
    for m in summary["attacks"].values():
        for reason in m["undefined"].values():
            assert reason in page.text
    # the records at risk: IDs, 12-hex fingerprints, risk with 4 decimals, no raw values
    scores = pd.read_parquet(digits_run / "scores.parquet")
    top, exposed, members = records_at_risk(scores, v.attack)
    assert members == summary["target"]["n_members"]
    assert f"{exposed} of {members} members" in page.text
    for r in top.to_dict("records")[:5]:
        assert r["record_id"] in page.text and r["fingerprint"][:12] in page.text
        assert r["fingerprint"] not in page.text  # only the first 12 hex digits
    assert "Raw values not stored" in page.text
    assert "Threat model" in page.text and "2 reference models" in page.text
    _no_outside_references(page, digits_page)
    # ids inside the inline SVGs stay unique on the page
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))
    assert "<style>" in digits_page and "@media print" in digits_page


def test_records_show_the_privacy_risk_beside_the_rank_risk(digits_run, digits_page):
    """With references the run scores the privacy risk (Song & Mittal's posterior), and
    the records table shows it per record, in HTML and Markdown, equal to the stored
    score of that record under that target."""
    summary = _summary(digits_run)
    assert "privacy-risk" in summary["attacks"]
    scores = pd.read_parquet(digits_run / "scores.parquet")
    top, _, _ = records_at_risk(scores, verdict(summary).attack)
    assert "p_member" in top.columns
    md = render_markdown(digits_run)
    assert "P(member)" in digits_page and "| P(member) |" in md
    assert "privacy risk score (Song &amp; Mittal 2021)" in digits_page
    for r in top.to_dict("records")[:5]:
        stored = scores[(scores["record_id"] == r["record_id"])
                        & (scores["target"] == r["target"])]["privacy-risk"]
        assert r["p_member"] == pytest.approx(float(stored.iloc[0]))
        row = next(line for line in md.splitlines()
                   if line.startswith("| ") and f" {r['record_id']} " in line)
        assert format_figure(r["p_member"], "risk") in row


def test_markdown_report_holds_the_same_figures(digits_run):
    summary = _summary(digits_run)
    md = render_markdown(digits_run)
    fprs = [str(float(f)) for f in summary["settings"]["fprs"]]
    rows = {line.split("|")[1].strip().replace("\\-", "-"): line for line in md.splitlines()
            if line.startswith("| ")}
    for name, m in summary["attacks"].items():
        key = next(k for k in rows if k == name or k.startswith(f"**{name}**"))
        cells = [c.strip() for c in rows[key].split("|")[2:-1]]
        assert cells[0].startswith(format_figure(m["auc"]))
        for cell, f in zip(cells[1:], fprs, strict=False):
            assert cell.startswith(format_figure(m["tpr_at_fpr"][f], "pct"))
    assert md_escape(verdict(summary).sentence) in md
    assert "report.html" in md and "## Records at risk" in md


def test_write_report_writes_into_the_run_folder(digits_run, tmp_path):
    path = write_report(digits_run, format="md")
    assert path == digits_run / "report.md" and path.read_text().startswith("# Membership")
    out = write_report(digits_run, out=tmp_path / "r.html")
    assert out.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ConfigError, match="unknown; use html or md"):
        write_report(digits_run, format="pdf")
    with pytest.raises(ConfigError, match="not a miaudit run folder"):
        write_report(tmp_path)


# -- safety ----------------------------------------------------------------------------------

def test_hostile_record_id_is_escaped(hostile_run):
    text = render_html(hostile_run)
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = _Page(text)
    assert HOSTILE in page.text  # shown as text, among the records at risk
    assert {"plot-roc", "plot-histograms", "plot-per-class"} <= set(page.plots())
    assert "Raw values not stored" in page.text
    _no_outside_references(page, text)
    md = render_markdown(hostile_run)
    assert "<script" not in md.lower() and md_escape(HOSTILE) in md


def test_show_records_shows_stored_raw_values_only_when_asked():
    summary, scores = _lm_summary_and_scores()
    scores["text"] = [f"text <{i}>" for i in range(len(scores))]
    top = records_at_risk(scores, verdict(summary).attack)[0]["record_id"].iloc[0]
    hidden = _Page(render_html_from(summary, scores))
    shown = _Page(render_html_from(summary, scores, show_records=True))
    raw = scores.loc[scores["record_id"] == top, "text"].iloc[0]
    assert raw not in hidden.text and "--show-records" in hidden.text
    assert raw in shown.text



IMG = '"><img src=x onerror=1>'


def _hostile_lm_run() -> tuple[dict, pd.DataFrame]:
    """The hand-made LM run with markup in the record IDs, the raw texts, names, warnings
    and the run folder's name."""
    summary, scores = _lm_summary_and_scores()
    member = scores["is_member"].to_numpy(bool)
    scores["record_id"] = [(HOSTILE if i % 2 else IMG) + f" #{i}" if m else f"doc-{i}"
                           for i, m in enumerate(member)]
    scores["text"] = [f"<b onmouseover=x>{i}</b>" for i in range(len(scores))]
    summary["data"]["name"] = IMG
    summary["target"]["description"] = HOSTILE
    summary["warnings"] = [IMG, HOSTILE]
    return summary, scores


def test_hostile_record_ids_and_names_are_escaped_in_html_and_markdown():
    summary, scores = _hostile_lm_run()
    text = render_html_from(summary, scores, show_records=True, source=IMG)
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "<b " not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&#34;&gt;&lt;img src=x onerror=1&gt;" in text
    page = _Page(text)
    shown = [a for t, a in page.tags if t in ("script", "img", "b")]
    assert shown == []
    top = list(records_at_risk(scores, verdict(summary).attack)[0]["record_id"])
    assert any(HOSTILE in r for r in top) and any(IMG in r for r in top)
    assert all(r in page.text for r in top)  # shown as text
    assert "<b onmouseover=x>" in page.text  # the raw texts, asked for, as text
    _no_outside_references(page, text)
    md = render_markdown_from(summary, scores, show_records=True, source=IMG)
    assert "<script" not in md.lower() and "<img" not in md.lower() and "<b " not in md
    assert all(md_escape(r) in md for r in top)
    assert f"- {md_escape(IMG)}\n" in md  # the warnings
    assert md.endswith(f"from the run folder {md_escape(IMG)}.\n")


def test_html_environment_autoescapes_and_is_strict():
    import jinja2

    from miaudit.report import content
    from miaudit.report.html import TEMPLATE, environment

    env = environment()
    assert env is environment()  # built once
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape(TEMPLATE) is True
    assert env.from_string("{{ x }}").render(x=IMG) == "&#34;&gt;&lt;img src=x onerror=1&gt;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template(TEMPLATE).render({})
    # one formatter: the report's own figure functions are the templates' filters
    assert env.filters["figure"] is content.format_figure
    assert env.filters["interval"] is content.format_interval
    assert env.filters["fpr_text"] is content.fpr_text


def test_only_the_svg_plots_are_marked_safe():
    """The page template lets no value through unescaped but the plots; the Markdown
    template none at all."""
    templates = Path(miaudit.__file__).parent / "report" / "templates"
    page = (templates / "report.html.j2").read_text(encoding="utf-8")
    assert re.findall(r"\w+(?:\.\w+)*\s*\|\s*safe\b", page) == ["fig.svg|safe"]
    assert "autoescape" not in page  # no {% autoescape false %} block
    md = (templates / "report.md.j2").read_text(encoding="utf-8")
    assert not re.search(r"\|\s*safe\b", md)
    for name in ("html.py", "markdown.py", "templating.py"):
        assert "Markup(" not in (templates.parent / name).read_text(encoding="utf-8")


def test_templates_are_found_from_a_site_packages_layout(tmp_path):
    """The templates are package data: a copy of the package elsewhere (as installed into
    site-packages) renders from its own copy of them."""
    site = tmp_path / "site-packages"
    shutil.copytree(Path(miaudit.__file__).parent, site / "miaudit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    summary, scores = _lm_summary_and_scores()
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    scores.to_parquet(tmp_path / "scores.parquet")
    code = (
        "import json, sys, pandas as pd, miaudit\n"
        "from miaudit.report.html import environment, render_html_from\n"
        "from miaudit.report.markdown import render_markdown_from\n"
        "env = environment()\n"
        "s = json.load(open('summary.json'))\n"
        "t = pd.read_parquet('scores.parquet')\n"
        "print(json.dumps({'package': miaudit.__file__,\n"
        "  'templates': sorted(env.list_templates()),\n"
        "  'file': env.get_template('report.html.j2').filename,\n"
        "  'html': render_html_from(s, t)[:15], 'md': render_markdown_from(s, t)[:28]}))\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout
    found = json.loads(out)
    assert found["package"].startswith(str(site))
    assert {"report.html.j2", "report.md.j2", "report.css.j2"} <= set(found["templates"])
    assert found["file"].startswith(str(site))
    assert found["html"] == "<!DOCTYPE html>" and found["md"] == "# Membership-inference audit"


# -- hand-made sections ------------------------------------------------------------------------

def test_exposure_comparison_section(exposures_run):
    summary = _summary(exposures_run)
    text = render_html(exposures_run)
    page = _Page(text)
    assert "plot-exposures" in page.plots()
    for row in summary["exposures"]["table"]:
        assert page.cells[("data-exposure", row["exposure"], "auc")].strip() == format_figure(
            row["auc"])
    # the ROC and records use the first exposure's rows only
    assert "under exposure 'logits'" in page.text
    md = render_markdown(exposures_run)
    assert "## Exposure settings compared" in md and "rounded:1" in md


def test_sweep_section_renders_only_when_present(exposures_run):
    summary = _summary(exposures_run)
    scores = pd.read_parquet(exposures_run / "scores.parquet")
    assert "plot-sweep" not in _Page(render_html_from(summary, scores)).plots()
    swept = copy.deepcopy(summary)
    swept["sweep"] = {"parameter": "weight_decay", "rows": [
        {"value": v, "test_accuracy": a, "auc": u, "tpr_at_fpr": {"0.01": t, "0.001": None}}
        for v, a, u, t in ((0.0, 0.91, 0.71, 0.12), (0.01, 0.9, 0.62, 0.05),
                           (0.1, 0.84, 0.55, 0.015))]}
    page = _Page(render_html_from(swept, scores))
    assert "plot-sweep" in page.plots()
    assert page.cells[("data-value", "0.01", "auc")].strip() == "0.620"
    assert page.cells[("data-value", "0.01", "tpr")].strip() == "5.0%"
    assert "5.0%" in render_markdown_from(swept, scores)
    # a plain list of rows with a float TPR works too
    swept["sweep"] = [{"value": "dp", "test_accuracy": 0.8, "auc": 0.5, "tpr_at_fpr": 0.01}]
    assert "plot-sweep" in _Page(render_html_from(swept, scores)).plots()


def test_language_model_sections():
    summary, scores = _lm_summary_and_scores()
    text = render_html_from(summary, scores)
    page = _Page(text)
    assert 'id="blind-warning"' in text
    assert text.index('id="blind-warning"') < text.index('id="verdict"')  # prominent
    assert "<i>" not in text and "&lt;i&gt;without&lt;/i&gt;" in text
    assert "&lt;tags&gt; &amp; ampersands" in text
    assert "notes <b>.jsonl" in page.text and "<b>" not in text
    assert 'id="canary-table"' in text and "14.2" in page.text
    assert {"plot-roc", "plot-histograms"} <= set(page.plots())
    assert "plot-per-class" not in page.plots()  # no labels for texts
    _attack_rows(page, summary)
    _no_outside_references(page, text)
    md = render_markdown_from(summary, scores)
    assert "WARNING" in md and "Canary exposure" in md and "<i>" not in md


def test_language_model_method_counts_the_texts_of_the_game():
    """The texts set aside for the tokenizer are not said to be half members."""
    summary, scores = _lm_summary_and_scores()
    summary["data"].update(n_records=400, n_records_in_game=300, n_tokenizer_records=100)
    page = _Page(render_html_from(summary, scores))
    assert "half (seed 0) of the 300 texts of the game" in page.text
    assert "trained on 100 other texts, set aside" in page.text


# -- command line ------------------------------------------------------------------------------

def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """miaudit"""

    register(app)
    return app


def test_cli_report(digits_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "audit.md"
    result = runner.invoke(_app(), ["report", str(digits_run), "--format", "md", "--out",
                                    str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and out.read_text().startswith("# Membership")
    result = runner.invoke(_app(), ["report", "--help"])
    assert result.exit_code == 0 and "--show-records" in result.output
    result = runner.invoke(_app(), ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "error:" in result.output and "Run folder not found" in result.output
    assert "Traceback" not in result.output


# -- the page in a browser -------------------------------------------------------------------

@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install-chromium.sh"
                                             " installs it)")
def test_screenshot_in_headless_chromium_offline(digits_run, digits_page, tmp_path):
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    page.write_text(digits_page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1280,2400", page.as_uri()]
    env = {**os.environ, "HOME": str(tmp_path)}
    # the page itself forbids scripts and network (Content-Security-Policy); chromium's
    # screenshot mode needs its own scripting, so it stays on
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert shot.exists(), f"chromium wrote no screenshot: {run.stderr[-2000:]}"
    assert shot.stat().st_size > 20_000
    img = imread(shot)
    assert img.shape[:2] == (2400, 1280)
    flat = img[..., :3].reshape(-1, 3)
    assert np.ptp(flat, axis=0).max() > 0.5  # not a single colour
    assert len(np.unique((flat[::97] * 255).astype(np.uint8), axis=0)) > 20
