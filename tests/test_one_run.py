"""The one-run audit of Steinke, Nasr & Jagielski (2023): the bound and the canary audit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from miaudit.errors import ConfigError, MiauditWarning
from miaudit.metrics.one_run import (
    OneRunBound,
    default_guesses,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
)

# ---------------------------------------------------------------- the bound (pure)


def _direct_epsilon(r: int, v: int, beta: float) -> float:
    """The delta = 0 bound straight from scipy: the root of P[Bin(r, q(eps)) >= v] = beta."""
    def f(eps):
        return stats.binom.sf(v - 1, r, 1 / (1 + math.exp(-eps))) - beta

    if f(0.0) > 0:
        return 0.0
    return optimize.brentq(f, 0.0, 60.0, xtol=1e-12)


@pytest.mark.parametrize(("r", "v", "beta"), [
    (100, 100, 0.05), (100, 80, 0.05), (200, 150, 0.01), (1000, 560, 0.05), (10, 9, 0.1),
    (500, 260, 0.05),
])
def test_bound_matches_a_direct_binomial_computation(r, v, beta):
    assert one_run_epsilon(5000, r, v, beta=beta) == pytest.approx(
        _direct_epsilon(r, v, beta), abs=1e-7)


def test_p_value_is_the_binomial_tail_and_the_delta_term():
    m, r, v, eps, delta = 1000, 200, 150, 0.7, 1e-4
    q = special.expit(eps)
    tail = stats.binom.sf(v - 1, r, q)
    assert one_run_p_value(m, r, v, eps) == pytest.approx(tail, rel=1e-12)
    pmf = stats.binom.pmf(np.arange(r + 1), r, q)
    term = max(pmf[v - i : v].sum() / i for i in range(1, v + 1))
    assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(
        tail + 2 * m * delta * term, rel=1e-9)


def test_all_correct_guesses_give_the_closed_form():
    # P[Bin(r, q) >= r] = q^r = beta  =>  eps = logit(beta^(1/r))
    for r in (20, 100, 1000):
        q = 0.05 ** (1 / r)
        assert one_run_epsilon(r, r, r) == pytest.approx(math.log(q / (1 - q)), abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(r=st.integers(1, 400), data=st.data())
def test_bound_is_monotone_in_correct_guesses_and_zero_at_chance(r, data):
    v = data.draw(st.integers(0, r))
    eps = one_run_epsilon(1000, r, v)
    assert eps >= 0
    if v <= r / 2:
        assert eps == 0.0
    if v < r:
        assert one_run_epsilon(1000, r, v + 1) >= eps
    # a stricter significance or a positive delta never raises the bound
    assert one_run_epsilon(1000, r, v, beta=0.01) <= eps + 1e-9
    assert one_run_epsilon(1000, r, v, delta=1e-5) <= eps + 1e-9


@settings(max_examples=30, deadline=None)
@given(r=st.integers(5, 300), frac=st.floats(0.5, 1.0), delta=st.sampled_from([1e-6, 1e-5]))
def test_delta_bound_is_the_first_eps_not_rejected(r, frac, delta):
    v = math.ceil(frac * r)
    eps = one_run_epsilon(1000, r, v, delta=delta)
    if eps > 0:  # every smaller eps is rejected, eps itself (just above) is not
        for e in np.linspace(0, eps, 9)[:-1]:
            assert one_run_p_value(1000, r, v, float(e), delta) <= 0.05 + 1e-9
        assert one_run_p_value(1000, r, v, eps + 1e-6, delta) >= 0.05 - 1e-6


def test_audit_counts_guesses_on_both_sides():
    included = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    scores = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)  # a perfect ranking but one
    res = one_run_audit(scores, included, k_pos=3, k_neg=3)
    assert isinstance(res, OneRunBound)
    assert (res.n_guesses, res.n_correct, res.n_canaries, res.n_included) == (6, 6, 8, 4)
    res = one_run_audit(scores, included, k_pos=4, k_neg=0)
    assert (res.n_guesses, res.n_correct) == (4, 3)  # the 4th highest (5) is out
    # sign: reversed scores guess the opposite, nothing is learnt
    assert one_run_audit(-scores, included, k_pos=3, k_neg=3).epsilon == 0.0


def test_grid_of_guesses_is_bonferroni_corrected():
    rng = np.random.default_rng(0)
    included = rng.random(2000) < 0.5
    scores = included + rng.normal(scale=0.8, size=2000)
    fixed = one_run_audit(scores, included, k_pos=200, k_neg=200)
    grid = one_run_audit(scores, included, k_pos=[50, 200], k_neg=[50, 200])
    assert grid.n_hypotheses == 4 and fixed.n_hypotheses == 1
    # the pair (200, 200) alone at beta / 4 is a lower bound of the grid's maximum
    corrected = one_run_epsilon(2000, 400, fixed.n_correct, beta=0.05 / 4)
    assert grid.epsilon >= corrected - 1e-12 and corrected < fixed.epsilon


def test_audit_of_independent_scores_is_near_zero():
    rng = np.random.default_rng(1)
    hits = [one_run_audit(rng.normal(size=1000), rng.random(1000) < 0.5, k_pos=100,
                          k_neg=100).epsilon > 0 for _ in range(40)]
    assert sum(hits) <= 6  # at most ~5% of the runs by construction (beta = 0.05)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scores": [1.0, 2.0], "included": [True]}, "different lengths"),
    ({"scores": [1.0, np.nan], "included": [True, False]}, "NaN"),
    ({"scores": [1.0, 2.0], "included": [True, False], "k_pos": 2, "k_neg": 1},
     "at most the 2 canaries"),
    ({"scores": [1.0, 2.0], "included": [True, False], "k_pos": 0, "k_neg": 0},
     "at least one"),
    ({"scores": [1.0, 2.0], "included": [True, False], "beta": 1.5}, "beta"),
    ({"scores": [1.0, 2.0], "included": [2, 0]}, "boolean"),
])
def test_bad_audit_input_is_refused(kwargs, match):
    args = {"k_pos": 1, "k_neg": 1, **kwargs}
    with pytest.raises(ConfigError, match=match):
        one_run_audit(**args)


def test_default_guesses():
    assert default_guesses(1000) == 100 and default_guesses(5) == 1


# ---------------------------------------------------------------- the canary audit

pytest.importorskip("torch")
pytest.importorskip("opacus")
from miaudit.audits.sweep import OneRunResult, audit_one_run  # noqa: E402

ONE_RUN = {"data": "digits", "canaries": 500, "seed": 0}
SMALL = ["hidden=128", "epochs=30", "lr=0.003"]


def test_non_private_model_with_mislabelled_canaries_leaks():
    res = audit_one_run(**ONE_RUN, model_params=SMALL)
    assert res.dp_epsilon_accountant is None and not res.exceeds_accountant
    assert res.bound.epsilon > 2.0 and res.bound.accuracy > 0.95
    assert res.bound_pure.epsilon >= res.bound.epsilon
    s = res.summary()
    assert s["canaries"]["n"] == 500 and s["canaries"]["mislabelled"]
    assert s["one_run"]["n_guesses"] == 100 and s["flag"] is None
    # the same guesses read through Gaussian DP: a tighter epsilon from the same canaries
    gdp = s["one_run_gdp"]
    assert gdp["n_correct"] == s["one_run"]["n_correct"] and gdp["delta"] == 1e-5
    assert gdp["mu"] > 0 and gdp["epsilon"] > res.bound.epsilon
    assert len(res.canaries) == 500
    assert (res.canaries["label"] != res.canaries["true_label"]).all()
    # a record's score is higher when included (the LOSS attack's direction)
    inc = res.canaries["included"].to_numpy()
    assert res.canaries["score"][inc].mean() > res.canaries["score"][~inc].mean()


def test_dp_model_bound_stays_below_the_accountant():
    res = audit_one_run(**ONE_RUN, model_params=[*SMALL, "dp_epsilon=2"])
    assert res.dp_epsilon_accountant == pytest.approx(2.0, abs=0.02)
    assert res.bound.epsilon < res.dp_epsilon_accountant and not res.exceeds_accountant
    assert res.bound.delta == 1e-5
    assert res.gdp.epsilon < res.dp_epsilon_accountant
    assert res.summary()["target"]["privacy"]["accountant"] == "rdp"


def test_a_bound_above_the_accountant_is_flagged_loudly(monkeypatch):
    import miaudit.training as models

    real = models.train

    def lying_train(*args, **kwargs):  # a "DP" model that is not private at all
        trained = real(*args, **kwargs)
        trained.privacy = {"epsilon": 0.05, "delta": 1e-5, "accountant": "rdp"}
        return trained

    monkeypatch.setattr(models, "train", lying_train)
    with pytest.warns(MiauditWarning, match="A BUG SOMEWHERE"):
        res = audit_one_run(**ONE_RUN, model_params=SMALL)
    assert res.exceeds_accountant and "a bug somewhere" in res.flag
    assert res.summary()["exceeds_accountant"] is True


def test_one_run_settings_are_checked_before_training():
    with pytest.raises(ConfigError, match="canaries must lie between 2"):
        audit_one_run(data="wine", canaries=177)
    with pytest.raises(ConfigError, match="below the recipe's dp_delta"):
        audit_one_run(data="wine", model_params=["dp_epsilon=1"], canaries=50, delta=1e-7)


def test_one_run_result_type():
    assert {"bound", "bound_pure", "canaries"} <= set(OneRunResult.__dataclass_fields__)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MiauditWarning)  # no flag on an honest model
        audit_one_run(data="wine", canaries=60, model_params=["hidden=8", "epochs=2"])
