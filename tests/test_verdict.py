"""The audit's verdict holds on models that cannot leak, and attacks see no ground truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import miaudit
from miaudit.attacks import ATTACKS
from miaudit.audits.verdict import audit_verdict
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DegenerateResultWarning, MiauditWarning
from miaudit.metrics import evaluate
from miaudit.targets import PrecomputedOutputs, check_outputs


def _random_outputs(seed: int, n: int = 2000, classes: int = 10) -> PrecomputedOutputs:
    """A null model: logits that do not depend on membership."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.0
    labels = rng.integers(classes, size=n)
    is_member = rng.permutation(n) < n // 2
    ids = np.array([f"r{i}" for i in range(n)])
    return PrecomputedOutputs(check_outputs(logits, "logits"), labels, is_member, ids, None,
                              "random.npz")


def test_null_model_verdicts_claim_no_exposure():
    """Random logits: at most 5% of audits may claim exposure (Bonferroni over the attacks
    keeps the family-wise error at alpha = 5%; with 60 audits and a true rate <= 5%,
    more than 6 claims happen with probability < 5%), and a "none" verdict never quotes
    a multiple of a random guess."""
    claims = 0
    for seed in range(60):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MiauditWarning)
            v = miaudit.audit(outputs=_random_outputs(seed)).summary()["verdict"]
        if v["level"] != "none":
            claims += 1
        else:
            assert "times a random guess" not in v["sentence"]
        assert v["correction"].startswith("Bonferroni")
    assert claims <= 6


def test_oracle_attacks_stay_out_of_the_defaults_and_the_verdict():
    known = [name for name, a in ATTACKS.items() if "known-members" in a.knowledge]
    assert known, "the known-membership variants must stay available by name"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        s = miaudit.audit(outputs=_random_outputs(0)).summary()
    assert not set(known) & set(s["attacks"])
    assert "known-members" not in s["threat_model"]["knowledge"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        s = miaudit.audit(outputs=_random_outputs(0), attacks=["loss", known[0]]).summary()
    assert s["attacks"][known[0]]["knowledge"] == ["known-members"]
    assert s["verdict"]["attacks_considered"] == ["loss"]
    assert known[0] in s["verdict"]["attacks_excluded"]


def test_verdict_correction_and_headline_on_a_leaking_attack():
    rng = np.random.default_rng(1)
    m = rng.permutation(20000) < 10000
    strong = rng.normal(size=20000) + 3.0 * m
    noise = {f"noise{i}": rng.normal(size=20000) for i in range(5)}
    scores = {"strong": strong, **noise}
    entries = {}
    for name, s in scores.items():
        d = evaluate(s, m).to_dict()
        entries[name] = {**d, "knowledge": []}
    v = audit_verdict(entries, scores, m, exposure="logits",
                      fprs=["0.01", "0.001", "0.0001"], alpha=0.05)
    assert v["level"] == "high" and v["strongest_attack"] == "strong"
    assert v["significant"] == ["strong"]
    assert v["corrected_alpha"] == pytest.approx(2 * 0.05 / (6 * 4))  # 6 attacks, AUC + 3 levels
    assert "times a random guess" in v["sentence"]


def test_every_attack_entry_declares_its_knowledge():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        s = miaudit.audit(data="digits", references=2, targets=1).summary()
    for name, entry in s["attacks"].items():
        assert entry["knowledge"] == sorted(ATTACKS[name].knowledge), name
        assert set(entry["knowledge"]) <= set(s["threat_model"]["knowledge"]), name


def test_population_records_are_set_aside_and_never_trained_on():
    """Population data is records no model trained on, and never an audited record."""
    ds = load_dataset("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        r = miaudit.audit(data=ds, references=2)
    s = r.summary()
    n_pop = s["data"]["n_population_records"]
    assert n_pop == pytest.approx(0.1 * ds.n_records, abs=3)
    audited = set(r.scores["record_id"])
    assert len(audited) + n_pop <= ds.n_records
    assert s["data"]["n_records_in_game"] == len(audited)


def test_an_attack_needing_absent_data_is_refused_by_name():
    pre = _random_outputs(0, n=400)
    needs_pop = [n for n, a in ATTACKS.items() if a.knowledge == frozenset({"population"})]
    assert needs_pop
    with pytest.raises(ConfigError, match="population"):
        miaudit.audit(outputs=pre, attacks=[needs_pop[0]])


def test_degenerate_results_are_flagged():
    with pytest.warns(DegenerateResultWarning, match="at chance"):
        s = miaudit.audit(outputs=_random_outputs(3, n=400)).summary()
    assert any("at chance" in f for f in s["flags"])
    # a model whose outputs are all the same: every score is constant
    pre = _random_outputs(4, n=400)
    const = PrecomputedOutputs(check_outputs(np.zeros((400, 10)), "logits"), pre.labels,
                               pre.is_member, pre.ids, None, "const.npz")
    with pytest.warns(DegenerateResultWarning, match="constant scores"):
        s = miaudit.audit(outputs=const, attacks=["loss"]).summary()
    assert s["attacks"]["loss"]["degenerate"] == "constant scores"
    assert s["verdict"]["level"] == "none"
