"""The audit's epsilon lower bound is valid: simulated mechanisms of known epsilon.

Each test draws ``R`` independent runs of a mechanism whose (eps, delta) is known, with each
record's membership an independent fair coin (the one-run setting), and counts the runs
whose bound exceeds the true epsilon. A valid bound at ``alpha = 0.05`` exceeds it in at
most 5% of runs in expectation; the Monte-Carlo tolerance is the 99.9% quantile of
``Binomial(R, 0.05)`` (a valid bound fails a test by chance with probability <= 0.001).

Mechanisms:

* randomized response on the membership bit: score = bit, flipped with probability
  ``1 / (1 + e^eps)``: exactly (eps, 0)-DP, the case where the one-run bound is tight;
* the Gaussian mechanism: score = bit + N(0, sigma^2), (eps, delta)-DP at the sigma of the
  analytic Gaussian mechanism (Balle & Wang 2018, Theorem 8);
* a null model (scores independent of membership): eps = 0;
* for the former held-out-threshold bound: a (0, delta)-DP mechanism that, in a fifth of the
  runs, reveals the membership of ``5 delta m`` records chosen at random (each record is
  revealed with probability delta), on which the former bound exceeds the truth in about a
  fifth of the runs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics.privacy import (
    ONE_RUN_METHOD,
    _audit_bounds,
    audit_epsilon_lower_bound,
    guess_grid,
)

ALPHA = 0.05


def _tolerance(runs: int) -> int:
    """Most runs above the truth a valid bound shows, but with probability 0.001."""
    return int(stats.binom.ppf(0.999, runs, ALPHA))


def _bounds(scores, members, delta):
    return _audit_bounds(scores, members, delta=delta, alpha=ALPHA)[0]


def _randomized_response(runs, m, eps, rng):
    members = rng.random((runs, m)) < 0.5
    flipped = rng.random((runs, m)) < 1 / (1 + math.exp(eps))
    return (members ^ flipped).astype(float), members


def _gm_delta(eps: float, sigma: float) -> float:
    """delta of the Gaussian mechanism of sensitivity 1 at eps (Balle & Wang 2018)."""
    return (stats.norm.cdf(0.5 / sigma - eps * sigma)
            - math.exp(eps) * stats.norm.cdf(-0.5 / sigma - eps * sigma))


def _gm_sigma(eps: float, delta: float) -> float:
    return optimize.brentq(lambda s: _gm_delta(eps, s) - delta, 1e-2, 100.0, xtol=1e-12)


def test_analytic_gaussian_mechanism_calibration():
    # delta falls with eps and with sigma; the classical sigma sqrt(2 ln(1.25/delta)) / eps
    # is (eps, delta)-DP, so the exact sigma is smaller
    sigma = _gm_sigma(1.0, 1e-5)
    assert _gm_delta(1.0, sigma) == pytest.approx(1e-5, rel=1e-6)
    assert _gm_delta(1.5, sigma) < 1e-5 < _gm_delta(0.5, sigma)
    assert sigma < math.sqrt(2 * math.log(1.25 / 1e-5))


@pytest.mark.parametrize("eps", [1.0, 3.0])
def test_randomized_response_bound_rarely_exceeds_eps(eps):
    runs, m = 1000, 1000
    scores, members = _randomized_response(runs, m, eps, np.random.default_rng(int(eps)))
    bounds = _bounds(scores, members, 0.0)
    assert (bounds > eps).sum() <= _tolerance(runs)  # observed 14 (eps 1), 5 (eps 3); 73
    assert np.median(bounds) > 0.6 * eps  # not vacuous: medians 0.79 and 2.55


def test_randomized_response_with_delta():
    runs, m, eps = 200, 2000, 2.0
    scores, members = _randomized_response(runs, m, eps, np.random.default_rng(5))
    bounds = _bounds(scores, members, 1e-5)
    pure = _bounds(scores, members, 0.0)
    assert (bounds <= pure + 1e-12).all()  # the delta term only lowers the bound
    assert (bounds > eps).sum() <= _tolerance(runs)  # observed 1 of 200 (21 allowed)
    assert np.median(bounds) > 1.5  # observed 1.78


def test_gaussian_mechanism_bound_rarely_exceeds_its_epsilon():
    runs, m, delta, eps = 200, 2000, 1e-5, 2.0
    sigma = _gm_sigma(eps, delta)
    rng = np.random.default_rng(6)
    members = rng.random((runs, m)) < 0.5
    bounds = _bounds(members + rng.normal(scale=sigma, size=members.shape), members, delta)
    assert (bounds > eps).sum() <= _tolerance(runs)  # observed 0; max 0.53 and 1.83
    # observed 0 of 200; median 0.60, max 0.95: one run of a Gaussian reveals far less
    assert np.median(bounds) > 0.3


def test_null_model_bound_is_zero():
    runs, m = 1000, 2000
    rng = np.random.default_rng(7)
    members = rng.random((runs, m)) < 0.5
    bounds = _bounds(rng.random((runs, m)), members, 1e-5)
    assert (bounds == 0).sum() >= runs - _tolerance(runs)  # observed 995 of 1000


def _reveal(runs, m, delta, share, rng):
    """(0, delta)-DP: in a share of the runs, the memberships of delta m / share random
    records are shown (+1 member, -1 not); each record is shown with probability delta."""
    k = round(delta * m / share)
    members = rng.random((runs, m)) < 0.5
    scores = np.zeros((runs, m))
    for i in np.flatnonzero(rng.random(runs) < share):
        shown = rng.choice(m, k, replace=False)
        scores[i, shown] = np.where(members[i, shown], 1.0, -1.0)
    return scores, members


def test_the_audit_bound_survives_an_attacker_that_reveals_a_few_records():
    """An (0, delta)-DP mechanism that reveals the membership of a few records in some runs:
    the true epsilon at this delta is 0. The former bound (FPR / FNR Clopper-Pearson on a
    held-out half, records treated as independent trials) exceeded it in 36 of these 150
    runs, up to 1.74; the one-run bound never does."""
    runs, m, delta = 150, 20_000, 1e-3
    scores, members = _reveal(runs, m, delta, 0.2, np.random.default_rng(8))
    assert (_bounds(scores, members, delta) == 0).all()


def test_public_function_matches_the_vectorised_one():
    rng = np.random.default_rng(9)
    scores, members = _randomized_response(5, 700, 1.5, rng)
    scores += rng.normal(scale=0.01, size=scores.shape)
    for delta in (0.0, 1e-5):
        many = _bounds(scores, members, delta)
        for s, y, expected in zip(scores, members, many, strict=True):
            res = audit_epsilon_lower_bound(s, y, bernoulli_membership=True, delta=delta)
            assert res.value == pytest.approx(expected, abs=1e-12)
            assert res.method == ONE_RUN_METHOD
            assert res.one_run.n_hypotheses == len(guess_grid(700))
            assert res.one_run.n_canaries == 700 and res.one_run.delta == delta


def test_membership_not_drawn_at_random_gives_no_number():
    member = np.arange(100) < 50
    with pytest.warns(UndefinedMetricWarning, match="not drawn at random per record"):
        res = audit_epsilon_lower_bound(member.astype(float), member,
                                        bernoulli_membership=False)
    assert res.value is None and "not drawn at random per record" in res.reason
    assert res.method == ONE_RUN_METHOD and res.one_run is None


def test_guess_grid():
    grid = guess_grid(1000)
    assert (1, 0) in grid and (0, 1) in grid and (500, 500) in grid
    assert all(kp + kn <= 1000 and kp + kn > 0 for kp, kn in grid)
    assert len(grid) == len(set(grid)) == 21
    assert guess_grid(1) == [(0, 1), (1, 0)]


def test_bound_uses_every_record_and_ties_by_position():
    # a perfect ranking: every guess right, the bound grows with the records
    rng = np.random.default_rng(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = []
        for m in (100, 1000, 10_000):
            member = rng.random(m) < 0.5
            values.append(audit_epsilon_lower_bound(member.astype(float), member,
                                                    bernoulli_membership=True).value)
    assert values == sorted(values) and values[0] > 1


@pytest.mark.slow
@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0, 4.0])
def test_randomized_response_large(eps):
    runs, m = 2000, 10_000
    rng = np.random.default_rng(100 + int(4 * eps))
    exceed = 0
    for _ in range(4):  # in blocks, to bound memory
        scores, members = _randomized_response(runs // 4, m, eps, rng)
        exceed += int((_bounds(scores, members, 0.0) > eps).sum())
    assert exceed <= _tolerance(runs)  # observed 55, 56, 35, 21 of 2000 (131 allowed)


@pytest.mark.slow
@pytest.mark.parametrize("eps", [1.0, 4.0])
def test_gaussian_mechanism_large(eps):
    runs, m, delta = 1000, 5000, 1e-5
    sigma = _gm_sigma(eps, delta)
    rng = np.random.default_rng(200 + int(eps))
    members = rng.random((runs, m)) < 0.5
    bounds = _bounds(members + rng.normal(scale=sigma, size=members.shape), members, delta)
    assert (bounds > eps).sum() <= _tolerance(runs)  # observed 0; max 0.53 and 1.83
