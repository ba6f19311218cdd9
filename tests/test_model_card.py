"""The model-card section: every figure as in summary.json, escaped data, LM audits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import miaudit
from miaudit.cli import governance as gov_cli
from miaudit.governance.model_card import escape_markdown, model_card_section
from miaudit.metrics import evaluate

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = miaudit.audit(data="digits", model="logistic", model_params={"epochs": 5},
                               attacks=["loss", "mentr", "correctness"], seed=0)
    return result, result.save(tmp_path_factory.mktemp("card") / "run")


def _auc(v, ci):
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _rate(v, ci):
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}% [{100 * ci[0]:.2f}%, {100 * ci[1]:.2f}%]"


def test_every_figure_appears_with_the_same_rounding(run):
    result, _ = run
    summary = result.summary()
    md = model_card_section(summary, result.scores)
    assert md.startswith("## Privacy: membership inference\n")
    assert summary["attacks"]["loss"]["tpr_at_fpr"]["0.01"] is not None
    for name, e in summary["attacks"].items():
        eps = e["epsilon_lower_bound"]
        row = " | ".join([
            name, _auc(e["auc"], e["auc_ci"]),
            _rate(e["tpr_at_fpr"]["0.01"], e["tpr_at_fpr_ci"]["0.01"]),
            _rate(e["tpr_at_fpr"]["0.001"], e["tpr_at_fpr_ci"]["0.001"]),
            "n/a" if eps is None else f"{eps:.2f}"])
        assert f"| {row} |" in md
    # 898 non-members: TPR at 0.1% FPR is not measurable, and the card says why
    reason = summary["attacks"]["loss"]["undefined"]["tpr_at_fpr.0.001"]
    assert f"- TPR at 0.1% FPR (all attacks): {escape_markdown(reason)}" in md
    assert "TPR at 0.01% FPR [" not in md  # a level no attack measured is not a column
    d, t = summary["data"], summary["target"]
    for fact in (d["fingerprint"], f"Records: {d['n_records']}", t["description"],
                 f"{t['train_accuracy']:.3f} on members", f"{t['test_accuracy']:.3f} on non",
                 f"{t['n_members']} members and {t['n_non_members']} non-members",
                 "seeded random half", "What the attacker sees: logits"):
        assert fact in md, fact


def test_records_by_id_only(run):
    result, _ = run
    md = model_card_section(result.summary(), result.scores, top_records=3)
    section = md.split("### Most exposed member records")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and
            line[2].isdigit()]
    assert len(rows) == 3
    members = result.scores[result.scores["is_member"]]
    assert {r.split(" | ")[1] for r in rows} <= set(members["record_id"])
    assert not any(fp[:12] in md for fp in result.scores["fingerprint"])  # no hashes


def _entry(scores, member, **kw):
    return {**evaluate(scores, member).to_dict(), **kw}


def test_hostile_values_are_escaped():
    rng = np.random.default_rng(0)
    member = np.arange(400) < 200
    s = rng.normal(size=400) + member
    s[0] = 99.0  # the most exposed member
    ids = np.arange(400).astype(str).astype(object)
    ids[0] = "| <script> *x*"
    scores = pd.DataFrame({"exposure": "logits", "target": 0, "record_id": ids,
                           "is_member": member, "loss": s})
    summary = {"data": {"name": "evil_[name](http://x)", "n_records": 400},
               "target": {"model": "Est<i>", "n_members": 200, "n_non_members": 200},
               "exposure": "logits", "attacks": {"loss": _entry(s, member)},
               "settings": {"alpha": 0.05, "fprs": [0.01, 0.001, 0.0001]},
               "warnings": ["DataWarning: column `a|b` <dropped>"]}
    md = model_card_section(summary, scores)
    assert "<script>" not in md and "<i>" not in md and "<dropped>" not in md
    assert r"| 1 | \| &lt;script&gt; \*x\* | 1.0000 |" in md
    assert r"Data set: evil\_\[name\](http://x)" in md
    assert r"column \`a\|b\` &lt;dropped&gt;" in md
    for line in md.splitlines():  # every table row keeps its columns
        if line.startswith("| 1 |"):
            assert line.replace(r"\|", "").count("|") == 4


def test_language_model_summary():
    rng = np.random.default_rng(1)
    member = np.arange(300) < 150
    loss = rng.normal(size=300) + 0.5 * member
    zlib = loss + rng.normal(size=300)
    summary = {
        "miaudit_version": "0.1.0", "task": "language model",
        "data": {"name": "notes.jsonl", "n_records": 300, "fingerprint": "ab" * 32,
                 "source": "notes.jsonl"},
        "target": {"model": "gpt2 recipe", "recipe": {"n_layer": 2},
                   "description": "tiny GPT-2 (2 layers)", "seed": 0, "n_members": 150,
                   "n_non_members": 150, "member_mean_nll": 3.21, "non_member_mean_nll": 3.57},
        "exposure": "token log-probabilities",
        "attacks": {"lm-loss": _entry(loss, member, description="-NLL"),
                    "zlib": _entry(zlib, member, description="-NLL / zlib")},
        "blind_baseline": {"auc": 0.512, "auc_ci": [0.447, 0.578], "best_attack_auc": 0.64,
                           "features": {}, "warning": None},
        "settings": {"seed": 0, "alpha": 0.05, "fprs": [0.01, 0.001, 0.0001], "k": 0.2,
                     "references": 0, "canaries": 2},
        "warnings": [],
        "canaries": [{"secret": "my PIN is 4 8 1 9 3 7", "repetitions": 1, "exposure": 3.2,
                      "nll": 30.1, "rank_estimate": 1e5, "exposure_sampled": 3.2,
                      "exposure_fitted": 3.1, "max_exposure": 19.9, "n_candidates": 2000,
                      "exact": False, "distribution": "skewnorm"},
                     {"secret": "my PIN is 1 1 2 3 5 8", "repetitions": 16, "exposure": 17.5,
                      "nll": 12.0, "rank_estimate": 5.0, "exposure_sampled": 10.97,
                      "exposure_fitted": 17.5, "max_exposure": 19.9, "n_candidates": 2000,
                      "exact": False, "distribution": "skewnorm"}],
    }
    scores = pd.DataFrame({"target": 0, "record_id": [f"doc-{i}" for i in range(300)],
                           "fingerprint": "f" * 64, "is_member": member,
                           "n_tokens": 20, "lm-loss": loss, "zlib": zlib})
    md = model_card_section(summary, scores)
    e = summary["attacks"]["lm-loss"]
    assert f"| lm-loss | {_auc(e['auc'], e['auc_ci'])} |" in md
    assert "3.210 on members, 3.570 on non-members" in md
    assert "whether a given text was" in md and "Texts: 300" in md
    assert "### Blind baseline" in md and "AUC 0.512 [0.447, 0.578]" in md
    assert "| 1 | 3.2 | 19.9 |" in md and "| 16 | 17.5 | 19.9 |" in md
    assert "4 8 1 9 3 7" not in md  # the secrets themselves are not shown
    assert "doc-" in md.split("### Most exposed member records")[1]


def test_without_scores_says_so(run):
    result, _ = run
    md = model_card_section(result.summary())
    assert "needs the run's scores.parquet" in md


def _app():
    app = typer.Typer()
    gov_cli.register(app)
    return app


def test_cli(run, tmp_path):
    result, folder = run
    res = runner.invoke(_app(), ["model-card", str(folder)])
    assert res.exit_code == 0, res.output
    assert res.stdout == model_card_section(result.summary(), result.scores)
    out = tmp_path / "card.md"
    res = runner.invoke(_app(), ["model-card", str(folder), "--out", str(out),
                                 "--top-records", "2"])
    assert res.exit_code == 0 and out.read_text().startswith("## Privacy")
    res = runner.invoke(_app(), ["model-card", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "Run folder not found" in res.stderr
