"""Signals and exposures against direct formulas and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miaudit.errors import ExposureError, OutputError
from miaudit.signals import (
    entropy,
    logit_scaled_confidence,
    logit_scaled_confidence_from_probs,
    loss_from_logits,
    modified_entropy,
    observe,
    parse_exposure,
)
from miaudit.targets import check_outputs

logit_rows = arrays(np.float64, (6, 4), elements=st.floats(-20, 20))


def _probs(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@given(logit_rows, st.lists(st.integers(0, 3), min_size=6, max_size=6))
def test_signals_match_direct_formulas(z, y):
    y = np.array(y)
    p = _probs(z)
    rows = np.arange(6)
    p_y = p[rows, y]
    assert np.allclose(loss_from_logits(z, y), -np.log(p_y), atol=1e-9)
    # phi = log(p_y / (1 - p_y)); compare where it is numerically well defined.
    ok = (p_y > 1e-12) & (p_y < 1 - 1e-9)
    assert np.allclose(logit_scaled_confidence(z, y)[ok], np.log(p_y / (1 - p_y))[ok], atol=1e-6)
    assert np.allclose(logit_scaled_confidence_from_probs(p, y)[ok],
                       np.log(p_y / (1 - p_y))[ok], atol=1e-6)
    assert np.allclose(entropy(p), -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=1),
                       atol=1e-9)
    # direct formula with 1 - p_i written as the sum of the other entries and log p_y
    # from the logits, so it stays exact for confident rows
    log_p = z - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) \
        - z.max(axis=1, keepdims=True)

    def rest(i, j):
        return sum(p[i, k] for k in range(4) if k != j)

    direct = np.array([
        -rest(i, y[i]) * log_p[i, y[i]]
        - sum(p[i, j] * np.log(rest(i, j)) for j in range(4) if j != y[i])
        for i in range(6)
    ])
    assert np.allclose(modified_entropy(p, y), direct, rtol=1e-9, atol=1e-9)


def test_phi_is_finite_when_probability_rounds_to_one():
    z = np.array([[60.0, 0.0, 0.0]])
    phi = logit_scaled_confidence(z, np.array([0]))
    assert np.isfinite(phi).all()
    assert phi[0] == pytest.approx(60.0 - np.log(2.0))


def test_entropy_of_uniform_and_one_hot():
    assert entropy(np.full((1, 8), 1 / 8))[0] == pytest.approx(np.log(8))
    assert entropy(np.eye(3))[0] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("text", "kind", "param"),
    [("logits", "logits", None), ("probabilities", "probabilities", None),
     ("probs", "probabilities", None), ("top-k:3", "top-k", 3), ("rounded:0", "rounded", 0),
     ("LABEL", "label", None), ("loss", "loss", None)],
)
def test_parse_exposure(text, kind, param):
    e = parse_exposure(text)
    assert (e.kind, e.param) == (kind, param)


@pytest.mark.parametrize(
    ("text", "words"),
    [("top-k:0", "k must be >= 1, got 0"), ("top-k", "needs a number"),
     ("rounded:x", "must be an integer"), ("rounded:-1", ">= 0"), ("softmax", "unknown"),
     ("label:2", "takes no parameter")],
)
def test_parse_exposure_errors(text, words):
    with pytest.raises(ExposureError, match=words):
        parse_exposure(text)


def _outputs():
    z = np.array([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 0.5, 0.1], [1.0, 1.0, 4.0, 0.0]])
    return check_outputs(z, "logits"), np.array([0, 3, 2])


def test_exposures_release_only_their_fields():
    out, y = _outputs()
    expected = {
        "logits": {"logits", "probs", "loss", "predicted"},
        "probabilities": {"probs", "loss", "predicted"},
        "rounded:2": {"probs", "loss", "predicted"},
        "top-k:2": {"loss", "predicted"},
        "label": {"predicted"},
        "loss": {"loss"},
    }
    for setting, fields in expected.items():
        obs = observe(out, y, setting)
        assert obs.fields == fields, setting
        assert obs.fields == parse_exposure(setting).fields


def test_top_k_loss_is_exact_inside_and_imputed_outside():
    out, y = _outputs()
    p = out.probs()
    obs = observe(out, y, "top-k:2")
    # record 0: label 0 is the top class -> exact loss
    assert obs.loss[0] == pytest.approx(-np.log(p[0, 0]))
    # record 1: label 3 is outside the top 2 -> leftover mass spread over 2 classes,
    # capped by the second-largest probability
    top = np.sort(p[1])[::-1][:2]
    imputed = min(top[1], (1 - top.sum()) / 2)
    assert obs.loss[1] == pytest.approx(-np.log(imputed))
    assert obs.predicted.tolist() == [0, 1, 2]


def test_rounded_exposure_rounds_and_bounds_zero():
    out, y = _outputs()
    obs = observe(out, y, "rounded:1")
    rounded = np.round(out.probs(), 1)
    # the attacker's estimate: zeros at 0.025 (the middle of [0, 0.05)), rows renormalised
    estimate = np.maximum(rounded, 0.025)
    estimate /= estimate.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(obs.probs, estimate, rtol=1e-12)
    np.testing.assert_array_equal(obs.predicted, np.argmax(rounded, axis=1))
    assert np.isfinite(obs.loss).all() and np.isfinite(obs.phi).all()
    assert obs.loss[0] == pytest.approx(-np.log(estimate[0, 0]))
    # class 3 of record 0 rounds to 0
    zero = observe(out, np.array([3, 3, 3]), "rounded:1")
    assert rounded[0, 3] == 0.0
    assert zero.loss[0] == pytest.approx(-np.log(0.025 / np.maximum(rounded[0], 0.025).sum()))


def test_logits_exposure_needs_logits():
    z, y = _outputs()
    probs = check_outputs(z.probs(), "probs")
    with pytest.raises(ExposureError, match="use --exposure probabilities"):
        observe(probs, y, "logits")


@pytest.mark.parametrize(
    ("values", "kind", "words"),
    [(np.zeros(5), "logits", "2-D"), (np.full((3, 2), np.nan), "logits", "NaN"),
     (np.array([[0.5, 0.6]]), "probs", "sum to 1"), (np.array([[1.5, -0.5]]), "probs", "[0, 1]"),
     (np.zeros((4, 3)), "logits", "rows of outputs for 5 records")],
)
def test_check_outputs_errors(values, kind, words):
    with pytest.raises(OutputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_outputs(values, kind, n_records=5 if "rows" in words else None)


def test_check_outputs_wrong_class_count():
    with pytest.raises(OutputError, match="4 columns but the data has 3 classes"):
        check_outputs(np.zeros((2, 4)), "logits", n_classes=3)


@settings(max_examples=50)
@given(logit_rows)
def test_probability_outputs_round_trip(z):
    p = _probs(z)
    out = check_outputs(p, "probs")
    assert np.allclose(out.probs(), p)


def test_precision_for_very_confident_records():
    from miaudit.signals.transforms import one_minus

    for margin in (30.0, 40.0, 50.0):
        z = np.array([[margin, 0.0, 0.0]])
        p = _probs(z)
        # exact values: 1 - p_y = 2 e^-m / (1 + 2 e^-m)
        rest = 2 * np.exp(-margin) / (1 + 2 * np.exp(-margin))
        assert one_minus(p)[0, 0] == pytest.approx(rest, rel=1e-12)
        phi = logit_scaled_confidence_from_probs(p, np.array([0]))
        assert phi[0] == pytest.approx(margin - np.log(2.0), rel=1e-9)
        # Mentr ~ (1 - p_y)^2 + sum_i p_i^2 for tiny other probabilities
        expected = rest * rest + 2 * (np.exp(-margin) / (1 + 2 * np.exp(-margin))) ** 2
        assert modified_entropy(p, np.array([0]))[0] == pytest.approx(expected, rel=1e-6)
    # more confident -> strictly smaller modified entropy, even far in the tail
    m = [modified_entropy(_probs(np.array([[k, 0.0, 0.0]])), np.array([0]))[0]
         for k in (30.0, 40.0, 50.0)]
    assert m[0] > m[1] > m[2] > 0


def test_zero_probabilities_give_finite_losses():
    out = check_outputs(np.array([[1.0, 0.0], [0.5, 0.5]]), "probs")
    obs = observe(out, np.array([1, 0]), "probabilities")
    assert np.isfinite(obs.loss).all() and obs.loss[0] > 600


def test_checking_probabilities_twice_changes_nothing():
    from miaudit.targets import check_outputs

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=200)
    once = check_outputs(p, "probs").values
    twice = check_outputs(once, "probs").values
    assert np.array_equal(once, twice)
    off = check_outputs(p * (1 + 1e-8), "probs").values  # slightly off rows: renormalised
    np.testing.assert_allclose(off.sum(axis=1), 1.0, atol=1e-12)
