"""ROC-based figures of a membership-inference attack, with exact or DeLong intervals.

Conventions shared by every function here:

* ``scores``: 1-D float array, **higher = more likely member**.
* ``is_member``: 1-D bool array of the same length, ``True`` = member (positive class).
* A threshold ``t`` predicts "member" for every record with ``score >= t``.
* ``clusters`` (optional): 1-D int array, the record each score was computed on, when a
  record contributes several scores (targets pooled); intervals then treat records, not
  scores, as the independent units.

Inputs are validated before they reach this module (finite, same length, both classes
present); the functions only handle the situations where a figure cannot be measured.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats
from sklearn import metrics as skm

from miaudit.errors import UndefinedMetricWarning

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class _Roc(NamedTuple):
    """Cumulative counts at every distinct threshold, highest threshold first.

    ``thresholds[0] = +inf`` (predict nobody), ``thresholds[-1] = min(scores)`` (predict
    everybody); ``tp[i]``/``fp[i]`` count members/non-members with ``score >= thresholds[i]``.
    """

    thresholds: FloatArray
    tp: IntArray
    fp: IntArray
    n_pos: int
    n_neg: int


def _as_arrays(scores: ArrayLike, is_member: ArrayLike) -> tuple[FloatArray, NDArray[np.bool_]]:
    return np.asarray(scores, dtype=np.float64), np.asarray(is_member, dtype=bool)


def _roc(scores: FloatArray, is_member: NDArray[np.bool_]) -> _Roc:
    """Sort once and count true/false positives at each distinct threshold."""
    order = np.argsort(scores)[::-1]
    s = scores[order]
    y = is_member[order]
    # last position of each run of equal scores (in descending order)
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), s.size - 1)
    tp_cum = np.cumsum(y, dtype=np.int64)[ends]
    fp_cum = (ends + 1).astype(np.int64) - tp_cum
    zero = np.zeros(1, dtype=np.int64)
    return _Roc(
        thresholds=np.concatenate(([np.inf], s[ends])),
        tp=np.concatenate((zero, tp_cum)),
        fp=np.concatenate((zero, fp_cum)),
        n_pos=int(tp_cum[-1]),
        n_neg=int(fp_cum[-1]),
    )


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


def roc_counts(scores: ArrayLike, is_member: ArrayLike) -> tuple[FloatArray, IntArray, IntArray]:
    """True- and false-positive counts at every distinct threshold.

    Parameters
    ----------
    scores : array of shape (n,)
        Attack scores, higher = more likely member.
    is_member : bool array of shape (n,)
        True for members.

    Returns
    -------
    thresholds : float array of shape (G + 1,)
        Decreasing; ``thresholds[0] = inf`` (predict nobody), then the ``G`` distinct scores.
    tp, fp : int64 arrays of shape (G + 1,)
        Members / non-members with ``score >= thresholds[i]``; both start at 0 and end at the
        number of members / non-members. ``fp / n_non_members`` and ``tp / n_members`` equal
        the ``fpr`` and ``tpr`` of :func:`roc_curve`.

    Example
    -------
    >>> thr, tp, fp = roc_counts([0.2, 0.9, 0.2, 0.5], [False, True, True, False])
    >>> thr.tolist(), tp.tolist(), fp.tolist()
    ([inf, 0.9, 0.5, 0.2], [0, 1, 1, 2], [0, 0, 1, 2])
    """
    r = _roc(*_as_arrays(scores, is_member))
    return r.thresholds, r.tp, r.fp


def roc_curve(scores: ArrayLike, is_member: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ROC curve with every distinct threshold kept (``sklearn.metrics.roc_curve``).

    Returns
    -------
    fpr, tpr, thresholds : float arrays of shape (G + 1,)
        ``thresholds`` decreasing, ``thresholds[0] = inf``; a record is predicted member
        when ``score >= threshold``. Plot on log-log axes to see the low-FPR regime.
    """
    s, y = _as_arrays(scores, is_member)
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


def _dot(a: NDArray, b: NDArray) -> float:
    """``sum(a * b)``: not BLAS ``a @ b``, whose threads stall on a loaded machine
    (measured 20 ms for 40,000 elements on 2 busy cores, 0.02 ms single-threaded)."""
    return float(np.sum(a * b))


def _auc_delong(r: _Roc) -> tuple[float, float]:
    """AUC and DeLong variance from grouped counts (midrank form, Sun & Xu 2014).

    Structural components: for a member with score x, ``V10 = (#non-members below x +
    #tied / 2) / n_neg``; for a non-member with score y, ``V01 = (#members above y +
    #tied / 2) / n_pos``. ``AUC = mean(V10) = mean(V01)`` and
    ``Var = var(V10) / n_pos + var(V01) / n_neg`` (sample variances, ddof = 1).
    The variance is NaN when a class has fewer than two records.
    """
    p, n = r.n_pos, r.n_neg
    pos_g = np.diff(r.tp)
    neg_g = np.diff(r.fp)
    v10 = (n - r.fp[1:] + 0.5 * neg_g) / n
    v01 = (r.tp[:-1] + 0.5 * pos_g) / p
    auc = _dot(pos_g, v10) / p
    if p < 2 or n < 2:
        return auc, math.nan
    mean01 = _dot(neg_g, v01) / n
    s10 = _dot(pos_g, (v10 - auc) ** 2) / (p - 1)
    s01 = _dot(neg_g, (v01 - mean01) ** 2) / (n - 1)
    return auc, s10 / p + s01 / n


class _Clusters(NamedTuple):
    """Which cluster (record) each score belongs to, for dependence-aware intervals.

    ``ids[i]`` in ``0 .. n - 1`` is the cluster of score ``i``; ``pos_size[c]`` /
    ``neg_size[c]`` count the member / non-member scores of cluster ``c``.
    """

    scores: FloatArray
    is_member: NDArray[np.bool_]
    ids: IntArray
    n: int
    pos_size: FloatArray
    neg_size: FloatArray


def _clusters(scores: FloatArray, is_member: NDArray[np.bool_], clusters: ArrayLike) -> _Clusters:
    """Check ``clusters`` (one integer label per score) and number the clusters 0 .. n-1."""
    c = np.asarray(clusters)
    if c.shape != scores.shape:
        raise ValueError(
            f"'clusters' must have one label per score (shape {scores.shape}), got shape "
            f"{c.shape}: pass the record index of each score, or None for independent scores."
        )
    integral = np.issubdtype(c.dtype, np.integer) or (
        np.issubdtype(c.dtype, np.floating) and bool(np.all(np.isfinite(c)))
        and bool(np.all(c == np.round(c))))
    if not integral:
        raise ValueError(
            f"'clusters' must hold integer record indices, got dtype {c.dtype}: pass, for "
            "each score, the index of the record it was computed on."
        )
    _, ids = np.unique(c, return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)
    n = int(ids.max()) + 1 if ids.size else 0
    pos_size = np.bincount(ids[is_member], minlength=n).astype(np.float64)
    neg_size = np.bincount(ids[~is_member], minlength=n).astype(np.float64)
    return _Clusters(scores, is_member, ids, n, pos_size, neg_size)


def _auc_obuchowski(cl: _Clusters) -> tuple[float, float]:
    """AUC and its clustered DeLong variance (Obuchowski 1997), in O(n log n).

    With ``V10``/``V01`` the DeLong structural components of each member / non-member
    score (midranks, as in :func:`_auc_delong`), their cluster sums ``V10_k``, ``V01_k``,
    ``m_k`` / ``n_k`` members / non-members in cluster ``k``, ``M``/``N`` in total,
    ``I10``/``I01`` clusters holding members / non-members and ``I`` clusters::

        S10 = I10 / ((I10 - 1) M) * sum_k (V10_k - m_k A)^2
        S01 = I01 / ((I01 - 1) N) * sum_k (V01_k - n_k A)^2
        S11 = I / (I - 1) * sum_k (V10_k - m_k A) (V01_k - n_k A)
        Var = S10 / M + S01 / N + 2 S11 / (M N)

    With one score per cluster ``S11 = 0`` and this is the DeLong variance. NaN when
    fewer than two clusters hold members or non-members.
    """
    s, y, ids = cl.scores, cl.is_member, cl.ids
    _, g = np.unique(s, return_inverse=True)  # ascending groups of equal scores
    g = g.reshape(-1)
    pos_cnt = np.bincount(g[y], minlength=int(g.max()) + 1).astype(np.float64)
    neg_cnt = np.bincount(g[~y], minlength=pos_cnt.size).astype(np.float64)
    m, n = float(pos_cnt.sum()), float(neg_cnt.sum())
    neg_below = np.cumsum(neg_cnt) - neg_cnt
    pos_above = m - np.cumsum(pos_cnt)
    v10 = (neg_below + 0.5 * neg_cnt)[g[y]] / n
    v01 = (pos_above + 0.5 * pos_cnt)[g[~y]] / m
    auc = float(v10.sum() / m)
    d10 = np.bincount(ids[y], weights=v10, minlength=cl.n) - cl.pos_size * auc
    d01 = np.bincount(ids[~y], weights=v01, minlength=cl.n) - cl.neg_size * auc
    i10, i01, i = int(np.sum(cl.pos_size > 0)), int(np.sum(cl.neg_size > 0)), cl.n
    if i10 < 2 or i01 < 2:
        return auc, math.nan
    s10 = i10 / ((i10 - 1) * m) * _dot(d10, d10)
    s01 = i01 / ((i01 - 1) * n) * _dot(d01, d01)
    s11 = i / (i - 1) * _dot(d10, d01)
    return auc, s10 / m + s01 / n + 2 * s11 / (m * n)


def auc_delong(scores: ArrayLike, is_member: ArrayLike) -> tuple[float, float]:
    """AUC and its DeLong variance estimate, in O(n log n).

    ``AUC = P(score_member > score_non_member) + P(tie) / 2`` (equals
    ``sklearn.metrics.roc_auc_score``). The variance is
    ``S10 / n_pos + S01 / n_neg`` with ``S10``, ``S01`` the sample variances of the DeLong
    structural components, computed from midranks.

    Returns
    -------
    auc : float
    variance : float
        NaN when there are fewer than two members or two non-members.

    References
    ----------
    DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44(3).
    Sun & Xu (2014), IEEE Signal Processing Letters 21(11).
    """
    return _auc_delong(_roc(*_as_arrays(scores, is_member)))


#: How :func:`auc_with_ci` builds its interval, without and with ``clusters``.
AUC_INTERVAL = "DeLong"
AUC_INTERVAL_CLUSTERED = "clustered DeLong by record (Obuchowski 1997)"


def _auc_with_ci(
    r: _Roc, alpha: float, cl: _Clusters | None = None
) -> tuple[float, tuple[float, float]]:
    if cl is None:
        auc, var = _auc_delong(r)
        n_eff = min(r.n_pos, r.n_neg)
    else:
        auc, var = _auc_obuchowski(cl)
        n_eff = min(int(np.sum(cl.pos_size > 0)), int(np.sum(cl.neg_size > 0)))
    if var > 0:  # False for NaN too
        half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(var)
        return auc, (max(0.0, auc - half), min(1.0, auc + half))
    return auc, _beta_interval(auc * n_eff, n_eff, alpha)


def auc_with_ci(
    scores: ArrayLike,
    is_member: ArrayLike,
    alpha: float = 0.05,
    *,
    clusters: ArrayLike | None = None,
) -> tuple[float, tuple[float, float]]:
    """AUC with a two-sided ``1 - alpha`` DeLong confidence interval.

    Interval: ``AUC ± z_{1-alpha/2} * sqrt(Var_DeLong)``, clipped to [0, 1].

    With ``clusters`` (the record index of each score, for instance when the scores of
    several targets are pooled and every record appears once per target), the variance
    is the clustered DeLong variance of Obuchowski (1997): the structural components are
    summed per record, so the correlation between a record's copies (same side or
    opposite sides) enters through their covariance. Records are the independent units;
    with one score per record it equals the DeLong variance. Chosen over a record
    bootstrap: the same O(n log n) cost as DeLong, deterministic, no resampling error,
    while a bootstrap needs hundreds of re-sorts of the pooled scores. Measured
    (benchmarks/RESULTS.md): coverage 0.936-0.954 at nominal 0.95 over 500 repetitions
    for 2-8 pooled targets; the unclustered interval covered
    0.52-0.74 for retrains on one training set, and 0.99-1.00 (too wide) for the audit's
    complementary targets, where a record's member and non-member copies move together
    and their errors partly cancel.

    When the variance is zero (perfect separation, AUC 0 or 1, or all scores tied)
    or cannot be estimated (fewer than two members or non-members), the normal interval
    would be degenerate. The fallback is then the Clopper-Pearson interval for
    ``AUC * m`` successes in ``m = min(n_members, n_non_members)`` trials (with
    ``clusters``: the numbers of records holding members / non-members): ``m``
    disjoint member/non-member pairs are independent Bernoulli(AUC) trials, and at AUC 0
    or 1 every such pairing gives the observed count, so the interval is exact there
    (e.g. ``[(alpha/2)^(1/m), 1]`` at AUC 1). With ties the count is fractional and the
    Beta-quantile formula is used as is (a conservative approximation).

    Parameters
    ----------
    scores : array of shape (n,)
        Higher = more likely member.
    is_member : bool array of shape (n,)
    alpha : float, default 0.05
    clusters : int array of shape (n,), optional
        Record (cluster) of each score; None (default) treats the scores as independent.

    Returns
    -------
    auc : float
    (lo, hi) : tuple of float

    References
    ----------
    DeLong et al. (1988); Sun & Xu (2014), fast midrank algorithm.
    Obuchowski (1997), "Nonparametric analysis of clustered ROC curve data",
    Biometrics 53(2).

    Example
    -------
    >>> auc, (lo, hi) = auc_with_ci([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    >>> auc
    0.75
    >>> 0.0 <= lo <= auc <= hi <= 1.0
    True
    """
    s, y = _as_arrays(scores, is_member)
    cl = None if clusters is None else _clusters(s, y, clusters)
    return _auc_with_ci(_roc(s, y), alpha, cl)


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


def _first_true(pred, lo: int, hi: int) -> int:
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


def _tpr_at_fpr(r: _Roc, max_fpr: float, alpha: float, cl: _Clusters | None = None) -> TprAtFpr:
    needed = needed_non_members(max_fpr)
    if r.n_neg < needed:
        reason = f"not measurable: {r.n_neg} non-members < {needed} needed for FPR {max_fpr:g}"
        warnings.warn(
            f"TPR at FPR {max_fpr:g} reported as None: {reason}",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return TprAtFpr(max_fpr, None, None, None, None, reason)
    fpr = r.fp / r.n_neg
    i = int(np.searchsorted(fpr, max_fpr, side="right")) - 1  # fpr[0] = 0, so i >= 0
    # among thresholds with the same TPR, report the highest one (lowest FPR)
    i_pt = int(np.searchsorted(r.tp, r.tp[i], side="left"))
    k_pt = int(r.tp[i_pt])
    value = k_pt / r.n_pos

    # each end fails w.p. <= a1 + a2 = alpha / 2
    a1 = alpha / 2 * _THRESHOLD_SHARE
    a2 = alpha / 2 - a1
    last = r.tp.size - 1

    def ends(deff_neg: float) -> tuple[int, int | None]:
        """ROC indices of t_lo (the k-th highest non-member) and t_hi (None: +inf)."""
        k, j = _bracket_counts(r.n_neg, max_fpr, a1, deff_neg)
        i_lo = last if k > r.n_neg else int(np.searchsorted(r.fp, k, side="left"))
        i_hi = None if j is None else int(np.searchsorted(r.fp, j, side="right")) - 1
        return i_lo, i_hi

    deff_neg = 1.0
    i_lo, i_hi = ends(1.0)
    if cl is not None:
        # design effect of the non-member count near the threshold, estimated where it
        # has the most hits (t_lo), once more after re-bracketing; the larger is kept
        sizes = cl.neg_size
        d1 = _design_effect(_cluster_counts(cl, float(r.thresholds[i_lo]), False), sizes)
        i_lo2, _ = ends(d1)
        d2 = _design_effect(_cluster_counts(cl, float(r.thresholds[i_lo2]), False), sizes)
        deff_neg = max(d1, d2)
        i_lo, i_hi = ends(deff_neg)

    def member_counts(idx: int) -> tuple[float, float]:
        """(count, trials) of members at ROC index ``idx``, deflated by their design effect."""
        k, n = float(r.tp[idx]), float(r.n_pos)
        if cl is None:
            return k, n
        d = _design_effect(_cluster_counts(cl, float(r.thresholds[idx]), True), cl.pos_size)
        return k / d, n / d

    hi = _cp_upper(*member_counts(i_lo), a2)
    lo = 0.0 if i_hi is None else _cp_lower(*member_counts(i_hi), a2)
    # lo <= value <= hi holds by construction (j <= floor(n f) < k, see the docstring);
    # the clamp only guards the fractional counts of the clustered case
    lo, hi = min(lo, value), max(hi, value)

    notes = []
    n_eff_f = max_fpr * r.n_neg / deff_neg
    if n_eff_f < BIAS_NOTE_BELOW:
        notes.append(
            f"biased upward: {max_fpr:g} x {r.n_neg / deff_neg:.0f} "
            f"{'effective ' if cl is not None else ''}non-members = {n_eff_f:.3g} expected "
            f"false positives (< {BIAS_NOTE_BELOW:g}); the chosen threshold's true FPR often "
            f"exceeds {max_fpr:g}"
        )
    elif i_pt > 0:
        # A large group of tied scores at the chosen threshold whose non-member count is
        # not clearly below n f (above the lower quartile of Bin(n, f)): its true FPR
        # may exceed f, and the figure jumps by that group between samples whose count
        # falls just under or just over n f.
        group_pos = int(r.tp[i_pt] - r.tp[i_pt - 1])
        group_neg = int(r.fp[i_pt] - r.fp[i_pt - 1])
        quartile = _bracket_counts(r.n_neg, max_fpr, TIE_NOTE_LEVEL, deff_neg)[1]
        near = quartile is None or int(r.fp[i_pt]) > quartile
        if near and group_neg > 0 and group_pos > TIE_NOTE_SHARE * k_pt:
            notes.append(
                f"biased upward by ties: {group_pos} of the {k_pt} true positives share the "
                f"threshold score with {group_neg} non-members, and that score's FPR may "
                f"exceed {max_fpr:g}"
            )
    if i_hi is None:
        notes.append(
            f"lower end 0: too few non-members to certify an FPR <= {max_fpr:g} at this "
            f"confidence (about {math.ceil(math.log(a1) / math.log1p(-max_fpr) * deff_neg)} "
            "needed)"
        )
    return TprAtFpr(
        max_fpr=max_fpr,
        value=value,
        ci=(lo, hi),
        threshold=float(r.thresholds[i_pt]),
        achieved_fpr=float(fpr[i_pt]),
        note="; ".join(notes) or None,
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


def _balanced_accuracy(r: _Roc) -> float:
    return float(np.max((r.tp / r.n_pos + 1.0 - r.fp / r.n_neg) / 2))


def _advantage(r: _Roc) -> float:
    return float(np.max(r.tp / r.n_pos - r.fp / r.n_neg))


def balanced_accuracy(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Best balanced accuracy over thresholds: ``max_t (TPR(t) + TNR(t)) / 2``.

    The trivial thresholds (predict nobody / everybody) are included, so the result is
    >= 0.5. Chosen on the same data, so optimistic for small samples.

    Example
    -------
    >>> scores = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1]
    >>> round(balanced_accuracy(scores, [True, True, True, False, False, False]), 4)
    0.8333
    """
    return _balanced_accuracy(_roc(*_as_arrays(scores, is_member)))


def advantage(scores: ArrayLike, is_member: ArrayLike) -> float:
    """Membership advantage ``max_t TPR(t) - FPR(t)`` (Yeom et al. 2018).

    Trivial thresholds included, so the result is >= 0; equals
    ``2 * balanced_accuracy - 1``.

    Example
    -------
    >>> round(advantage([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [True, True, True, False, False, False]), 4)
    0.6667
    """
    return _advantage(_roc(*_as_arrays(scores, is_member)))


def ppv(tpr: float, fpr: float, prior: float) -> float | None:
    """Positive predictive value at a membership prior (precision of "member" calls).

    ``PPV = prior * TPR / (prior * TPR + (1 - prior) * FPR)``; None when the denominator
    is 0 (nobody is predicted member).

    Example
    -------
    >>> ppv(0.1, 0.001, 0.5)
    0.9900990099009901
    """
    den = prior * tpr + (1 - prior) * fpr
    if den == 0:
        return None
    return float(prior * tpr / den)
