"""Attack-specific checks, the knowledge each attack declares and the threat model that
chooses them (the properties common to every attack: test_attack_common.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miaudit.attacks import (
    ATTACKS,
    KNOWLEDGE,
    Attack,
    AttackInput,
    Calibration,
    References,
    attacks_allowed,
    default_attacks,
    get_attack,
    knowledge_table,
    register_attack,
    resolve_attacks,
    threat_model,
)
from miaudit.attacks.class_threshold import (
    best_threshold,
    fit_class_thresholds,
    reference_threshold_scores,
)
from miaudit.errors import ConfigError, ExposureError
from miaudit.signals import observe, parse_exposure
from miaudit.targets import check_outputs


def _inputs(z, y, is_member=None, folds=None, exposure="logits", refs=None):
    obs = observe(check_outputs(z, "logits"), y, exposure)
    n = len(y)
    if is_member is None:
        is_member = np.arange(n) % 2 == 0
    if folds is None:
        folds = np.arange(n) % 3
    if refs is None:
        refs = _reference_logits(y, seed=99)
    is_member = np.asarray(is_member)
    return AttackInput(obs, Calibration(is_member, np.asarray(folds)),
                       References(refs[0], refs[1], y))


def _leaky_logits(y, is_member, rng, c):
    """Members get a sharper, more often correct output than non-members; each record has
    its own difficulty, shared by all models (what reference models calibrate away)."""
    n = len(y)
    difficulty = np.random.default_rng(1234).normal(0, 1.5, 2000)[:n]
    z = rng.normal(0, 1, (n, c))
    z[np.arange(n), y] += np.where(is_member, 3.0, 0.5) + difficulty + rng.normal(0, 0.5, n)
    return z


def _reference_logits(y, k=8, seed=0):
    rng = np.random.default_rng(seed)
    c = int(y.max()) + 1
    membership = np.zeros((k, len(y)), dtype=bool)
    for j in range(0, k, 2):
        membership[j] = rng.random(len(y)) < 0.5
        membership[j + 1] = ~membership[j]
    logits = np.stack([_leaky_logits(y, membership[j], rng, c) for j in range(k)])
    return logits, membership


def _synthetic(n=400, c=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    is_member = rng.random(n) < 0.5
    return _leaky_logits(y, is_member, rng, c), y, is_member


# Score direction, determinism and order equivariance of every attack: test_attack_common.

# Raising the true-class logit (a more member-like output) never lowers these scores.
LABEL_MONOTONE = ["loss", "confidence", "mentr", "correctness"]


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (5, 3), elements=st.floats(-8, 8)),
       st.lists(st.integers(0, 2), min_size=5, max_size=5), st.floats(0.1, 5))
def test_score_direction_true_class_logit(z, y, bump):
    y = np.array(y)
    raised = z.copy()
    raised[np.arange(5), y] += bump
    for name in LABEL_MONOTONE:
        before = ATTACKS[name].score(_inputs(z, y))
        after = ATTACKS[name].score(_inputs(raised, y))
        assert np.all(after >= before - 1e-9), name


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (5, 3), elements=st.floats(-5, 5)), st.floats(1.1, 4))
def test_entropy_score_rises_when_outputs_sharpen(z, factor):
    y = np.zeros(5, dtype=int)
    before = ATTACKS["entropy"].score(_inputs(z, y))
    after = ATTACKS["entropy"].score(_inputs(z * factor, y))
    assert np.all(after >= before - 1e-9)


def test_every_attack_declares_needs_and_reference():
    for attack in ATTACKS.values():
        assert attack.needs, attack.name
        assert attack.needs <= {"logits", "probs", "loss", "predicted"}
        assert attack.reference and attack.description


def test_unknown_attack_suggests_close_name():
    with pytest.raises(ConfigError, match="Did you mean 'mentr'"):
        get_attack("mentrr")


def test_exposure_too_coarse_is_refused_with_alternatives():
    with pytest.raises(ExposureError, match=r"'entropy' needs the full probability vector.*"
                       r"allowed under 'top-k:3': loss, confidence, correctness, "
                       r"class-loss-known"):
        resolve_attacks(["entropy"], parse_exposure("top-k:3"))
    with pytest.raises(ExposureError, match="needs the true-class probability"):
        resolve_attacks(["loss"], parse_exposure("label"))
    assert [a.name for a in resolve_attacks(None, parse_exposure("label"))] == ["correctness"]


def _bacc(s, m, t):
    pred = s >= t
    return 0.5 * (pred[m].mean() + (~pred[~m]).mean())


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = np.round(rng.normal(size=50), 1)
        m = rng.random(50) < 0.4
        t = best_threshold(s, m)
        brute = max(_bacc(s, m, v) for v in np.r_[s, np.inf])
        assert _bacc(s, m, t) == pytest.approx(max(brute, 0.5))


def test_class_thresholds_separate_classes():
    # Class 0: members above 1.0; class 1: members above -1.0. One global cut cannot do both.
    s = np.array([2.0, 1.5, 0.5, 0.0, 0.0, -0.5, -1.5, -2.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = np.array([True, True, False, False, True, True, False, False])
    t = fit_class_thresholds(s, labels, m, 2)
    assert t[0] == pytest.approx(1.0) and t[1] == pytest.approx(-1.0)


@pytest.mark.parametrize("name", ["class-loss-known", "class-mentr-known"])
def test_known_membership_variant_is_cross_fitted(name):
    # Flipping one record's membership must not change its own score.
    z, y, is_member = _synthetic(n=200, seed=5)
    folds = np.arange(200) % 5
    base = ATTACKS[name].score(_inputs(z, y, is_member, folds))
    flipped = is_member.copy()
    flipped[17] = ~flipped[17]
    again = ATTACKS[name].score(_inputs(z, y, flipped, folds))
    assert again[17] == base[17]
    same_fold = folds == folds[17]
    assert np.array_equal(again[same_fold], base[same_fold])


def _brute_class_scores(signal, labels, ref_signal, ref_labels, ref_member):
    """Per class, the cut-off maximising balanced accuracy over the pooled (reference,
    record) pairs, found by trying every value; the score is signal minus it."""
    flat, member = ref_signal.reshape(-1), ref_member.reshape(-1)
    flat_labels = np.tile(ref_labels, ref_signal.shape[0])
    best = {}
    for c in np.unique(labels):
        s, m = flat[flat_labels == c], member[flat_labels == c]
        best[c] = max(_bacc(s, m, v) for v in s)
    return best, flat, flat_labels, member


@pytest.mark.parametrize("name", ["class-loss", "class-mentr"])
def test_class_thresholds_fitted_on_references_maximise_their_balanced_accuracy(name):
    from scipy.special import softmax

    from miaudit.signals.transforms import modified_entropy

    z, y, is_member = _synthetic(n=300, seed=2)
    refs = _reference_logits(y, k=4, seed=6)
    scores = ATTACKS[name].score(_inputs(z, y, is_member, refs=refs))
    if name == "class-loss":
        signal = -observe(check_outputs(z, "logits"), y, "logits").loss
        ref_signal = -References(refs[0], refs[1], y).loss
    else:
        signal = -modified_entropy(softmax(z, axis=1), y)
        ref_signal = np.stack([-modified_entropy(softmax(r, axis=1), y) for r in refs[0]])
    best, flat, flat_labels, member = _brute_class_scores(signal, y, ref_signal, y, refs[1])
    for c, value in best.items():
        t = (signal - scores)[y == c]
        assert np.allclose(t, t[0])  # one threshold per class
        in_c = flat_labels == c
        assert _bacc(flat[in_c], member[in_c], t[0]) == pytest.approx(value)


def test_class_loss_fits_on_the_references_own_records_when_they_have_them():
    # offline references: all OUT on the audited records, fitted on their own pool (shadow)
    z, y, is_member = _synthetic(n=200, seed=8)
    pool_y = np.random.default_rng(3).integers(0, 4, 300)
    pool_logits, pool_member = _reference_logits(pool_y, k=4, seed=9)
    audited = _reference_logits(y, k=4, seed=10)[0]
    shadow = References(pool_logits, pool_member, pool_y)
    refs = References(audited, np.zeros((4, 200), dtype=bool), y, shadow)
    obs = observe(check_outputs(z, "logits"), y, "logits")
    scores = ATTACKS["class-loss"].score(AttackInput(obs, references=refs))
    expected = reference_threshold_scores(-obs.loss, y, -shadow.loss, pool_y, pool_member)
    np.testing.assert_array_equal(scores, expected)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(is_member, scores) > 0.7


def test_class_thresholds_never_read_the_audited_membership():
    z, y, is_member = _synthetic(n=200, seed=5)
    a = ATTACKS["class-loss"].score(_inputs(z, y, is_member))
    b = ATTACKS["class-loss"].score(_inputs(z, y, ~is_member))
    np.testing.assert_array_equal(a, b)


def test_class_thresholds_for_classes_the_references_lack_fall_back_to_the_global_one():
    s = reference_threshold_scores(np.array([0.0, 0.0]), np.array([0, 2]),
                                   np.array([[3.0, 1.0, 2.0, 0.0]]), np.array([0, 0, 1, 1]),
                                   np.array([[True, False, True, False]]))
    # class 0: 2.0 (class 1: 1.0); class 2 (absent): the pooled threshold, 1.5
    assert s.tolist() == [-2.0, -1.5]


# --- knowledge and threat model -------------------------------------------------------


def _attack(**kwargs):
    base = {"name": "test-only", "score": lambda inputs: inputs.target.loss,
            "needs": frozenset({"loss"}), "description": "d", "reference": "r"}
    return Attack(**{**base, **kwargs})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"knowledge": frozenset({"telepathy"})}, "unknown knowledge"),
    ({"min_references": 1}, "does not declare the knowledge 'references'"),
    ({"knowledge": frozenset({"references"})}, "declares the knowledge 'references' but has "
                                                "min_references=0"),
    ({"uses_calibration": True}, "'known-members'"),
    ({"needs_queries": True}, "'queries'"),
    ({"knowledge": frozenset({"queries"})}, "needs_queries=False"),
    ({"min_references": 1, "knowledge": frozenset({"references"}),
      "reference_sides": frozenset({"out"})}, None),
    ({"reference_sides": frozenset({"out"})}, "reference sides"),
])
def test_register_attack_checks_knowledge(kwargs, match):
    if match is None:
        register_attack(_attack(**kwargs))
        del ATTACKS["test-only"]
        return
    with pytest.raises(ConfigError, match=match):
        register_attack(_attack(**kwargs))
    assert "test-only" not in ATTACKS


def test_every_attack_declares_consistent_knowledge():
    for a in ATTACKS.values():
        assert a.knowledge <= set(KNOWLEDGE), a.name
        assert (a.min_references > 0) == ("references" in a.knowledge), a.name
        assert a.uses_calibration == ("known-members" in a.knowledge), a.name
        assert a.needs_queries == ("queries" in a.knowledge), a.name
    assert knowledge_table()["class-loss"] == ["references"]
    assert knowledge_table([ATTACKS["label-augment-learned"]]) == {
        "label-augment-learned": ["queries", "references"]}


EXPOSURES = ["logits", "probabilities", "top-k:3", "rounded:2", "label", "loss"]


@pytest.mark.parametrize("exposure", EXPOSURES)
def test_defaults_never_use_oracle_knowledge(exposure):
    e = parse_exposure(exposure)
    for granted in (None, threat_model(references=True, population=True, queries=True)):
        for n_refs in (0, 8):
            chosen = default_attacks(e, n_refs, can_query=True, knowledge=granted)
            assert chosen and not any(a.oracle for a in chosen), (exposure, n_refs)
            names = attacks_allowed(e, n_refs, queries=True, knowledge=granted)
            assert not any(ATTACKS[n].oracle for n in names)
    oracle = threat_model(known_members=True)
    if "loss" in e.fields:
        assert "class-loss-known" in [a.name for a in default_attacks(e, knowledge=oracle)]


def test_defaults_follow_the_threat_model():
    e = parse_exposure("logits")
    names = [a.name for a in default_attacks(e, 8, knowledge=threat_model(references=True))]
    assert {"class-loss", "class-mentr", "lira-online", "shokri"} <= set(names)
    assert "attack-p" not in names  # no population data
    names = [a.name for a in default_attacks(e, 0, knowledge=threat_model(population=True))]
    assert names == ["loss", "confidence", "entropy", "mentr", "correctness", "attack-p",
                     "quantile"]
    # label-only query attacks by default only when the exposure releases labels alone
    label = parse_exposure("label")
    granted = threat_model(references=True, queries=True)
    assert [a.name for a in default_attacks(label, 2, knowledge=granted)] == [
        "correctness", "label-augment", "label-boundary", "label-augment-learned"]
    assert not any(a.needs_queries for a in default_attacks(e, 2, knowledge=granted))
    # the older arguments (no knowledge): references when there are some, queries when
    # allowed, population assumed
    assert [a.name for a in default_attacks(e)] == [
        "loss", "confidence", "entropy", "mentr", "correctness", "attack-p", "quantile"]
    assert [a.name for a in resolve_attacks(None, label, 2, can_query=True)] == [
        "correctness", "label-augment", "label-boundary", "label-augment-learned"]


def test_named_attacks_may_use_known_members_but_not_missing_data():
    e = parse_exposure("logits")
    none = threat_model()
    chosen = resolve_attacks(["class-loss-known", "class-mentr-known"], e, knowledge=none)
    assert [a.name for a in chosen] == ["class-loss-known", "class-mentr-known"]
    assert all(a.oracle and "oracle" in a.description for a in chosen)
    with pytest.raises(ConfigError, match="'attack-p' needs population data"):
        resolve_attacks(["attack-p"], e, 4, knowledge=threat_model(references=True))
    with pytest.raises(ConfigError, match="'class-loss' needs at least 1 reference"):
        resolve_attacks(["class-loss"], e, 0, knowledge=none)
    with pytest.raises(ConfigError, match="'class-loss' needs reference models, which this "
                                          "threat model does not grant"):
        resolve_attacks(["class-loss"], e, 4, knowledge=none)
    with pytest.raises(ConfigError, match="precomputed outputs cannot answer"):
        resolve_attacks(["label-augment"], parse_exposure("label"), knowledge=none)
    with pytest.raises(ConfigError, match="Unknown knowledge"):
        resolve_attacks(None, e, knowledge={"telepathy"})
