"""Empirical lower bound on the differential-privacy epsilon from attack scores."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics.roc import _as_arrays, _Roc, _roc

HELD_OUT_METHOD = "held-out threshold (half the records)"


@dataclass(frozen=True)
class EpsilonBound:
    """Result of :func:`epsilon_lower_bound`.

    Attributes
    ----------
    value : float or None
        Lower bound on epsilon (>= 0); None when not measurable.
    threshold : float or None
        Threshold chosen on the first half (``score >= threshold`` predicts member).
    fpr_upper, fnr_upper : float or None
        One-sided Clopper-Pearson upper bounds of FPR and FNR on the second half.
    reason : str or None
        Why ``value`` is None.
    method : str
        How the threshold was chosen.
    """

    value: float | None
    threshold: float | None
    fpr_upper: float | None
    fnr_upper: float | None
    reason: str | None
    method: str = HELD_OUT_METHOD


def _cp_upper(k: NDArray[np.int64] | int, n: int, alpha: float) -> NDArray[np.float64]:
    """One-sided ``1 - alpha`` Clopper-Pearson upper bound of ``k / n`` (1 when ``k = n``)."""
    k = np.asarray(k, dtype=np.float64)
    below = k < n
    b = np.where(below, n - k, 1.0)
    up = special.betaincinv(k + 1, b, 1 - alpha)
    return np.where(below, up, 1.0)


def _eps_from_upper(
    fpr_u: NDArray[np.float64], fnr_u: NDArray[np.float64], delta: float
) -> NDArray[np.float64]:
    """``max(log((1-delta-FPR_u)/FNR_u), log((1-delta-FNR_u)/FPR_u))``; -inf if both <= 0."""
    num1 = 1 - delta - fpr_u
    num2 = 1 - delta - fnr_u
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(num1 > 0, np.log(np.where(num1 > 0, num1, 1.0) / fnr_u), -np.inf)
        t2 = np.where(num2 > 0, np.log(np.where(num2 > 0, num2, 1.0) / fpr_u), -np.inf)
    return np.maximum(t1, t2)


def _eps_at(r: _Roc, idx: NDArray[np.intp], delta: float, a: float) -> NDArray[np.float64]:
    """Bound (before clamping) at thresholds ``idx`` of ``r``, CP bounds at level ``a``."""
    fpr_u = _cp_upper(r.fp[idx], r.n_neg, a)
    fnr_u = _cp_upper(r.n_pos - r.tp[idx], r.n_pos, a)
    return _eps_from_upper(fpr_u, fnr_u, delta)


def _cp_upper_floor(k: NDArray[np.int64], n: int, a: float) -> NDArray[np.float64]:
    """Cheap lower bound of :func:`_cp_upper` (exact bound evaluated on a coarse grid of k).

    The Clopper-Pearson upper bound increases with ``k`` and exceeds ``k / n``, so
    ``max(k / n, CP_upper(step * floor(k / step)))`` never exceeds ``CP_upper(k)``; the
    grid needs only about 1000 Beta quantiles.
    """
    step = max(1, n // 1024)
    grid = _cp_upper(np.arange(0, n + 1, step), n, a)
    floor = np.maximum(k / n, grid[k // step])
    return np.where(k >= n, 1.0, floor)


def _best_threshold(r: _Roc, delta: float, a: float, chunk: int = 4096) -> int:
    """Index of the threshold maximising the bound (first one on ties), exactly.

    Same answer as ``argmax`` over all thresholds, but the costly Beta quantiles are only
    evaluated where a cheap upper bound of the criterion (CP bounds replaced by
    :func:`_cp_upper_floor`, the criterion decreasing in both) can still beat the best so far.
    """
    optimistic = _eps_from_upper(
        _cp_upper_floor(r.fp, r.n_neg, a), _cp_upper_floor(r.n_pos - r.tp, r.n_pos, a), delta
    )
    order = np.argsort(-optimistic, kind="stable")
    best_i, best = 0, -np.inf
    for start in range(0, order.size, chunk):
        idx = order[start : start + chunk]
        if optimistic[idx[0]] < best:
            break
        exact = _eps_at(r, idx, delta, a)
        top = exact.max()
        if top >= best:
            i = int(idx[exact == top].min())
            if top > best or i < best_i:
                best_i, best = i, float(top)
    return best_i


def _split_halves(
    is_member: NDArray[np.bool_], seed: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Seeded split stratified by membership: (selection, evaluation) index arrays.

    Each class is permuted and its first ``floor(n_c / 2)`` records go to the selection
    half; the evaluation half gets the rest (one more when ``n_c`` is odd).
    """
    rng = np.random.default_rng(seed)
    first, second = [], []
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(is_member == cls))
        h = idx.size // 2
        first.append(idx[:h])
        second.append(idx[h:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def epsilon_lower_bound(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    seed: int = 0,
) -> EpsilonBound:
    """Statistical lower bound on epsilon implied by the attack's errors.

    Any (eps, delta)-DP mechanism satisfies, for every test,
    ``FPR + e^eps FNR >= 1 - delta`` and ``FNR + e^eps FPR >= 1 - delta``. With one-sided
    Clopper-Pearson upper bounds ``FPR_u``, ``FNR_u``::

        eps_lb = max(log((1 - delta - FPR_u) / FNR_u), log((1 - delta - FNR_u) / FPR_u))

    clamped at 0 (a lower bound of 0 is a valid, honest answer).

    Validity: the records are split (seeded, stratified by membership) into two halves;
    the threshold that maximises ``eps_lb`` on the first half is applied to the second
    half, and only the second half's counts enter the reported bound, so choosing the best
    threshold does not bias it. ``FPR_u`` and ``FNR_u`` are each taken at confidence
    ``1 - alpha/2`` (Bonferroni), so ``eps >= value`` holds with probability at least
    ``1 - alpha``. The bound speaks about the training mechanism only when members were
    drawn at random from the same pool as the non-members (the privacy game); for an
    already-trained model with a non-random split it is not a DP statement.

    Parameters
    ----------
    scores : array of shape (n,)
        Higher = more likely member.
    is_member : bool array of shape (n,)
    delta : float, default 1e-5
    alpha : float, default 0.05
        Overall significance level.
    seed : int, default 0
        Seed of the half split.

    Returns
    -------
    EpsilonBound
        ``value`` None (with ``reason`` and an ``UndefinedMetricWarning``) when a class has
        fewer than two records, as the split then leaves a half without that class.

    References
    ----------
    Kairouz, Oh & Viswanath (2015), "The composition theorem for differential privacy", ICML.
    Nasr, Song, Thakurta, Papernot & Carlini (2021), "Adversary instantiation: lower bounds
    for differentially private machine learning", IEEE S&P.

    Example
    -------
    >>> import numpy as np
    >>> member = np.arange(2000) < 1000
    >>> res = epsilon_lower_bound(member.astype(float), member)
    >>> round(res.value, 2), res.threshold
    (4.91, 1.0)
    """
    s, y = _as_arrays(scores, is_member)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < 2 or n_neg < 2:
        reason = (
            f"not measurable: {n_pos} members and {n_neg} non-members; the held-out split "
            "needs at least 2 of each"
        )
        warnings.warn(
            f"epsilon lower bound reported as None: {reason}",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return EpsilonBound(None, None, None, None, reason)

    a = alpha / 2
    sel, ev = _split_halves(y, seed)

    r = _roc(s[sel], y[sel])
    threshold = float(r.thresholds[_best_threshold(r, delta, a)])

    s_ev, y_ev = s[ev], y[ev]
    pred = s_ev >= threshold
    n_pos_ev = int(y_ev.sum())
    n_neg_ev = int(y_ev.size - n_pos_ev)
    fp = int(np.count_nonzero(pred & ~y_ev))
    fn = int(np.count_nonzero(~pred & y_ev))
    fpr_u = float(_cp_upper(fp, n_neg_ev, a))
    fnr_u = float(_cp_upper(fn, n_pos_ev, a))
    eps = float(_eps_from_upper(np.float64(fpr_u), np.float64(fnr_u), delta))
    value = eps if math.isfinite(eps) and eps > 0 else 0.0
    return EpsilonBound(value, threshold, fpr_u, fnr_u, None)
