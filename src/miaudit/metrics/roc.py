"""The ROC curve of a membership-inference attack and the figures read off it: AUC with
DeLong (or clustered DeLong) intervals, balanced accuracy, advantage and PPV; and two
models' AUCs on the same records compared with a paired DeLong interval.

TPR at a fixed FPR budget, with its interval, is in :mod:`miaudit.metrics.tpr`; the exact
binomial (Clopper-Pearson) intervals both use are in :mod:`miaudit.metrics.binomial`.

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
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn import metrics as skm

from miaudit.metrics.binomial import _beta_interval

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


def _components(scores: FloatArray, is_member: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """DeLong's structural components of each score, from midranks in O(n log n).

    Per member (in input order) ``V10``, the share of non-members it outranks; per
    non-member ``V01``, the share of members that outrank it; ties count 1/2 in both.
    ``AUC = mean(V10) = mean(V01)``.
    """
    _, g = np.unique(scores, return_inverse=True)  # ascending groups of equal scores
    g = g.reshape(-1)
    y = is_member
    pos_cnt = np.bincount(g[y], minlength=int(g.max()) + 1).astype(np.float64)
    neg_cnt = np.bincount(g[~y], minlength=pos_cnt.size).astype(np.float64)
    m, n = float(pos_cnt.sum()), float(neg_cnt.sum())
    neg_below = np.cumsum(neg_cnt) - neg_cnt
    pos_above = m - np.cumsum(pos_cnt)
    v10 = (neg_below + 0.5 * neg_cnt)[g[y]] / n
    v01 = (pos_above + 0.5 * pos_cnt)[g[~y]] / m
    return v10, v01


def _auc_obuchowski(cl: _Clusters) -> tuple[float, float]:
    """AUC and its clustered DeLong variance (Obuchowski 1997), in O(n log n).

    With ``V10``/``V01`` the DeLong structural components of each member / non-member
    score (midranks, :func:`_components`), their cluster sums ``V10_k``, ``V01_k``,
    ``m_k`` / ``n_k`` members / non-members in cluster ``k``, ``M``/``N`` in total,
    ``I10``/``I01`` clusters holding members / non-members and ``I`` clusters::

        S10 = I10 / ((I10 - 1) M) * sum_k (V10_k - m_k A)^2
        S01 = I01 / ((I01 - 1) N) * sum_k (V01_k - n_k A)^2
        S11 = I / (I - 1) * sum_k (V10_k - m_k A) (V01_k - n_k A)
        Var = S10 / M + S01 / N + 2 S11 / (M N)

    With one score per cluster ``S11 = 0`` and this is the DeLong variance. NaN when
    fewer than two clusters hold members or non-members.
    """
    y, ids = cl.is_member, cl.ids
    v10, v01 = _components(cl.scores, y)
    m, n = float(v10.size), float(v01.size)
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


# ------------------------------------- two models' AUCs on the same records (paired DeLong)


class AucComparison(NamedTuple):
    """Two models' AUCs in the same game and the DeLong covariance matrix of the pair
    (what :func:`paired_auc_covariance` returns)."""

    auc_new: float
    auc_retrained: float
    cov: np.ndarray


def paired_auc_covariance(scores_new: ArrayLike, scores_retrained: ArrayLike,
                          is_member: ArrayLike) -> AucComparison:
    """Two models' AUCs on the same records and DeLong's covariance matrix of the pair.

    With ``V10`` (per member) and ``V01`` (per non-member) the structural components of
    each model's scores, ``AUC = mean(V10)`` and ``Cov = S10 / m + S01 / n``, where
    ``S10`` and ``S01`` are the 2 x 2 sample covariances (ddof 1) of the two models'
    components over the ``m`` members and the ``n`` non-members. The records are the random
    units and the models are held fixed; the diagonal is each AUC's DeLong variance
    (:func:`auc_delong`).

    Parameters
    ----------
    scores_new, scores_retrained : arrays of shape (N,)
        One attack's scores (higher = more likely a member) from two models on the same
        records: for the forgetting check (:mod:`miaudit.governance.forget`), the model
        after forgetting and the model retrained without F.
    is_member : bool array of shape (N,)
        True for the members (the records of F); at least two records on each side.

    Returns
    -------
    AucComparison
        ``auc_new``, ``auc_retrained`` and ``cov`` (2 x 2, in that order).

    References
    ----------
    DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more
    correlated receiver operating characteristic curves", Biometrics 44(3).

    Examples
    --------
    >>> r = paired_auc_covariance(np.array([3., 1, 2, 0]), np.array([0., 2, 1, 3]),
    ...                           np.array([True, True, False, False]))
    >>> r.auc_new, r.auc_retrained
    (0.75, 0.25)
    """
    s_new, y = _as_arrays(scores_new, is_member)
    new = _components(s_new, y)
    ret = _components(np.asarray(scores_retrained, dtype=np.float64), y)
    v10, v01 = np.stack([new[0], ret[0]]), np.stack([new[1], ret[1]])
    cov = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    return AucComparison(float(v10[0].mean()), float(v10[1].mean()), cov)


def compare_aucs(scores_new: ArrayLike, scores_retrained: ArrayLike,
                 is_member: ArrayLike, alpha: float = 0.05) -> dict:
    """One attack's AUC on a model (after forgetting) against its AUC on another (the model
    retrained without F), on the same records.

    Parameters
    ----------
    scores_new, scores_retrained, is_member
        As for :func:`paired_auc_covariance` (higher score = more likely a member).
    alpha : float, default 0.05
        Two-sided error rate of each interval.

    Returns
    -------
    dict
        ``auc_new``, ``auc_retrained``; ``difference`` (``auc_new - auc_retrained``,
        positive: F looks more like members than on the retrained model) with
        ``difference_ci`` (paired DeLong, ``d +- z sqrt(var)``, clipped to [-1, 1]; a zero
        variance gives the point); ``privleak`` (MUSE, Shi et al. 2024:
        ``difference / auc_retrained``, same sign as the difference) with ``privleak_ci``
        (delta method: gradient ``(1 / B, -A / B^2)`` of ``A / B``); None with
        ``privleak_reason`` when the retrained AUC is 0.

    References
    ----------
    DeLong et al. (1988); Shi et al. (2024), "MUSE: Machine Unlearning Six-Way Evaluation
    for Language Models" (PrivLeak).

    Examples
    --------
    >>> e = compare_aucs(np.array([3., 2, 1, 0]), np.array([3., 1, 2, 0]),
    ...                  np.array([True, True, False, False]))
    >>> e["difference"], round(e["privleak"], 4)
    (0.25, 0.3333)
    """
    a, b, cov = paired_auc_covariance(scores_new, scores_retrained, is_member)
    z = float(stats.norm.ppf(1 - alpha / 2))
    d = a - b
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    half = z * math.sqrt(var) if var > 0 else 0.0
    out = {"auc_new": a, "auc_retrained": b, "difference": d,
           "difference_ci": (max(-1.0, d - half), min(1.0, d + half))}
    if b <= 0:
        return {**out, "privleak": None, "privleak_ci": None,
                "privleak_reason": "the retrained model's AUC is 0"}
    g = np.array([1 / b, -a / b**2])
    var_r = float(g @ cov @ g)
    half = z * math.sqrt(var_r) if var_r > 0 else 0.0
    r = a / b - 1
    return {**out, "privleak": r, "privleak_ci": (r - half, r + half)}
