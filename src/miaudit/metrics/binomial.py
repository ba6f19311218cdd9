"""Exact binomial figures: Clopper-Pearson intervals and binomial tail probabilities.

Written once here for the AUC fallback interval (:mod:`miaudit.metrics.roc`) and the TPR at
FPR interval (:mod:`miaudit.metrics.tpr`). Counts ``k`` and trials ``n`` may be fractional
(continuous extension through the regularised incomplete beta function), which the
clustered intervals use for counts deflated by a design effect.
"""

from __future__ import annotations

from scipy import special


def _cp_upper(k: float, n: float, a: float) -> float:
    """One-sided Clopper-Pearson upper bound at level ``a`` (fractional ``k``, ``n``)."""
    return 1.0 if k >= n else float(special.betaincinv(k + 1, n - k, 1 - a))


def _cp_lower(k: float, n: float, a: float) -> float:
    """One-sided Clopper-Pearson lower bound at level ``a`` (fractional ``k``, ``n``)."""
    return 0.0 if k <= 0 else float(special.betaincinv(k, n - k + 1, a))


def _beta_interval(k: float, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson interval (two one-sided bounds at ``alpha / 2``); ``k`` may be
    fractional (continuous extension)."""
    if n <= 0:
        return 0.0, 1.0
    return _cp_lower(k, n, alpha / 2), _cp_upper(k, n, alpha / 2)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval for a binomial proportion ``k / n``.

    ``lo = Beta^{-1}(alpha/2; k, n-k+1)`` (0 when ``k = 0``) and
    ``hi = Beta^{-1}(1-alpha/2; k+1, n-k)`` (1 when ``k = n``); coverage >= ``1 - alpha``.

    Parameters
    ----------
    k : int
        Number of successes, ``0 <= k <= n``.
    n : int
        Number of trials. ``n = 0`` gives the uninformative ``(0.0, 1.0)``.
    alpha : float, default 0.05
        Significance level.

    Returns
    -------
    (lo, hi) : tuple of float

    References
    ----------
    Clopper & Pearson (1934), Biometrika 26(4).

    Example
    -------
    >>> lo, hi = clopper_pearson(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    return _beta_interval(int(k), int(n), alpha)


def _tail_ge(x: float, n: float, p: float) -> float:
    """``P[Bin(n, p) >= x]``, continuous in ``x`` and ``n`` (regularised incomplete beta)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    return float(special.betainc(x, n - x + 1, p))


def _cdf_le(x: float, n: float, p: float) -> float:
    """``P[Bin(n, p) <= x]``, continuous in ``x`` and ``n``."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    return 1.0 - float(special.betainc(x + 1, n - x, p))
