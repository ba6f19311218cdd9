"""TPR at a low FPR budget, with an interval for the true TPR at the true FPR.

The point estimate is the highest TPR over thresholds whose empirical FPR meets the budget;
the interval brackets the unknown threshold with non-member order statistics and bounds
the members' rate at each end with one-sided Clopper-Pearson bounds
(:mod:`miaudit.metrics.binomial`), optionally with counts deflated by the records' design
effect when records contribute several scores. Conventions as in :mod:`miaudit.metrics.roc`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics.binomial import _cdf_le, _cp_lower, _cp_upper, _tail_ge
from miaudit.metrics.roc import FloatArray, _as_arrays, _Clusters, _clusters, _dot, _Roc, _roc

#: How :func:`tpr_at_fpr` builds its interval, without and with ``clusters``.
TPR_INTERVAL = ("threshold bracketed by non-member order statistics, one-sided "
                "Clopper-Pearson on the members at each end (Bonferroni)")
TPR_INTERVAL_CLUSTERED = TPR_INTERVAL + ", counts deflated by the records' design effect (Kish)"

#: Below this many expected false positives (``max_fpr * n_non_members``) the point
#: estimate is flagged as biased upward: the level below which its relative bias exceeded
#: about 10% for some ROC in simulation (benchmarks/interval_coverage.py).
BIAS_NOTE_BELOW = 20.0
#: Share of each end's error budget ``alpha / 2`` spent on the threshold (``a1``); the
#: rest (``a2``) goes to the members' Clopper-Pearson bound.
_THRESHOLD_SHARE = 0.5
#: Share of the true positives tied at the chosen threshold above which ties are noted.
TIE_NOTE_SHARE = 0.1
#: ... when the threshold's non-member count exceeds this quantile of ``Bin(n, f)``.
TIE_NOTE_LEVEL = 0.25


@dataclass(frozen=True)
class TprAtFpr:
    """True-positive rate at a false-positive-rate budget (see :func:`tpr_at_fpr`).

    Attributes
    ----------
    max_fpr : float
        The FPR budget ``f``.
    value : float or None
        Highest TPR over thresholds whose empirical FPR <= ``f``; None when not measurable.
    ci : (lo, hi) or None
        Interval for the true TPR at the true FPR ``f`` (see :func:`tpr_at_fpr`); it
        contains ``value``.
    threshold : float or None
        Threshold used (``score >= threshold`` predicts member); ``inf`` = predict nobody.
    achieved_fpr : float or None
        Empirical FPR at that threshold (<= ``max_fpr``).
    reason : str or None
        Why ``value`` is None.
    note : str or None
        A caveat on ``value`` or ``ci``: set when ``max_fpr * n_non_members`` is below
        :data:`BIAS_NOTE_BELOW` (``value`` biased upward) and when too few non-members
        certify any threshold's FPR (lower end 0); None otherwise.
    interval_method : str or None
        How ``ci`` was built (:data:`TPR_INTERVAL` or :data:`TPR_INTERVAL_CLUSTERED`).
    """

    max_fpr: float
    value: float | None
    ci: tuple[float, float] | None
    threshold: float | None
    achieved_fpr: float | None
    reason: str | None = None
    note: str | None = None
    interval_method: str | None = None


def needed_non_members(max_fpr: float) -> int:
    """Fewest non-members for which an FPR of ``max_fpr`` is measurable: ``ceil(1/max_fpr)``."""
    return math.ceil(1.0 / max_fpr - 1e-9)


def _first_true(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """Smallest integer in ``[lo, hi]`` where the monotone ``pred`` holds (``pred(hi)`` holds)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _bracket_counts(n_neg: int, f: float, a1: float, deff: float) -> tuple[int, int | None]:
    """Order-statistic ranks ``(k, j)`` that bracket the threshold of true FPR ``f``.

    ``k``: smallest count with ``P[Bin(n, f) >= k] <= a1`` (``n_neg + 1`` when the k-th
    highest non-member would not exist: predict everybody). ``j``: largest count with
    ``P[Bin(n, f) <= j] <= a1``, None when even ``j = 0`` fails. Counts are divided by
    the design effect ``deff`` and ``n = n_neg / deff`` (exact binomial at ``deff = 1``).
    """
    n_eff = n_neg / deff
    k = _first_true(lambda c: _tail_ge(c / deff, n_eff, f) <= a1, 1, n_neg + 1)
    if _cdf_le(0.0, n_eff, f) > a1:
        return k, None
    j = _first_true(lambda c: _cdf_le((c + 1) / deff, n_eff, f) > a1, 0, n_neg)
    return k, j


def _design_effect(counts: FloatArray, sizes: FloatArray) -> float:
    """Kish design effect of a proportion estimated from cluster totals.

    ``counts[c]`` successes among ``sizes[c]`` trials of cluster ``c``; ``deff`` = the
    ratio-estimator variance of the pooled proportion ``p`` over its binomial variance,
    ``[I/(I-1) sum_c (counts_c - sizes_c p)^2] / (n p (1-p))`` over the ``I`` non-empty
    clusters. Clipped to ``[1, max cluster size]`` (a proportion of clustered 0/1
    indicators has at most the variance of fully correlated clusters; below 1 is taken
    as noise). Where it cannot be estimated (``p`` 0 or 1, one cluster), the worst case
    ``max(sizes)``.
    """
    worst = float(sizes.max())
    n = float(sizes.sum())
    p = float(counts.sum()) / n
    active = sizes > 0
    i = int(active.sum())
    if i < 2 or p <= 0.0 or p >= 1.0:
        return max(worst, 1.0)
    dev = counts[active] - sizes[active] * p
    deff = i / (i - 1) * _dot(dev, dev) / (n * p * (1 - p))
    return float(min(max(deff, 1.0), max(worst, 1.0)))


def _cluster_counts(cl: _Clusters, threshold: float, member: bool) -> FloatArray:
    """Per-cluster number of members (or non-members) with ``score >= threshold``."""
    side = cl.is_member if member else ~cl.is_member
    hit = side & (cl.scores >= threshold)
    return np.bincount(cl.ids[hit], minlength=cl.n).astype(np.float64)


def _unmeasurable_reason(r: _Roc, max_fpr: float) -> str | None:
    """Why an FPR of ``max_fpr`` cannot be resolved on ``r``'s non-members, or None."""
    needed = needed_non_members(max_fpr)
    if r.n_neg < needed:
        return f"not measurable: {r.n_neg} non-members < {needed} needed for FPR {max_fpr:g}"
    return None


def _operating_point(r: _Roc, fpr: FloatArray, max_fpr: float) -> int:
    """ROC index of the highest threshold with the best TPR at empirical FPR <= ``max_fpr``."""
    i = int(np.searchsorted(fpr, max_fpr, side="right")) - 1  # fpr[0] = 0, so i >= 0
    # among thresholds with the same TPR, report the highest one (lowest FPR)
    return int(np.searchsorted(r.tp, r.tp[i], side="left"))


def _bracket_indices(r: _Roc, max_fpr: float, a1: float, deff_neg: float
                     ) -> tuple[int, int | None]:
    """ROC indices of t_lo (the k-th highest non-member) and t_hi (None: +inf)."""
    k, j = _bracket_counts(r.n_neg, max_fpr, a1, deff_neg)
    last = r.tp.size - 1
    i_lo = last if k > r.n_neg else int(np.searchsorted(r.fp, k, side="left"))
    i_hi = None if j is None else int(np.searchsorted(r.fp, j, side="right")) - 1
    return i_lo, i_hi


def _non_member_design_effect(r: _Roc, max_fpr: float, a1: float, cl: _Clusters | None
                              ) -> float:
    """Design effect of the non-member counts near the threshold (1 without clusters)."""
    if cl is None:
        return 1.0
    # estimated where the count has the most hits (t_lo), once more after re-bracketing;
    # the larger is kept
    sizes = cl.neg_size
    i_lo, _ = _bracket_indices(r, max_fpr, a1, 1.0)
    d1 = _design_effect(_cluster_counts(cl, float(r.thresholds[i_lo]), False), sizes)
    i_lo2, _ = _bracket_indices(r, max_fpr, a1, d1)
    d2 = _design_effect(_cluster_counts(cl, float(r.thresholds[i_lo2]), False), sizes)
    return max(d1, d2)


def _member_counts(r: _Roc, idx: int, cl: _Clusters | None) -> tuple[float, float]:
    """(count, trials) of members at ROC index ``idx``, deflated by their design effect."""
    k, n = float(r.tp[idx]), float(r.n_pos)
    if cl is None:
        return k, n
    d = _design_effect(_cluster_counts(cl, float(r.thresholds[idx]), True), cl.pos_size)
    return k / d, n / d


def _member_bounds(r: _Roc, i_lo: int, i_hi: int | None, a2: float, cl: _Clusters | None
                   ) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds on the members' rate at t_lo (upper), t_hi (lower)."""
    hi = _cp_upper(*_member_counts(r, i_lo, cl), a2)
    lo = 0.0 if i_hi is None else _cp_lower(*_member_counts(r, i_hi, cl), a2)
    return lo, hi


def _bias_note(r: _Roc, max_fpr: float, deff_neg: float, clustered: bool) -> str | None:
    """The small-sample bias caveat, when ``max_fpr * n / deff`` < :data:`BIAS_NOTE_BELOW`."""
    n_eff_f = max_fpr * r.n_neg / deff_neg
    if n_eff_f >= BIAS_NOTE_BELOW:
        return None
    return (
        f"biased upward: {max_fpr:g} x {r.n_neg / deff_neg:.0f} "
        f"{'effective ' if clustered else ''}non-members = {n_eff_f:.3g} expected "
        f"false positives (< {BIAS_NOTE_BELOW:g}); the chosen threshold's true FPR often "
        f"exceeds {max_fpr:g}"
    )


def _tie_note(r: _Roc, max_fpr: float, i_pt: int, deff_neg: float) -> str | None:
    """The caveat on a large group of true positives tied at the chosen threshold, or None."""
    # A large group of tied scores at the chosen threshold whose non-member count is
    # not clearly below n f (above the lower quartile of Bin(n, f)): its true FPR
    # may exceed f, and the figure jumps by that group between samples whose count
    # falls just under or just over n f.
    k_pt = int(r.tp[i_pt])
    group_pos = int(r.tp[i_pt] - r.tp[i_pt - 1])
    group_neg = int(r.fp[i_pt] - r.fp[i_pt - 1])
    quartile = _bracket_counts(r.n_neg, max_fpr, TIE_NOTE_LEVEL, deff_neg)[1]
    near = quartile is None or int(r.fp[i_pt]) > quartile
    if near and group_neg > 0 and group_pos > TIE_NOTE_SHARE * k_pt:
        return (
            f"biased upward by ties: {group_pos} of the {k_pt} true positives share the "
            f"threshold score with {group_neg} non-members, and that score's FPR may "
            f"exceed {max_fpr:g}"
        )
    return None


def _notes(r: _Roc, max_fpr: float, i_pt: int, deff_neg: float, a1: float,
           i_hi: int | None, clustered: bool) -> str | None:
    """The caveats on the figure and its interval, joined by ``"; "`` (None: no caveat)."""
    notes = []
    bias = _bias_note(r, max_fpr, deff_neg, clustered)
    if bias is not None:
        notes.append(bias)
    elif i_pt > 0:
        tie = _tie_note(r, max_fpr, i_pt, deff_neg)
        if tie is not None:
            notes.append(tie)
    if i_hi is None:
        notes.append(
            f"lower end 0: too few non-members to certify an FPR <= {max_fpr:g} at this "
            f"confidence (about {math.ceil(math.log(a1) / math.log1p(-max_fpr) * deff_neg)} "
            "needed)"
        )
    return "; ".join(notes) or None


def _tpr_at_fpr(r: _Roc, max_fpr: float, alpha: float, cl: _Clusters | None = None) -> TprAtFpr:
    """:func:`tpr_at_fpr` on counted ROC ``r`` (``cl``: the clusters, None if independent)."""
    reason = _unmeasurable_reason(r, max_fpr)
    if reason is not None:
        warnings.warn(
            f"TPR at FPR {max_fpr:g} reported as None: {reason}",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return TprAtFpr(max_fpr, None, None, None, None, reason)
    fpr = r.fp / r.n_neg
    i_pt = _operating_point(r, fpr, max_fpr)
    value = int(r.tp[i_pt]) / r.n_pos

    # each end fails w.p. <= a1 + a2 = alpha / 2
    a1 = alpha / 2 * _THRESHOLD_SHARE
    a2 = alpha / 2 - a1
    deff_neg = _non_member_design_effect(r, max_fpr, a1, cl)
    i_lo, i_hi = _bracket_indices(r, max_fpr, a1, deff_neg)
    lo, hi = _member_bounds(r, i_lo, i_hi, a2, cl)
    # lo <= value <= hi holds by construction (j <= floor(n f) < k, see the docstring);
    # the clamp only guards the fractional counts of the clustered case
    lo, hi = min(lo, value), max(hi, value)
    return TprAtFpr(
        max_fpr=max_fpr,
        value=value,
        ci=(lo, hi),
        threshold=float(r.thresholds[i_pt]),
        achieved_fpr=float(fpr[i_pt]),
        note=_notes(r, max_fpr, i_pt, deff_neg, a1, i_hi, cl is not None),
        interval_method=TPR_INTERVAL if cl is None else TPR_INTERVAL_CLUSTERED,
    )


def tpr_at_fpr(
    scores: ArrayLike,
    is_member: ArrayLike,
    max_fpr: float,
    alpha: float = 0.05,
    *,
    clusters: ArrayLike | None = None,
) -> TprAtFpr:
    """Highest TPR over thresholds whose empirical FPR is at most ``max_fpr``, with an
    interval for the true TPR at the true FPR ``max_fpr``.

    **Point estimate** (unchanged definition). Conservative: only thresholds that meet
    the budget on this sample count, so the reported TPR never uses an operating point
    with empirical FPR above ``max_fpr`` (no interpolation). If only "predict nobody"
    meets the budget, the TPR is 0.0 with a valid interval: a measurement, not an
    undefined figure. Its threshold is chosen on the same non-members, and its *true* FPR
    exceeds ``f`` in about half of the samples, so at small ``f * n_non_members`` the
    figure is biased upward: relative bias about ``e / (f n)`` for a ROC of log-log slope
    ``e`` (measured with no signal, ``e = 1``: +100-118% at ``f n = 1``, +17-19% at 5,
    +8-10% at 10, +4-5% at 20; for a steep ROC, members N(2, 0.5^2) at 0.1% FPR, +17% at
    10, +11% at 15, +8.5% at 20; benchmarks/RESULTS.md, "Interval coverage: TPR at FPR
    and AUC"). ``note`` says so below ``f n = 20`` (:data:`BIAS_NOTE_BELOW`; with
    ``clusters``, ``f n / deff``), and when more than 10% of the true positives are tied
    at a threshold whose non-member count is not clearly below ``n f`` (ties make the
    figure jump by that group).

    **Interval.** With ``F(t) = P(non-member score >= t)``, ``G(t)`` the same for
    members, the target is ``TPR(f) = sup{G(t) : F(t) <= f}``. Clopper-Pearson on the
    members at the chosen threshold (the former interval) ignores that the threshold is
    itself estimated; it covered ``TPR(f)`` in 22-77% of samples of continuous scores.
    The interval here brackets the unknown threshold ``t*`` with order statistics of the
    non-members alone, then bounds the members' rate at each end:

    * ``t_lo`` = the ``k``-th highest non-member score, ``k`` the smallest count with
      ``P[Bin(n, f) >= k] <= a1``: at least ``k`` non-members above ``t*`` has
      probability <= ``a1``, so ``t_lo <= t*`` and ``G(t_lo) >= TPR(f)`` w.p. >= 1 - a1.
      Upper end = one-sided Clopper-Pearson upper bound (level ``a2``) of the members with
      ``score >= t_lo`` (1 when ``k > n``).
    * ``t_hi`` = the lowest distinct threshold with at most ``j`` non-members at or
      above it, ``j`` the largest count with ``P[Bin(n, f) <= j] <= a1``: it predicts
      ``score > Y_(j+1)`` and has ``F(t_hi) <= f`` w.p. >= 1 - a1, so
      ``G(t_hi) <= TPR(f)``. Lower end = one-sided Clopper-Pearson lower bound (level
      ``a2``) of the members at ``t_hi``; 0 when no such ``j`` exists
      (``(1 - f)^n > a1``: too few non-members to certify any FPR <= f; ``note`` says
      so).

    The thresholds depend on the non-members only, so the member counts at them are
    binomial given the thresholds; with ``a1 = a2 = alpha / 4`` each end fails with
    probability <= ``alpha / 2`` (union bound) and the coverage is >= ``1 - alpha`` for
    every pair of distributions, ties included (thresholds are distinct score values,
    member iff ``score >= t``). Distribution-free and close to tight in the worst case: a
    member atom just at ``t*`` (a step in the ROC) makes each end fail with probability
    about ``a1 + a2``; for smooth ROCs it over-covers (0.984-1.000 measured; 3-9 times
    wider than the former interval, up to 19 times with heavy ties).
    ``j <= floor(n f) < k`` (binomial medians), so the point estimate lies inside.

    **Clusters.** When records contribute several scores (targets pooled), counts are
    not binomial. ``clusters`` gives the record of each score; every count then enters
    with its Kish design effect ``deff`` (variance of the cluster totals over the
    binomial variance, clipped to ``[1, largest cluster]``): the non-member counts
    (estimated at ``t_lo``, where there are the most) divide ``n`` and the order-
    statistic ranks, each member count and the number of members are divided by the
    members' design effect at that threshold, and the fractional counts go through the
    same Beta formulas. Not exact (the thresholds are no longer independent of the
    member counts when a record sits on both sides), but checked by simulation (pooled
    T = 2-8 targets with a shared record effect): coverage >= 0.99, where the interval
    without clusters fell to 0.88 for 8 retrains on one training set.

    With fewer than ``ceil(1 / max_fpr)`` non-members, not even one false positive is
    resolvable: ``value``, ``ci``, ``threshold`` and ``achieved_fpr`` are None, ``reason``
    says why, and :class:`~miaudit.errors.UndefinedMetricWarning` is emitted.

    Parameters
    ----------
    scores : array of shape (n,)
        Higher = more likely member.
    is_member : bool array of shape (n,)
    max_fpr : float
        FPR budget in (0, 1].
    alpha : float, default 0.05
        The interval is two-sided at ``1 - alpha``.
    clusters : int array of shape (n,), optional
        Record (cluster) of each score; None (default) treats the scores as independent.

    Returns
    -------
    TprAtFpr
        With ``interval_method`` :data:`TPR_INTERVAL` (or :data:`TPR_INTERVAL_CLUSTERED`).

    References
    ----------
    Carlini et al. (2022), "Membership Inference Attacks From First Principles", IEEE S&P.
    Clopper & Pearson (1934); David & Nagaraja (2003), "Order Statistics", ch. 7
    (distribution-free quantile bounds); Kish (1965), "Survey Sampling" (design effect).

    Example
    -------
    >>> res = tpr_at_fpr([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [True, True, True, False, False, False],
    ...                  max_fpr=0.34)
    >>> res.value, round(res.achieved_fpr, 4), res.threshold
    (1.0, 0.3333, 0.3)
    >>> res.ci  # three non-members certify nothing at 34% FPR
    (0.0, 1.0)
    >>> rng = np.random.default_rng(0)
    >>> member = np.arange(40_000) < 20_000
    >>> res = tpr_at_fpr(rng.normal(size=40_000) + 2 * member, member, max_fpr=0.01)
    >>> lo, hi = res.ci
    >>> bool(lo <= res.value <= hi), res.note is None
    (True, True)
    """
    s, y = _as_arrays(scores, is_member)
    cl = None if clusters is None else _clusters(s, y, clusters)
    return _tpr_at_fpr(_roc(s, y), float(max_fpr), alpha, cl)
