"""Label-only attacks: score direction, the learned combination, query accounting and the
budget in an audit, and a real-data check on Location30."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from miaudit import audit
from miaudit.attacks import ATTACKS, AttackInput, LabelQueries
from miaudit.errors import ConfigError
from miaudit.signals import observe
from miaudit.targets import check_outputs

LABEL_ONLY = ["label-augment", "label-boundary", "label-augment-learned"]


def _inputs(queries: LabelQueries, y: np.ndarray) -> AttackInput:
    z = np.zeros((len(y), int(y.max()) + 1))
    return AttackInput(observe(check_outputs(z, "logits"), y, "label"), label_queries=queries)


def _correctness(is_member: np.ndarray, levels: np.ndarray, rng) -> np.ndarray:
    """Members keep their label under strong perturbations more often than non-members;
    under weak ones everyone does (the pattern of Choquette-Choo et al., Fig. 3)."""
    strength = levels / levels.max()  # 0 (weak) .. 1 (strong)
    keep = 0.95 - strength[None, :] * np.where(is_member, 0.2, 0.6)[:, None]
    return rng.random((len(is_member), len(levels))) < keep


def test_registered_as_label_only_query_attacks():
    for name in LABEL_ONLY:
        a = ATTACKS[name]
        assert a.needs_queries and a.needs == frozenset({"predicted"})
    assert ATTACKS["label-augment-learned"].min_references == 1
    # what they know: query answers; the learned one also its own references' answers
    assert ATTACKS["label-augment"].knowledge == ATTACKS["label-boundary"].knowledge == {
        "queries"}
    assert ATTACKS["label-augment-learned"].knowledge == {"queries", "references"}


def test_augment_and_boundary_scores_point_at_members():
    rng = np.random.default_rng(0)
    is_member = np.arange(400) % 2 == 0
    y = rng.integers(0, 3, 400)
    levels = np.tile(np.arange(3), 10)
    correct = _correctness(is_member, levels, rng)
    distance = np.where(is_member, 1.0, 0.5) + rng.normal(0, 0.3, 400)
    q = LabelQueries(augment_correct=correct, augment_levels=levels, augment_queries=12000,
                     boundary_distance=distance, boundary_queries=400)
    aug = ATTACKS["label-augment"].score(_inputs(q, y))
    np.testing.assert_allclose(aug, correct.mean(axis=1))
    assert roc_auc_score(is_member, aug) > 0.8
    bnd = ATTACKS["label-boundary"].score(_inputs(q, y))
    assert roc_auc_score(is_member, bnd) > 0.8


def test_learned_combination_matches_a_direct_logistic_regression():
    rng = np.random.default_rng(1)
    levels = np.repeat(np.arange(3), 10)
    ref_member = rng.random((4, 300)) < 0.5
    ref_correct = np.stack([_correctness(m, levels, rng) for m in ref_member])
    is_member = np.arange(300) % 2 == 0
    target = _correctness(is_member, levels, rng)
    y = np.zeros(300, dtype=int)
    y[0] = 1
    q = LabelQueries(augment_correct=target, augment_levels=levels,
                     reference_correct=ref_correct, reference_membership=ref_member)
    scores = ATTACKS["label-augment-learned"].score(_inputs(q, y), seed=0)
    assert roc_auc_score(is_member, scores) > 0.8

    def fractions(c):  # per-level share of correct copies, computed independently
        return np.stack([c[..., levels == lv].mean(-1) for lv in range(3)], axis=-1)

    clf = LogisticRegression(max_iter=1000).fit(fractions(ref_correct).reshape(-1, 3),
                                                ref_member.reshape(-1))
    np.testing.assert_allclose(scores, clf.predict_proba(fractions(target))[:, 1], atol=1e-6)
    # references that saw all (or none) of the records teach nothing: refused
    none = LabelQueries(augment_correct=target, augment_levels=levels,
                        reference_correct=ref_correct,
                        reference_membership=np.zeros_like(ref_member))
    with pytest.raises(ConfigError, match="none"):
        ATTACKS["label-augment-learned"].score(_inputs(none, y))


@pytest.fixture(scope="module")
def digits_label_run():
    return audit(data="digits", model="mlp", model_params={"epochs": 20}, exposure="label",
                 references=2, attacks=[*LABEL_ONLY, "correctness"], seed=3)


def test_audit_counts_every_query(digits_label_run):
    s = digits_label_run.summary()
    n = s["data"]["n_records_in_game"]
    attacks = s["attacks"]
    assert attacks["label-augment"]["queries_to_target"] == n * 30
    assert attacks["label-augment-learned"]["queries_to_target"] == n * 30
    assert attacks["label-boundary"]["queries_to_target"] == n * 201
    assert attacks["correctness"]["queries_to_target"] == n
    assert s["settings"]["query_budget"] is None


def test_label_attacks_run_by_default_only_under_label():
    s = audit(data="digits", model="logistic", model_params={"epochs": 3},
              exposure="label").summary()
    assert {"label-augment", "label-boundary"} <= set(s["attacks"])
    s = audit(data="digits", model="logistic", model_params={"epochs": 3}).summary()
    assert not {"label-augment", "label-boundary"} & set(s["attacks"])


def test_query_budget_is_respected_and_checked_before_training():
    budget = 1796 * 8  # digits keeps 1796 records in the game
    s = audit(data="digits", model="logistic", model_params={"epochs": 3}, exposure="label",
              attacks=["label-augment", "label-boundary"], query_budget=budget).summary()
    for name in ("label-augment", "label-boundary"):
        assert 0 < s["attacks"][name]["queries_to_target"] <= budget
    assert s["attacks"]["label-augment"]["queries_to_target"] == 1796 * 8
    with pytest.raises(ConfigError, match="query budget of 100 allows 0 queries per record"):
        audit(data="digits", model="logistic", exposure="label",
              attacks=["label-boundary"], query_budget=100)


def test_precomputed_outputs_cannot_answer_label_queries(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "o.npz"
    np.savez(path, logits=rng.normal(size=(40, 3)), y=rng.integers(0, 3, 40),
             is_member=np.arange(40) % 2 == 0)
    with pytest.raises(ConfigError, match="precomputed outputs cannot answer"):
        audit(outputs=path, exposure="label", attacks=["label-boundary"])
    s = audit(outputs=path, exposure="label").summary()  # default: what is possible
    assert list(s["attacks"]) == ["correctness"]


def test_location30_label_only_attack_beats_chance(shared_file):
    """An overfit MLP on Location30 leaks through its labels alone (Choquette-Choo et al.
    report label-only attacks close to confidence-based ones on such models)."""
    s = audit(data=shared_file("location30.npz"), model="mlp", exposure="label",
              attacks=["label-boundary", "label-augment"], seed=0).summary()
    for name in ("label-boundary", "label-augment"):
        lo, _ = s["attacks"][name]["auc_ci"]
        assert lo > 0.55, (name, s["attacks"][name]["auc"])


def test_a_model_that_answers_with_labels_only():
    from sklearn.svm import SVC

    from miaudit.data import load_dataset

    ds = load_dataset("breast_cancer")
    members = np.arange(ds.n_records) % 2 == 0
    svc = SVC(C=100.0, gamma=0.5).fit(ds.X[members], ds.y[members])  # no predict_proba
    s = audit(data=ds, model=svc, members=members, exposure="label",
              attacks=["correctness", "label-boundary"]).summary()
    assert s["target"]["labels_only"] is True
    assert s["attacks"]["label-boundary"]["queries_to_target"] == ds.n_records * 201
    assert s["attacks"]["label-boundary"]["auc_ci"][0] > 0.5  # an overfit RBF SVM (~0.59)
    with pytest.raises(ConfigError, match="labels only"):
        audit(data=ds, model=svc, members=members, exposure="probabilities")
