"""Comparing exposures: one game, every attack each setting allows, the strongest per
setting, utility kept, and the records that stay exposed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from miaudit import audit
from miaudit.audits.exposures import record_risk, strongest_attack
from miaudit.cli import app
from miaudit.errors import ConfigError

COMPARED = ["logits", "top-k:1", "label", "loss", "temperature:4", "noise:0.2", "memguard:1"]


@pytest.fixture(scope="module")
def compared():
    return audit(data="digits", model="mlp", model_params={"epochs": 20}, references=2,
                 exposure=COMPARED, query_budget=1796 * 20, seed=1)


def test_one_row_per_exposure_with_the_strongest_attack(compared):
    section = compared.summary()["exposures"]
    rows = {r["exposure"]: r for r in section["table"]}
    assert list(rows) == COMPARED
    fprs = ["0.01", "0.001", "0.0001"]
    for name, row in rows.items():
        metrics = compared.exposure_metrics[name]
        assert sorted(metrics) == row["attacks_run"]
        entries = {a: m.to_dict() for a, m in metrics.items()}
        assert row["strongest_attack"] == strongest_attack(entries, fprs)
        best = metrics[row["strongest_attack"]]
        for a, m in metrics.items():  # every attack's figures under every exposure
            assert row["attacks"][a]["auc"] == pytest.approx(m.auc)
        assert row["auc"] == pytest.approx(best.auc)
        # independent check of the rule: nobody beats it at the decisive level
        level = next(f for f in sorted(fprs, key=float)
                     if any(m.tpr_at_fpr[f].value is not None for m in metrics.values()))
        top = max((m.tpr_at_fpr[level].value or 0) for m in metrics.values())
        assert (best.tpr_at_fpr[level].value or 0) == top
    # what each setting allows
    assert "lira-online" in rows["logits"]["attacks_run"]
    assert set(rows["label"]["attacks_run"]) == {"correctness", "label-augment",
                                                 "label-boundary", "label-augment-learned"}
    assert "loss" in rows["loss"]["attacks_run"]
    assert not any(a.startswith("label-") for a in rows["loss"]["attacks_run"])


def test_utility_kept_by_label_keeping_exposures(compared):
    rows = {r["exposure"]: r for r in compared.summary()["exposures"]["table"]}
    acc = rows["logits"]["test_accuracy"]
    for name in ("top-k:1", "label", "temperature:4", "memguard:1"):
        assert rows[name]["test_accuracy"] == acc, name
    assert rows["loss"]["test_accuracy"] is None
    assert rows["noise:0.2"]["test_accuracy"] < acc  # strong noise changes labels


def test_label_only_attacks_ignore_label_keeping_defences(compared):
    scores = compared.scores
    by = {e: scores[scores["exposure"] == e].reset_index(drop=True) for e in COMPARED}
    for name in ("temperature:4", "memguard:1", "top-k:1"):
        for attack in ("label-augment", "label-boundary"):
            np.testing.assert_array_equal(by[name][attack], by["logits"][attack])
    assert by["loss"]["label-boundary"].isna().all()  # not allowed under 'loss'


def test_records_at_risk_and_risk_scores(compared):
    section = compared.summary()["exposures"]
    scores = compared.scores
    for row in section["table"]:
        top = section["records_at_risk"][row["exposure"]]
        assert len(top) == 10
        assert [r["risk"] for r in top] == sorted((r["risk"] for r in top), reverse=True)
        part = scores[scores["exposure"] == row["exposure"]]
        member = part["is_member"].to_numpy()
        s = part[row["strongest_attack"]].to_numpy()
        outs = s[~member]
        first = part[part["record_id"] == top[0]["record_id"]].iloc[0]
        assert first["is_member"]
        direct = ((outs < first[row["strongest_attack"]]).sum()
                  + 0.5 * (outs == first[row["strongest_attack"]]).sum()) / len(outs)
        assert top[0]["risk"] == pytest.approx(direct)
        risk = record_risk(s, member)
        assert row["members_exposed"] == int((risk[member] >= 0.99).sum())


def test_record_risk_is_one_minus_the_fpr_of_the_flagging_threshold():
    rng = np.random.default_rng(0)
    s = rng.normal(size=500)
    m = rng.random(500) < 0.5
    risk = record_risk(s, m)
    for i in range(0, 500, 37):
        fpr = (s[~m] > s[i]).mean() + 0.5 * (s[~m] == s[i]).mean()
        assert risk[i] == pytest.approx(1 - fpr)
    assert record_risk(np.array([1.0, 1.0]), np.array([True, False]))[0] == 0.5


def test_run_folder_holds_exposures_json(compared, tmp_path):
    out = compared.save(tmp_path / "run")
    on_disk = json.loads((out / "exposures.json").read_text())
    assert on_disk == json.loads(json.dumps(compared.summary()["exposures"]))
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores["exposure"]) == set(COMPARED)


def test_exposure_lists_are_checked():
    with pytest.raises(ConfigError, match="listed twice"):
        audit(data="digits", exposure="logits,label,logits")
    with pytest.raises(ConfigError, match="No exposure compared allows"):
        audit(data="digits", exposure=["label", "loss"], attacks=["entropy"])


def test_cli_compare_exposures(tmp_path):
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, [
        "compare-exposures", "--data", "wine", "--model", "logistic", "-p", "epochs=5",
        "--exposure", "probabilities,label,temperature:2", "--out", str(out), "--no-cache",
        "--query-budget", "5000"])
    assert res.exit_code == 0, res.output
    assert "Exposures compared" in res.output and "temperature:2" in res.output
    assert (out / "exposures.json").exists()
    res = CliRunner().invoke(app, ["compare-exposures", "--data", "wine",
                                   "--exposures", "label"])
    assert res.exit_code == 1 and "at least two" in res.output
