"""Empirical lower bound on the differential-privacy epsilon from attack scores.

:func:`audit_epsilon_lower_bound` is the audit's bound: the one-run method of Steinke, Nasr &
Jagielski (2023) over the audited records of ONE trained model, valid when each record's
membership was drawn independently with probability 1/2 (the privacy game with a Bernoulli
target, :func:`miaudit.game.membership_design` with ``bernoulli >= 1``). For any other
membership (an existing model and its own training set, an exact random half) no number
is reported.

:func:`epsilon_lower_bound` is the former bound (FPR / FNR Clopper-Pearson bounds over the
records of one model, threshold chosen on a held-out half). It treats the records of one
training run as independent trials of the mechanism, which DP does not make them (their
outcomes share one model): it is not a valid lower bound for one training run, and
``tests/test_epsilon_validity.py`` shows an (0, delta)-DP mechanism on which it exceeds the
truth in about 20% of runs at alpha = 5%. It stays only until its last callers move.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from miaudit.errors import ConfigError, UndefinedMetricWarning
from miaudit.metrics.one_run import OneRunBound, correct_guesses, one_run_epsilons
from miaudit.metrics.roc import _as_arrays, _Roc, _roc

HELD_OUT_METHOD = ("held-out threshold (half the records); records of one model treated as "
                   "independent trials: not a valid DP lower bound for one training run")
ONE_RUN_METHOD = ("one-run (Steinke et al. 2023): 'in' for the k+ highest and 'out' for the "
                  "k- lowest scores, (k+, k-) the best of a fixed grid, Bonferroni-corrected")
#: Shares of the records guessed on one side: the grid is ``(k, 0)``, ``(0, k)`` and
#: ``(k, k)`` for ``k = round(f m)`` (at least 1), ``f`` in this list.
GUESS_FRACTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5)
NOT_RANDOM_REASON = (
    "the target's membership was not drawn at random per record; an epsilon lower bound "
    "needs each audited record included independently with probability 1/2 (the privacy "
    "game with a Bernoulli target, from a recipe), so none is reported"
)


@dataclass(frozen=True)
class EpsilonBound:
    """Result of :func:`audit_epsilon_lower_bound` (and of the former
    :func:`epsilon_lower_bound`).

    Attributes
    ----------
    value : float or None
        Lower bound on epsilon (>= 0); None when not measurable or not valid.
    threshold : float or None
        Held-out method only: threshold chosen on the first half (``score >= threshold``
        predicts member).
    fpr_upper, fnr_upper : float or None
        Held-out method only: one-sided Clopper-Pearson upper bounds of FPR and FNR on the
        second half.
    reason : str or None
        Why ``value`` is None.
    method : str
        Which bound: :data:`ONE_RUN_METHOD` or :data:`HELD_OUT_METHOD`.
    one_run : OneRunBound or None
        One-run method: the pair ``(k_pos, k_neg)`` reported, its guesses ``n_guesses``,
        correct ones ``n_correct``, the records ``n_canaries`` and the pairs tried
        ``n_hypotheses``.
    """

    value: float | None
    threshold: float | None
    fpr_upper: float | None
    fnr_upper: float | None
    reason: str | None
    method: str = HELD_OUT_METHOD
    one_run: OneRunBound | None = None


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


def guess_grid(m: int) -> list[tuple[int, int]]:
    """The pairs ``(k_pos, k_neg)`` that :func:`audit_epsilon_lower_bound` tries on ``m``
    records: ``(k, 0)``, ``(0, k)`` and ``(k, k)`` for ``k = max(1, round(f m))``, ``f`` in
    :data:`GUESS_FRACTIONS`, without repeats and with ``k_pos + k_neg <= m``.

    Examples
    --------
    >>> len(guess_grid(10_000)), guess_grid(2)
    (21, [(0, 1), (1, 0), (1, 1)])
    """
    pairs = set()
    for f in GUESS_FRACTIONS:
        k = max(1, round(f * m))
        pairs.update(p for p in ((k, 0), (0, k), (k, k)) if sum(p) <= m)
    return sorted(pairs)


def _audit_bounds(scores: np.ndarray, is_member: np.ndarray, *, delta: float, alpha: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The one-run bounds of many runs at once: ``scores, is_member: (R, m)``.

    Returns ``(eps (R,), best pair index (R,), correct guesses (R, H), pairs)``; each of
    the ``H`` pairs is tested at ``alpha / H``.
    """
    m = scores.shape[-1]
    pairs = guess_grid(m)
    v = correct_guesses(scores, is_member, pairs)
    r = np.broadcast_to(np.array([kp + kn for kp, kn in pairs]), v.shape)
    level = alpha / len(pairs)
    eps = one_run_epsilons(m, r.ravel(), v.ravel(), beta=level).reshape(v.shape)
    if delta > 0:  # the delta term only lowers a pair's bound: best pure bounds first
        pure, eps = eps, np.zeros(v.shape)
        pending = pure > 0
        while pending.any():
            cand = np.where(pending, pure, -1.0)
            j = np.argmax(cand, axis=-1)  # each row's highest pure bound not yet done
            rows = np.flatnonzero(pending.any(axis=-1))
            flat = np.ravel_multi_index((rows, j[rows]), v.shape) if v.ndim == 2 else j[None]
            eps.flat[flat] = one_run_epsilons(m, r.flat[flat], v.flat[flat], beta=level,
                                              delta=delta)
            pending.flat[flat] = False
            best_so_far = eps.max(axis=-1, keepdims=True)
            pending &= pure > best_so_far  # no other pair can beat the best any more
    best = np.argmax(eps, axis=-1)
    return np.take_along_axis(eps, best[..., None], axis=-1)[..., 0], best, v, pairs


def audit_epsilon_lower_bound(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    bernoulli_membership: bool,
    delta: float = 1e-5,
    alpha: float = 0.05,
) -> EpsilonBound:
    """Lower bound on the training's epsilon from ONE trained model (one-run method).

    The auditor guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg``
    lowest, abstains on the rest, and counts the correct guesses ``v`` of ``r``. If each of
    the ``m`` records was included independently with probability 1/2, an
    ``(eps, delta)``-DP training makes ``v`` small enough that
    ``p = P[Bin(r, e^eps / (1 + e^eps)) >= v] + 2 m delta * max_i P[v - i <= Bin < v] / i``
    is a p-value of "the training is (eps, delta)-DP" (Steinke et al. 2023, Theorem 3.1).
    The bound is the smallest eps not rejected at ``alpha / H``, maximised over the ``H``
    pairs of :func:`guess_grid` (a fixed grid, so the Bonferroni correction makes the
    maximum hold with probability ``1 - alpha``); 0 is an honest answer.

    Validity needs: (1) ``bernoulli_membership`` true, i.e. each audited record's
    membership in this model drawn independently with probability 1/2 (other records the
    model trained on may be fixed); (2) scores that depend on the trained model, on
    records, and on randomness independent of the membership (reference models trained on
    designs drawn independently of it, a public population), not on the membership labels
    themselves (cross-fitted calibration on the target's own labels is outside the theorem);
    (3) one model: scores of several targets whose memberships are tied (complementary
    pairs) must not be pooled.

    Parameters
    ----------
    scores : array of shape (m,)
        Higher = more likely member. Ties are broken by position.
    is_member : bool array of shape (m,)
    bernoulli_membership : bool
        Whether the membership was drawn independently per record with probability 1/2.
        False (an existing model with its own training set, an exact random half): the
        bound is None with a reason and an :class:`~miaudit.errors.UndefinedMetricWarning`,
        never a number.
    delta : float, default 1e-5
    alpha : float, default 0.05
        Significance level: ``eps >= value`` with probability at least ``1 - alpha``.

    Returns
    -------
    EpsilonBound
        ``method`` :data:`ONE_RUN_METHOD`; ``one_run`` the pair reported and its counts.

    Raises
    ------
    ConfigError
        ``scores`` and ``is_member`` of different lengths.

    References
    ----------
    Steinke, Nasr & Jagielski (2023), "Privacy auditing with one (1) training run",
    NeurIPS.

    Example
    -------
    >>> import numpy as np
    >>> member = np.random.default_rng(0).random(2000) < 0.5
    >>> res = audit_epsilon_lower_bound(member.astype(float), member,
    ...                                 bernoulli_membership=True, delta=0.0)
    >>> round(res.value, 2), res.one_run.n_correct == res.one_run.n_guesses
    (5.29, True)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):  # UndefinedMetricWarning
    ...     audit_epsilon_lower_bound(member, member, bernoulli_membership=False).value

    """
    s, y = _as_arrays(scores, is_member)
    s, y = s.ravel(), y.ravel()
    if s.shape != y.shape:
        raise ConfigError(f"scores and is_member have different lengths ({s.size} and "
                          f"{y.size}); give one of each per audited record.")
    reason = None
    if not bernoulli_membership:
        reason = NOT_RANDOM_REASON
    elif s.size == 0:
        reason = "not measurable: no audited records"
    if reason is not None:
        warnings.warn(f"epsilon lower bound reported as None: {reason}",
                      UndefinedMetricWarning, stacklevel=2)
        return EpsilonBound(None, None, None, None, reason, ONE_RUN_METHOD)
    eps, best, v, pairs = _audit_bounds(s, y, delta=delta, alpha=alpha)
    j = int(best)
    kp, kn = pairs[j]
    bound = OneRunBound(float(eps), kp, kn, kp + kn, int(v[j]), s.size, int(y.sum()), alpha,
                        delta, len(pairs))
    return EpsilonBound(float(eps), None, None, None, None, ONE_RUN_METHOD, bound)


def epsilon_lower_bound(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    seed: int = 0,
) -> EpsilonBound:
    """Former bound: NOT a valid DP lower bound for one training run (see the module).

    Use :func:`audit_epsilon_lower_bound`. Kept only while ``metrics.evaluate`` and
    ``metrics.__init__`` still import it.

    Any (eps, delta)-DP mechanism satisfies, for every test,
    ``FPR + e^eps FNR >= 1 - delta`` and ``FNR + e^eps FPR >= 1 - delta``. With one-sided
    Clopper-Pearson upper bounds ``FPR_u``, ``FNR_u``::

        eps_lb = max(log((1 - delta - FPR_u) / FNR_u), log((1 - delta - FNR_u) / FPR_u))

    clamped at 0 (a lower bound of 0 is a valid, honest answer).

    Validity: the records are split (seeded, stratified by membership) into two halves;
    the threshold that maximises ``eps_lb`` on the first half is applied to the second
    half, and only the second half's counts enter the reported bound, so choosing the best
    threshold does not bias it. ``FPR_u`` and ``FNR_u`` are each taken at confidence
    ``1 - alpha/2`` (Bonferroni); ``eps >= value`` would hold with probability at least
    ``1 - alpha`` if the records were independent trials, which in one training run they
    are not. The bound speaks about the training mechanism only when members were
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
