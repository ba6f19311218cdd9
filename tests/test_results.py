"""The result of an audit and its run folder: summary.json is valid JSON whatever the
figures (issue 17: never inf or NaN, a null with a reason instead)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import miaudit
from miaudit.results.result import AuditResult, json_ready


def test_non_finite_values_become_nulls_with_a_reason():
    summary = {"attacks": {"loss": {"auc": float("nan"), "tpr": [0.1, float("inf")]}},
               "n": np.int64(3), "x": np.float32(0.5), "arr": np.array([1.0, -np.inf])}
    out = json_ready(summary)
    assert out["attacks"]["loss"] == {"auc": None, "tpr": [0.1, None]}
    assert out["n"] == 3 and type(out["n"]) is int and out["x"] == 0.5
    assert out["arr"] == [1.0, None]
    places = {u["path"]: u["value"] for u in out["undefined_values"]}
    assert places == {"attacks.loss.auc": "nan", "attacks.loss.tpr[1]": "inf",
                      "arr[1]": "-inf"}
    assert all(u["reason"] for u in out["undefined_values"])
    assert json_ready({"a": 1.0}) == {"a": 1.0}  # nothing to say: no key added


def test_a_result_with_undefined_figures_saves_valid_json(tmp_path):
    result = AuditResult(summary={"exposure": "logits", "attacks": {},
                                  "elapsed_seconds": float("inf")},
                         scores=pd.DataFrame({"record_id": ["a"]}), metrics={})
    saved = result.save(tmp_path / "run", report=False)
    text = (saved / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    loaded = json.loads(text)
    assert loaded["elapsed_seconds"] is None
    assert loaded["undefined_values"][0]["path"] == "elapsed_seconds"


def test_signals_hold_the_population_outputs_for_rescoring(tmp_path):
    """RMIA's z can be recomputed from the run folder: the population records' outputs of
    every model, their membership (never a target's) and labels."""
    result = miaudit.audit(data="digits", model="logistic", model_params={"epochs": 3},
                           references=2, attacks=["rmia-online", "attack-p"], seed=0)
    out = result.save(tmp_path / "run")
    with np.load(out / "signals.npz") as s:
        logits, membership = s["population_logits"], s["population_membership"]
        n_pop = result.summary()["data"]["n_population_records"]
        assert logits.shape == (s["logits"].shape[0], n_pop, 10)
        assert membership.shape == logits.shape[:2] and not membership.any()
        assert s["population_labels"].shape == (n_pop,)
