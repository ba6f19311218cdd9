"""Output defences (temperature, noise, memguard) and their exposure settings."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from miaudit.errors import ExposureError
from miaudit.signals import observe, parse_exposure
from miaudit.signals.defences import (
    DEFENCES,
    gaussian_noise,
    memguard,
    temperature_scale,
)
from miaudit.signals.exposure import EXPOSURE_KINDS, RELEASED_FIELDS, Exposure, apply_defence
from miaudit.targets import check_outputs

PROBS_FIELDS = {"probs", "loss", "predicted"}


def _normalise(w: np.ndarray) -> np.ndarray:
    return w / w.sum(axis=1, keepdims=True)


@st.composite
def prob_rows(draw, max_classes: int = 8) -> np.ndarray:
    """Probability matrices (N, C): smooth rows, near-one-hot rows, rows with exact ties and
    zeros (small integer weights), and exactly uniform rows."""
    n = draw(st.integers(1, 6))
    c = draw(st.integers(2, max_classes))
    kind = draw(st.sampled_from(["smooth", "peaked", "tied", "uniform"]))
    if kind == "uniform":
        return np.full((n, c), 1.0 / c)
    if kind == "tied":
        ints = draw(st.lists(st.integers(0, 3), min_size=n * c, max_size=n * c))
        w = np.array(ints, dtype=np.float64).reshape(n, c)
        w[w.sum(axis=1) == 0, 0] = 1.0
        return _normalise(w)
    scale = 60.0 if kind == "peaked" else 3.0
    z = draw(st.lists(st.floats(-scale, scale), min_size=n * c, max_size=n * c))
    return softmax(np.array(z).reshape(n, c), axis=1)


def _assert_valid(p: np.ndarray) -> None:
    assert p.dtype == np.float64
    assert np.isfinite(p).all()
    assert (p >= 0).all()
    assert np.allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-9)


# --- temperature -------------------------------------------------------------------------


@settings(max_examples=80)
@given(prob_rows(), st.floats(0.05, 50.0))
def test_temperature_matches_scipy_softmax_and_keeps_the_label(p, T):
    released = temperature_scale(np.log(np.maximum(p, 1e-300)), T)
    _assert_valid(released)
    expected = softmax(np.log(np.maximum(p, 1e-300)) / T, axis=1)
    assert np.allclose(released, expected, rtol=1e-9, atol=1e-12)
    # rows whose top two log-probabilities are not (nearly) tied keep their label
    logp = np.sort(np.log(np.maximum(p, 1e-300)), axis=1)
    clear = (logp[:, -1] - logp[:, -2]) > 1e-6
    assert (np.argmax(released, axis=1) == np.argmax(p, axis=1))[clear].all()


@settings(max_examples=50)
@given(prob_rows())
def test_temperature_one_is_the_identity(p):
    released = temperature_scale(np.log(np.maximum(p, 1e-300)), 1.0)
    assert np.allclose(released, p, rtol=1e-9, atol=1e-15)


def test_temperature_of_logits_equals_temperature_of_log_probs():
    z = np.array([[3.0, 1.0, -2.0], [0.0, 0.0, 5.0]])
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert np.allclose(temperature_scale(z, 3.0), temperature_scale(log_p, 3.0))
    assert np.allclose(temperature_scale(z, 3.0), softmax(z / 3.0, axis=1))


def test_high_temperature_flattens_toward_uniform():
    rng = np.random.default_rng(1)
    p = softmax(rng.normal(0, 4, size=(50, 5)), axis=1)
    log_p = np.log(p)
    entropies = [-(q * np.log(q)).sum(axis=1) for q in
                 (temperature_scale(log_p, T) for T in (1.0, 2.0, 10.0, 1e4))]
    for lower, higher in pairwise(entropies):
        assert (higher > lower).all()
    assert np.allclose(temperature_scale(log_p, 1e4), 0.2, atol=1e-2)
    # and T < 1 sharpens
    assert (temperature_scale(log_p, 0.5).max(axis=1) > p.max(axis=1)).all()


def test_tiny_temperature_gives_one_hot_without_nan():
    p = np.array([[0.25, 0.25, 0.25, 0.25], [0.5, 0.3, 0.2, 0.0]])
    released = temperature_scale(np.log(np.maximum(p, 1e-300)), 1e-300)
    _assert_valid(released)
    assert np.allclose(released[0], 0.25)  # a uniform row stays uniform
    assert released[1].tolist() == [1.0, 0.0, 0.0, 0.0]


# --- noise -------------------------------------------------------------------------------


@settings(max_examples=30)
@given(prob_rows())
def test_noise_zero_is_the_identity(p):
    assert np.array_equal(gaussian_noise(p, 0.0, np.random.default_rng(0)), p)


@settings(max_examples=50)
@given(prob_rows(), st.floats(1e-6, 5.0), st.integers(0, 2**32 - 1))
def test_noise_keeps_rows_valid(p, sigma, seed):
    _assert_valid(gaussian_noise(p, sigma, np.random.default_rng(seed)))


def test_noise_change_grows_with_sigma_and_is_fresh_per_record():
    p = np.tile([[0.6, 0.3, 0.1]], (2000, 1))
    changes = [np.abs(gaussian_noise(p, s, np.random.default_rng(3)) - p).mean()
               for s in (0.001, 0.01, 0.05, 0.2)]
    assert all(a < b for a, b in pairwise(changes))
    released = gaussian_noise(p, 0.01, np.random.default_rng(3))
    assert len(np.unique(released[:, 0])) == len(p)  # identical rows, different noise


def test_noise_row_clipped_to_zero_becomes_uniform():
    p = np.tile([[0.5, 0.5]], (1000, 1))
    released = gaussian_noise(p, 10.0, np.random.default_rng(0))
    _assert_valid(released)
    # about a quarter of the rows get two negative draws and are released as uniform
    uniform = (released == 0.5).all(axis=1)
    assert 150 < uniform.sum() < 350


def test_noise_may_change_the_label():
    p = np.tile([[0.55, 0.45]], (500, 1))
    released = gaussian_noise(p, 0.2, np.random.default_rng(0))
    assert (np.argmax(released, axis=1) == 1).any()


# --- memguard ----------------------------------------------------------------------------


def _second(p: np.ndarray) -> np.ndarray:
    """Largest entry strictly below the row maximum (-inf for a uniform row)."""
    top = p.max(axis=1, keepdims=True)
    return np.where(p < top, p, -np.inf).max(axis=1)


@settings(max_examples=150)
@given(prob_rows(), st.floats(0.0, 2.0))
def test_memguard_keeps_the_label_and_the_budget(p, eps):
    released = memguard(p, eps)
    _assert_valid(released)
    assert (np.argmax(released, axis=1) == np.argmax(p, axis=1)).all()
    l1 = np.abs(released - p).sum(axis=1)
    assert (l1 <= eps + 1e-12).all()
    # the label also survives the validation and log of observe() (rows whose top two
    # entries differ only by float rounding have no stable label, with or without defence)
    out = check_outputs(p, "probs")
    obs = observe(out, np.zeros(len(p), dtype=int), f"memguard:{eps!r}")
    clear = ~(p.max(axis=1) - _second(p) <= 1e-12)
    assert (obs.predicted == np.argmax(p, axis=1))[clear].all()
    # the top class stays strictly the largest, except for exact ties that stay ties
    top = released[np.arange(len(p)), np.argmax(p, axis=1)]
    has_smaller = np.isfinite(_second(p))
    assert (top[has_smaller] > _second(released)[has_smaller]).all()


@settings(max_examples=100)
@given(prob_rows(), st.floats(0.0, 2.0))
def test_memguard_uses_the_largest_mixing_weight(p, eps):
    # every changed row is stopped by the budget or by the label margin
    released = memguard(p, eps)
    l1 = np.abs(released - p).sum(axis=1)
    budget_binds = l1 >= eps - 1e-9
    label_binds = (released.max(axis=1) - _second(released)) < 1e-9
    uniform = ~np.isfinite(_second(p))
    near_tie = (p.max(axis=1) - _second(p)) <= 1e-12
    assert (budget_binds | label_binds | uniform | near_tie).all()


@settings(max_examples=30)
@given(prob_rows())
def test_memguard_eps_zero_is_the_identity(p):
    assert np.array_equal(memguard(p, 0.0), p)


def test_memguard_larger_eps_flattens_more():
    p = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.98, 0.01, 0.01]])
    tops = [memguard(p, eps).max(axis=1) for eps in (0.0, 0.1, 0.3, 0.6)]
    for a, b in pairwise(tops):
        assert (b < a).all()
    # a budget of 2 flattens every row down to the label margin
    flat = memguard(p, 2.0)
    assert np.allclose(flat, 1 / 3, atol=1e-9)
    assert (np.argmax(flat, axis=1) == 0).all()


def test_memguard_keeps_exact_ties_as_numpy_argmax_picks_them():
    p = np.array([[0.1, 0.4, 0.4, 0.1], [0.3, 0.3, 0.3, 0.1]])
    released = memguard(p, 1.0)
    assert released[0, 1] == released[0, 2] and released[1, 0] == released[1, 2]
    assert np.argmax(released, axis=1).tolist() == [1, 0]


# --- every registered defence ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_common_properties_of_every_defence(name):
    defence = DEFENCES[name]
    setting = f"{name}:{defence.example!r}"
    exposure = parse_exposure(setting)
    assert exposure.is_defence and exposure.kind in EXPOSURE_KINDS
    assert RELEASED_FIELDS[name] == RELEASED_FIELDS["probabilities"]
    rng = np.random.default_rng(0)
    raw = check_outputs(rng.normal(0, 3, size=(300, 4)), "logits")
    released = apply_defence(raw, exposure, rng=np.random.default_rng(1))
    assert released.kind == "probs"
    _assert_valid(released.values)
    same_label = np.argmax(released.values, axis=1) == np.argmax(raw.values, axis=1)
    if defence.keeps_label:
        assert same_label.all()
    again = apply_defence(raw, exposure, rng=np.random.default_rng(2))
    assert np.array_equal(again.values, released.values) == defence.deterministic
    if defence.deterministic:  # record order does not matter
        order = rng.permutation(300)
        shuffled = apply_defence(check_outputs(raw.values[order], "logits"), exposure)
        assert np.allclose(shuffled.values, released.values[order], rtol=0, atol=1e-15)
    assert defence.description and defence.reference


@pytest.mark.parametrize("setting", ["logits", "probabilities", "top-k:2", "rounded:3",
                                     "label", "loss"])
def test_apply_defence_leaves_other_exposures_alone(setting):
    raw = check_outputs(np.array([[1.0, 2.0, 0.0]]), "logits")
    assert apply_defence(raw, setting) is raw
    assert not parse_exposure(setting).is_defence


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "param", "shown"),
    [("temperature:0.5", "temperature", 0.5, "temperature:0.5"),
     ("temperature:2", "temperature", 2.0, "temperature:2"),
     ("Temperature:2.0", "temperature", 2.0, "temperature:2"),
     ("noise:0.01", "noise", 0.01, "noise:0.01"),
     ("noise:0", "noise", 0.0, "noise:0"),
     ("noise:1e-5", "noise", 1e-5, "noise:1e-05"),
     ("memguard:0.3", "memguard", 0.3, "memguard:0.3"),
     ("memguard:-0", "memguard", 0.0, "memguard:0"),
     ("memguard:2", "memguard", 2.0, "memguard:2"),
     ("top-k:3", "top-k", 3, "top-k:3"), ("rounded:0", "rounded", 0, "rounded:0"),
     ("probs", "probabilities", None, "probabilities"), ("loss", "loss", None, "loss")],
)
def test_parse_and_print_defence_settings(text, kind, param, shown):
    e = parse_exposure(text)
    assert (e.kind, e.param) == (kind, param)
    assert str(e) == shown
    assert parse_exposure(str(e)) == e


@given(st.sampled_from(sorted(DEFENCES)), st.floats(0.0, 2.0, allow_subnormal=False)
       | st.floats(0.0, 1e300))
def test_defence_settings_round_trip(kind, value):
    if kind == "temperature" and value == 0:
        value = 1.0
    if kind == "memguard" and value > 2:
        value = value % 2
    e = parse_exposure(f"{kind}:{value!r}")
    assert e == Exposure(kind, value)
    assert parse_exposure(str(e)) == e
    assert not str(e).endswith(".0")


@pytest.mark.parametrize(
    ("text", "words"),
    [("temperature", "needs a number: write temperature:T (for example temperature:2)"),
     ("noise:", "needs a number: write noise:SIGMA"),
     ("temperature:0", "T must be > 0, got 0"),
     ("temperature:-2", "T must be > 0, got -2"),
     ("temperature:hot", "T must be a number, got 'hot'"),
     ("temperature:inf", "T must be a finite number"),
     ("noise:nan", "sigma must be a finite number"),
     ("noise:-0.1", "sigma must be >= 0, got -0.1"),
     ("memguard:2.5", "eps must be between 0 and 2, got 2.5"),
     ("memguard:-1", "eps must be between 0 and 2, got -1"),
     ("memguard", "write memguard:EPS"),
     ("memgard:0.3", "temperature:T, noise:SIGMA, memguard:EPS")],
)
def test_bad_defence_settings(text, words):
    with pytest.raises(ExposureError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_exposure(text)


def test_descriptions_are_one_plain_line():
    assert parse_exposure("temperature:2").description == (
        "full probability vector after temperature scaling with T = 2")
    for setting in ["logits", "probabilities", "top-k:3", "rounded:2", "label", "loss",
                    "temperature:0.5", "noise:0.01", "memguard:0.3"]:
        text = parse_exposure(setting).description
        assert text and "\n" not in text
    assert "0.01" in parse_exposure("noise:0.01").description
    assert "0.3" in parse_exposure("memguard:0.3").description


# --- observe -----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["temperature:0.5", "temperature:3", "noise:0.05",
                                     "memguard:0.5", "memguard:0"])
def test_observe_defence_releases_the_probability_fields_with_finite_loss(setting):
    z = np.array([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 0.5, 0.1], [1.0, 1.0, 4.0, 0.0]])
    y = np.array([0, 3, 2])
    obs = observe(check_outputs(z, "logits"), y, setting)
    assert obs.fields == PROBS_FIELDS == parse_exposure(setting).fields
    assert np.isfinite(obs.loss).all()
    assert np.allclose(obs.loss, -np.log(obs.probs[np.arange(3), y]))
    assert (obs.predicted == np.argmax(obs.probs, axis=1)).all()
    # exact zeros (a probability output) still give a finite, large loss
    hard = check_outputs(np.array([[1.0, 0.0], [0.5, 0.5]]), "probs")
    obs = observe(hard, np.array([1, 0]), setting)
    assert np.isfinite(obs.loss).all()
    if setting in ("temperature:0.5", "memguard:0"):
        assert obs.loss[0] > 600  # -log(1e-300)
    if setting == "temperature:3":
        assert obs.loss[0] > 200  # -log(1e-300) / 3


def test_observe_noise_is_deterministic_by_default_and_follows_rng():
    out = check_outputs(np.random.default_rng(0).normal(size=(20, 3)), "logits")
    y = np.zeros(20, dtype=int)
    a, b = observe(out, y, "noise:0.1"), observe(out, y, "noise:0.1")
    assert np.array_equal(a.probs, b.probs)
    c = observe(out, y, "noise:0.1", rng=np.random.default_rng(0))
    assert np.array_equal(a.probs, c.probs)  # None means default_rng(0)
    d = observe(out, y, "noise:0.1", rng=np.random.default_rng(5))
    assert not np.array_equal(a.probs, d.probs)


def test_observe_temperature_one_matches_probabilities():
    out = check_outputs(np.random.default_rng(0).normal(0, 3, size=(30, 5)), "logits")
    y = np.random.default_rng(1).integers(0, 5, size=30)
    plain, scaled = observe(out, y, "probabilities"), observe(out, y, "temperature:1")
    assert np.allclose(plain.probs, scaled.probs, rtol=1e-12, atol=1e-15)
    assert np.allclose(plain.loss, scaled.loss, rtol=1e-9, atol=1e-12)
    assert np.array_equal(plain.predicted, scaled.predicted)


# --- membership signal ---------------------------------------------------------------------


def _overfit_outputs(n: int = 4000, c: int = 10, seed: int = 0):
    """Probabilities of an overfit model: members get a higher true-class probability. The
    rest is spread evenly over the other classes, so each record's vector is a function of
    its true-class probability alone (temperature scaling is then monotone across records)."""
    rng = np.random.default_rng(seed)
    is_member = rng.random(n) < 0.5
    p_y = np.where(is_member, rng.beta(8, 1, n), rng.beta(2, 2, n))
    labels = rng.integers(0, c, n)
    probs = np.repeat(((1 - p_y) / (c - 1))[:, None], c, axis=1)
    probs[np.arange(n), labels] = p_y
    return check_outputs(probs, "probs"), labels, is_member


def test_temperature_leaves_the_loss_attack_unchanged():
    out, y, is_member = _overfit_outputs()
    base = roc_auc_score(is_member, -observe(out, y, "probabilities").loss)
    assert base > 0.75  # the synthetic model leaks
    for T in (0.5, 2.0, 5.0):
        obs = observe(out, y, f"temperature:{T}")
        assert roc_auc_score(is_member, -obs.loss) == pytest.approx(base, abs=1e-12)


def test_memguard_narrows_the_spread_of_confidences():
    out, y, is_member = _overfit_outputs()
    plain = observe(out, y, "probabilities")
    guarded = observe(out, y, "memguard:1.5")
    assert np.array_equal(guarded.predicted, plain.predicted)
    conf, conf_g = plain.probs.max(axis=1), guarded.probs.max(axis=1)
    assert conf_g.std() < 0.5 * conf.std()
    gap = conf[is_member].mean() - conf[~is_member].mean()
    gap_g = conf_g[is_member].mean() - conf_g[~is_member].mean()
    assert 0 < gap_g < 0.5 * gap
