"""Common properties of every registered attack, plus attack-specific checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miaudit.attacks import (
    ATTACKS,
    AttackInput,
    Calibration,
    References,
    get_attack,
    resolve_attacks,
)
from miaudit.attacks.class_threshold import best_threshold, fit_class_thresholds
from miaudit.errors import ConfigError, ExposureError
from miaudit.models import check_outputs
from miaudit.signals import observe, parse_exposure

# attacks over outputs on the records themselves (label-only query attacks: test_label_only)
ALL = sorted(name for name, a in ATTACKS.items() if not a.needs_queries)


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
                       References(refs[0], refs[1], y), population=~is_member)


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


@pytest.mark.parametrize("name", ALL)
def test_members_score_higher_on_leaky_outputs(name):
    from sklearn.metrics import roc_auc_score

    z, y, is_member = _synthetic()
    scores = ATTACKS[name].score(_inputs(z, y, is_member))
    assert scores.shape == (len(y),)
    assert roc_auc_score(is_member, scores) > 0.6, name


@pytest.mark.parametrize("name", ALL)
def test_deterministic_and_order_equivariant(name):
    z, y, is_member = _synthetic(n=120, seed=3)
    folds = np.arange(len(y)) % 4
    refs = _reference_logits(y, seed=4)
    a = ATTACKS[name].score(_inputs(z, y, is_member, folds, refs=refs))
    b = ATTACKS[name].score(_inputs(z, y, is_member, folds, refs=refs))
    assert np.array_equal(a, b)
    perm = np.random.default_rng(1).permutation(len(y))
    refs_p = (refs[0][:, perm], refs[1][:, perm])
    c = ATTACKS[name].score(_inputs(z[perm], y[perm], is_member[perm], folds[perm],
                                    refs=refs_p))
    assert np.allclose(c, a[perm])


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
                       r"allowed under 'top-k:3': loss, confidence, correctness, class-loss"):
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


def test_class_threshold_is_cross_fitted():
    # Flipping one record's membership must not change its own score.
    z, y, is_member = _synthetic(n=200, seed=5)
    folds = np.arange(200) % 5
    base = ATTACKS["class-loss"].score(_inputs(z, y, is_member, folds))
    flipped = is_member.copy()
    flipped[17] = ~flipped[17]
    again = ATTACKS["class-loss"].score(_inputs(z, y, flipped, folds))
    assert again[17] == base[17]
    same_fold = folds == folds[17]
    assert np.array_equal(again[same_fold], base[same_fold])
