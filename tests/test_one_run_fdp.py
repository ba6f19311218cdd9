"""The one-run audit read through Gaussian DP (miaudit.metrics.one_run_fdp): validity by
simulation on a mechanism that is exactly mu-GDP, no false leakage on scores without
signal, the GDP -> (eps, delta) conversion, and the multiple-pair correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from miaudit.errors import ConfigError
from miaudit.metrics.one_run import one_run_audit
from miaudit.metrics.one_run_fdp import (
    MU_STEP,
    gdp_epsilon,
    gdp_rejected,
    one_run_gdp,
    one_run_mu,
)

M, K = 1000, 100


def _runs(mu_true: float, n: int, seed: int):
    """``n`` canary audits of a mechanism that is exactly ``mu_true``-GDP: a canary's score
    is N(mu_true, 1) when included, N(0, 1) when not."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        included = rng.random(M) < 0.5
        yield rng.normal(mu_true * included, 1.0), included


def test_no_signal_gives_zero_in_at_least_95_percent_of_audits():
    mus = [one_run_gdp(s, inc, k_pos=K, k_neg=K).mu for s, inc in _runs(0.0, 200, 0)]
    assert np.mean(np.asarray(mus) == 0.0) >= 0.95


@pytest.mark.parametrize("mu_true", [0.5, 1.0, 2.0])
def test_the_bound_exceeds_the_true_mu_in_at_most_beta_of_audits(mu_true):
    bounds = [one_run_gdp(s, inc, k_pos=K, k_neg=K, beta=0.05)
              for s, inc in _runs(mu_true, 60, 1)]
    mus = np.array([b.mu for b in bounds])
    assert np.mean(mus > mu_true) <= 0.05
    assert mus.mean() > 0.3 * mu_true  # and it finds something
    # tighter than the binomial bound from the same guesses, at the same delta
    binomial = [one_run_audit(s, inc, k_pos=K, k_neg=K, delta=1e-5).epsilon
                for s, inc in _runs(mu_true, 60, 1)]
    assert np.mean([b.epsilon for b in bounds]) > np.mean(binomial)
    assert np.mean([b.epsilon for b in bounds]) < gdp_epsilon(mu_true, 1e-5)


def test_gdp_to_epsilon_solves_the_conversion():
    for mu in (0.5, 1.0, 3.0):
        eps = gdp_epsilon(mu, 1e-5)
        delta = (special.ndtr(-eps / mu + mu / 2)
                 - np.exp(eps) * special.ndtr(-eps / mu - mu / 2))
        assert delta == pytest.approx(1e-5, rel=1e-6)
    assert gdp_epsilon(0.0, 1e-5) == 0.0
    assert gdp_epsilon(0.5, 1e-5) < gdp_epsilon(1.0, 1e-5) < gdp_epsilon(2.0, 1e-5)
    with pytest.raises(ConfigError, match="delta"):
        gdp_epsilon(1.0, 0.0)


def test_rejection_is_monotone_in_mu_and_in_the_correct_guesses():
    grid = np.arange(1, 400) * MU_STEP
    for v in (110, 150, 190):
        rejected = gdp_rejected(grid, M, 2 * K, v, 0.05)
        # every mu below the first one kept is rejected, none above
        first_kept = np.flatnonzero(~rejected)[0]
        assert rejected[:first_kept].all() and not rejected[first_kept:].any()
    assert one_run_mu(M, 2 * K, 150) < one_run_mu(M, 2 * K, 180) < one_run_mu(M, 2 * K, 200)
    assert one_run_mu(M, 2 * K, 100) == 0.0


def test_several_pairs_are_corrected_for():
    s, inc = next(_runs(1.0, 1, 3))
    b = one_run_gdp(s, inc, k_pos=[50, 100], k_neg=[50, 100])
    assert b.n_hypotheses == 4
    assert b.mu == one_run_mu(M, b.n_guesses, b.n_correct, beta=0.05 / 4)
    with pytest.raises(ConfigError, match="at least one"):
        one_run_gdp(s, inc, k_pos=0, k_neg=0)
