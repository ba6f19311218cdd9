"""ROC-based figures of a membership-inference attack, with exact or DeLong intervals.

Conventions shared by every function here:

* ``scores``: 1-D float array, **higher = more likely member**.
* ``is_member``: 1-D bool array of the same length, ``True`` = member (positive class).
* A threshold ``t`` predicts "member" for every record with ``score >= t``.

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


def _beta_interval(k: float, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson interval; ``k`` may be fractional (continuous extension)."""
    if n <= 0:
        return 0.0, 1.0
    lo = 0.0 if k <= 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    hi = 1.0 if k >= n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return lo, hi


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
    auc = float(pos_g @ v10) / p
    if p < 2 or n < 2:
        return auc, math.nan
    mean01 = float(neg_g @ v01) / n
    s10 = float(pos_g @ (v10 - auc) ** 2) / (p - 1)
    s01 = float(neg_g @ (v01 - mean01) ** 2) / (n - 1)
    return auc, s10 / p + s01 / n


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


def _auc_with_ci(r: _Roc, alpha: float) -> tuple[float, tuple[float, float]]:
    auc, var = _auc_delong(r)
    if var > 0:  # False for NaN too
        half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(var)
        return auc, (max(0.0, auc - half), min(1.0, auc + half))
    n_eff = min(r.n_pos, r.n_neg)
    return auc, _beta_interval(auc * n_eff, n_eff, alpha)


def auc_with_ci(
    scores: ArrayLike, is_member: ArrayLike, alpha: float = 0.05
) -> tuple[float, tuple[float, float]]:
    """AUC with a two-sided ``1 - alpha`` DeLong confidence interval.

    Interval: ``AUC ± z_{1-alpha/2} * sqrt(Var_DeLong)``, clipped to [0, 1].

    When the DeLong variance is zero (perfect separation, AUC 0 or 1, or all scores tied)
    or cannot be estimated (fewer than two members or non-members), the normal interval
    would be degenerate. The fallback is then the Clopper-Pearson interval for
    ``AUC * m`` successes in ``m = min(n_members, n_non_members)`` trials: ``m`` disjoint
    member/non-member pairs are independent Bernoulli(AUC) trials, and at AUC 0 or 1 every
    such pairing gives the observed count, so the interval is exact there
    (e.g. ``[(alpha/2)^(1/m), 1]`` at AUC 1). With ties the count is fractional and the
    Beta-quantile formula is used as is (a conservative approximation).

    Parameters
    ----------
    scores : array of shape (n,)
        Higher = more likely member.
    is_member : bool array of shape (n,)
    alpha : float, default 0.05

    Returns
    -------
    auc : float
    (lo, hi) : tuple of float

    References
    ----------
    DeLong et al. (1988); Sun & Xu (2014), fast midrank algorithm.

    Example
    -------
    >>> auc, (lo, hi) = auc_with_ci([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    >>> auc
    0.75
    >>> 0.0 <= lo <= auc <= hi <= 1.0
    True
    """
    return _auc_with_ci(_roc(*_as_arrays(scores, is_member)), alpha)


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
        Clopper-Pearson interval on the members at that threshold.
    threshold : float or None
        Threshold used (``score >= threshold`` predicts member); ``inf`` = predict nobody.
    achieved_fpr : float or None
        Empirical FPR at that threshold (<= ``max_fpr``).
    reason : str or None
        Why ``value`` is None.
    """

    max_fpr: float
    value: float | None
    ci: tuple[float, float] | None
    threshold: float | None
    achieved_fpr: float | None
    reason: str | None = None


def needed_non_members(max_fpr: float) -> int:
    """Fewest non-members for which an FPR of ``max_fpr`` is measurable: ``ceil(1/max_fpr)``."""
    return math.ceil(1.0 / max_fpr - 1e-9)


def _tpr_at_fpr(r: _Roc, max_fpr: float, alpha: float) -> TprAtFpr:
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
    j = int(np.searchsorted(r.tp, r.tp[i], side="left"))
    k = int(r.tp[j])
    return TprAtFpr(
        max_fpr=max_fpr,
        value=k / r.n_pos,
        ci=clopper_pearson(k, r.n_pos, alpha),
        threshold=float(r.thresholds[j]),
        achieved_fpr=float(fpr[j]),
    )


def tpr_at_fpr(
    scores: ArrayLike, is_member: ArrayLike, max_fpr: float, alpha: float = 0.05
) -> TprAtFpr:
    """Highest TPR over thresholds whose empirical FPR is at most ``max_fpr``.

    Conservative: only thresholds that meet the budget on this sample count, so the
    reported TPR never uses an operating point with FPR above ``max_fpr`` (no
    interpolation). If only "predict nobody" meets the budget, the TPR is 0.0 with a valid
    interval: that is a measurement, not an undefined figure.

    The interval is Clopper-Pearson on the members at the chosen threshold
    (``k`` = true positives, ``n`` = number of members). It ignores the uncertainty of the
    FPR and of choosing the threshold on the same data.

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

    Returns
    -------
    TprAtFpr

    References
    ----------
    Carlini et al. (2022), "Membership Inference Attacks From First Principles", IEEE S&P.

    Example
    -------
    >>> res = tpr_at_fpr([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [True, True, True, False, False, False],
    ...                  max_fpr=0.34)
    >>> res.value, round(res.achieved_fpr, 4), res.threshold
    (1.0, 0.3333, 0.3)
    """
    return _tpr_at_fpr(_roc(*_as_arrays(scores, is_member)), float(max_fpr), alpha)


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
