"""The one-run epsilon lower bound of Steinke, Nasr & Jagielski (2023), as pure functions.

The audit: ``m`` canaries, each included in the training set independently with
probability 1/2; ONE model is trained. The auditor scores every canary (higher = more
likely included), guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg``
lowest, and abstains on the rest. Of the ``r = k_pos + k_neg`` guesses, ``v`` are correct.

For an ``(eps, 0)``-DP training algorithm the number of correct guesses is stochastically
dominated by ``Binomial(r, q)`` with ``q = e^eps / (1 + e^eps)`` (Steinke et al., Theorem 3.1
with delta = 0), so ``p(eps) = P[Binomial(r, q) >= v]`` is a p-value of the claim "the
algorithm is eps-DP". For ``(eps, delta)``-DP the same theorem adds a term::

    p(eps, delta) = P[B >= v] + 2 m delta * max_{1 <= i <= v} P[v - i <= B < v] / i,
    B ~ Binomial(r, q)

(``m`` counts every canary, abstained or not). The lower bound at significance ``beta`` is
the smallest ``eps`` whose claim is *not* rejected::

    eps_lb = inf { eps >= 0 : p(eps, delta) > beta }

which is valid without monotonicity of ``p`` in ``eps``: if the true epsilon were below
``eps_lb``, its own test would have rejected it, which happens with probability at most
``beta``. For ``delta = 0``, ``p`` increases with ``eps`` and ``eps_lb`` is its root, in
closed form (the Clopper-Pearson lower bound of ``v / r``). For ``delta > 0`` the bound
reported never exceeds ``eps_lb``: every eps below it is certified rejected by a bound of
``p`` over whole intervals (see :func:`one_run_epsilon`), not only at grid points.

Choosing ``k_pos`` and ``k_neg``: fixing them in advance is valid as is. Trying several
pairs and keeping the best is corrected here by Bonferroni: each of the ``H`` pairs is
tested at ``beta / H`` (so the reported maximum holds with probability ``1 - beta``).

References
----------
Steinke, Nasr & Jagielski (2023), "Privacy auditing with one (1) training run", NeurIPS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from miaudit.errors import ConfigError

__all__ = ["OneRunBound", "checked_canaries", "correct_guesses", "default_guesses",
           "one_run_audit", "one_run_epsilon", "one_run_epsilons", "one_run_p_value"]

#: Upper end of the search for epsilon (a bound of 50 needs ~10^21 guesses; none here).
_EPS_MAX = 50.0
#: Intervals per round of the certified scan for delta > 0 (one vectorised pass each).
_SCAN_POINTS = 32


@dataclass(frozen=True)
class OneRunBound:
    """Result of :func:`one_run_audit`.

    Attributes
    ----------
    epsilon : float
        The lower bound on epsilon (>= 0) at significance ``beta``.
    k_pos, k_neg : int
        Guesses "in" (highest scores) and "out" (lowest scores) of the pair reported.
    n_guesses : int
        ``r = k_pos + k_neg``.
    n_correct : int
        ``v``: correct guesses among them.
    n_canaries : int
        ``m``.
    n_included : int
        Canaries that were included in training.
    beta : float
        Overall significance level.
    delta : float
    n_hypotheses : int
        Pairs ``(k_pos, k_neg)`` tried; each was tested at ``beta / n_hypotheses``.
    """

    epsilon: float
    k_pos: int
    k_neg: int
    n_guesses: int
    n_correct: int
    n_canaries: int
    n_included: int
    beta: float
    delta: float
    n_hypotheses: int

    @property
    def accuracy(self) -> float:
        """Share of correct guesses ``v / r``."""
        return self.n_correct / self.n_guesses if self.n_guesses else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy}


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float = 0.0) -> float:
    """P-value of "the training is (eps, delta)-DP" after ``v`` correct of ``r`` guesses.

    Parameters
    ----------
    m : int
        Canaries (each included with probability 1/2).
    r : int
        Guesses made (the rest abstained).
    v : int
        Correct guesses.
    eps : float
        >= 0.
    delta : float, default 0.0

    Returns
    -------
    float
        ``P[Bin(r, q) >= v] + 2 m delta max_i P[v - i <= Bin(r, q) < v] / i``, capped at 1,
        with ``q = e^eps / (1 + e^eps)``.

    Examples
    --------
    >>> round(one_run_p_value(100, 10, 10, 0.0), 6)  # 10 of 10 right by chance: 2^-10
    0.000977
    """
    q = float(special.expit(eps))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[B >= v]
    if delta == 0 or v == 0:
        return min(tail, 1.0)
    i = np.arange(1, v + 1)
    between = stats.binom.sf(v - i - 1, r, q) - tail  # P[v - i <= B < v]
    return min(tail + 2 * m * delta * float(np.max(between / i)), 1.0)


def one_run_epsilon(m: int, r: int, v: int, *, beta: float = 0.05,
                    delta: float = 0.0) -> float:
    """The one-run lower bound ``inf {eps >= 0 : p(eps, delta) > beta}`` (see the module).

    ``delta = 0``: the root of ``P[Bin(r, q) >= v] = beta`` in closed form, ``q`` the
    one-sided Clopper-Pearson lower bound of ``v / r`` (a Beta quantile). ``delta > 0``:
    ``p`` need not increase with ``eps``, so the bound is the end of a *certified* scan:
    every interval ``[a, b]`` of eps below the reported value was checked with an upper
    bound of ``p`` over the whole interval (``P[B_b >= v] + 2 m delta (D_b + P[B_b >= v] -
    P[B_a >= v])``, ``D`` the max-over-``i`` term; both tails grow with ``eps``), so no eps
    below it escapes rejection, whatever the shape of ``p`` between grid points. The
    max over ``i`` is computed exactly (binary search: the window averages of a log-concave
    pmf anchored at ``v - 1`` rise, then fall).

    Parameters
    ----------
    m, r, v : int
        Canaries, guesses, correct guesses (``0 <= v <= r <= m``).
    beta : float, default 0.05
        Significance level.
    delta : float, default 0.0

    Returns
    -------
    float
        0 when the guesses do not reject even eps = 0 (for instance ``v <= r / 2``).

    Examples
    --------
    >>> round(one_run_epsilon(1000, 100, 100), 3)  # all right: q^100 = 0.05
    3.493
    >>> one_run_epsilon(1000, 100, 50)
    0.0
    """
    return float(one_run_epsilons(m, np.array([r]), np.array([v]), beta=beta, delta=delta)[0])


def _tail(r, k, q):
    """``P[Bin(r, q) >= k]`` elementwise (1 for ``k <= 0``, 0 for ``k > r``)."""
    kk = np.clip(k, 1, np.maximum(r, 1))
    out = special.betainc(kk, np.maximum(r - kk + 1, 1), q)
    return np.where(k <= 0, 1.0, np.where(k > r, 0.0, out))


def _pmf(r, k, q):
    """``P[Bin(r, q) = k]`` elementwise (0 outside ``[0, r]``), from log-gamma functions
    (``scipy.stats.binom.pmf`` costs ten times as much per call)."""
    kk = np.clip(k, 0, r)
    log_p = (special.gammaln(r + 1.0) - special.gammaln(kk + 1.0) - special.gammaln(r - kk + 1.0)
             + special.xlogy(kk, q) + special.xlog1py(r - kk, -q))
    return np.where((k < 0) | (k > r), 0.0, np.exp(log_p))


def _window_max(r, v, q):
    """``max_{1 <= i <= v} P[v - i <= Bin(r, q) < v] / i`` elementwise (0 where ``v = 0``).

    The average ``A(i)`` of the pmf over ``[v - i, v - 1]`` rises while the window grows
    towards the mode and, once an added value falls below the average, falls for good (the
    pmf is unimodal), so the first ``i`` whose next value is below ``A(i)`` is the maximum:
    found by bisection over ``i``.
    """
    r, v, q = np.broadcast_arrays(np.asarray(r), np.asarray(v), np.asarray(q, dtype=float))
    tail_v = _tail(r, v, q)

    def avg(i):
        return (_tail(r, v - i, q) - tail_v) / np.maximum(i, 1)

    lo = np.ones(v.shape, dtype=np.int64)
    hi = np.maximum(v, 1).astype(np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        mid = (lo + hi) // 2
        falls = _pmf(r, v - 1 - mid, q) < avg(mid)  # adding value i + 1 lowers the mean
        hi = np.where(open_ & falls, mid, hi)
        lo = np.where(open_ & ~falls, mid + 1, lo)
    return np.where(v <= 0, 0.0, np.maximum(avg(lo), 0.0))


def _pure_epsilons(r, v, beta: float):
    """The ``delta = 0`` bounds: ``logit`` of the Clopper-Pearson lower bound of ``v / r``."""
    r = np.asarray(r, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    ok = (v > 0) & (r > 0)
    a, b = np.where(ok, v, 1.0), np.where(ok, r - v + 1, 1.0)
    q = special.betaincinv(a, b, beta)  # P[Bin(r, q) >= v] = beta
    one_minus_q = special.betaincinv(b, a, 1 - beta)  # 1 - q, without cancellation
    with np.errstate(divide="ignore"):
        eps = np.log(q) - np.log(one_minus_q)
    return np.where(ok, np.clip(eps, 0.0, _EPS_MAX), 0.0)


def one_run_epsilons(m: int, r: ArrayLike, v: ArrayLike, *, beta: float = 0.05,
                     delta: float = 0.0, tol: float = 1e-7) -> np.ndarray:
    """:func:`one_run_epsilon` for arrays of ``(r, v)`` at once (same ``m``, ``beta``,
    ``delta``); ``tol`` is the resolution in eps of the certified scan (``delta > 0``)."""
    r = np.asarray(r, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    pure = _pure_epsilons(r, v, beta)
    if delta == 0:
        return pure
    c = 2 * m * delta
    out = np.zeros(pure.shape)
    todo = np.flatnonzero(pure > 0)  # the delta term only lowers the bound
    r, v, top = r[todo, None], v[todo, None], pure[todo]
    # eps = 0 itself not rejected: the bound is 0
    alive = (_tail(r, v, 0.5) + c * _window_max(r, v, 0.5) <= beta)[:, 0]
    lo = np.zeros(top.shape)  # invariant: every eps in [0, lo] is rejected
    hi = top.copy()
    steps = np.arange(_SCAN_POINTS + 1) / _SCAN_POINTS
    idx = np.flatnonzero(alive)
    while idx.size:
        ri, vi = r[idx], v[idx]
        ends = lo[idx, None] + (hi - lo)[idx, None] * steps  # (n, G + 1)
        q = special.expit(ends)
        tails = _tail(ri, vi, q)
        # p over [a, b] is at most this (each P[v - i <= B < v] over [a, b] is at most
        # P[B_b >= v - i] - P[B_a >= v])
        bound = tails[:, 1:] + c * (_window_max(ri, vi, q[:, 1:]) + tails[:, 1:]
                                    - tails[:, :-1])
        failed = bound > beta
        first = failed.argmax(axis=1)
        none = ~failed.any(axis=1)
        rows = np.arange(idx.size)
        # no interval failed: all of [lo, hi] is rejected, go on up to the top
        lo[idx] = np.where(none, hi[idx], ends[rows, first])
        hi[idx] = np.where(none, top[idx], ends[rows, first + 1])
        finished = np.where(none, lo[idx] >= top[idx], hi[idx] - lo[idx] < tol)
        idx = idx[~finished]
    out[todo] = np.where(alive, lo, 0.0)
    return out


def one_run_audit(
    scores: ArrayLike,
    included: ArrayLike,
    *,
    k_pos: int | Sequence[int],
    k_neg: int | Sequence[int],
    beta: float = 0.05,
    delta: float = 0.0,
) -> OneRunBound:
    """The one-run epsilon lower bound of a canary audit (Steinke et al. 2023).

    Parameters
    ----------
    scores : array of shape (m,)
        Attack score of each canary on the trained model (higher = more likely included).
        Ties are broken by position (a rule that does not look at ``included``).
    included : bool array of shape (m,)
        Whether each canary was in the training set (drawn independently with
        probability 1/2).
    k_pos, k_neg : int or sequence of int
        Guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg`` lowest.
        Sequences: every pair is tried, each tested at ``beta / (number of pairs)``
        (Bonferroni), and the pair with the highest bound is reported.
    beta : float, default 0.05
        Significance level: the bound holds with probability at least ``1 - beta``.
    delta : float, default 0.0
        The delta of the DP claim tested (0: pure DP, the paper's Theorem with delta = 0).

    Returns
    -------
    OneRunBound

    Raises
    ------
    ConfigError
        Arrays of different lengths, non-finite scores, a pair with ``k_pos + k_neg`` above
        the number of canaries or with no guess, ``beta`` outside (0, 1), ``delta`` outside
        [0, 1).

    References
    ----------
    Steinke, Nasr & Jagielski (2023), "Privacy auditing with one (1) training run",
    NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> included = np.arange(1000) % 2 == 0
    >>> res = one_run_audit(included.astype(float), included, k_pos=100, k_neg=100)
    >>> res.n_correct, round(res.epsilon, 2)
    (200, 4.19)
    """
    s, inc, pairs = checked_canaries(scores, included, k_pos, k_neg)
    if not 0 < beta < 1:
        raise ConfigError(f"beta (significance) must lie in (0, 1), got {beta}.")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta must lie in [0, 1), got {delta}.")
    return _best_pair(s, inc, pairs, beta=beta, delta=delta)


def checked_canaries(scores: ArrayLike, included: ArrayLike, k_pos: int | Sequence[int],
                     k_neg: int | Sequence[int]
                     ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The canaries' scores (float) and inclusion (bool), and every ``(k_pos, k_neg)``
    pair, checked (:class:`~miaudit.errors.ConfigError` naming what is wrong)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    inc = np.asarray(included).ravel()
    if s.shape != inc.shape:
        raise ConfigError(f"scores and included have different lengths ({s.size} and "
                          f"{inc.size}); give one of each per canary.")
    if not np.isfinite(s).all():
        raise ConfigError(f"{int((~np.isfinite(s)).sum())} canary scores are NaN or "
                          "infinite; every canary needs a finite score.")
    if inc.dtype != bool:
        if not np.isin(inc, (0, 1)).all():
            raise ConfigError("included must be boolean (or 0/1), one entry per canary.")
        inc = inc.astype(bool)
    m = s.size
    pos = [int(k) for k in np.atleast_1d(k_pos)]
    neg = [int(k) for k in np.atleast_1d(k_neg)]
    pairs = list(itertools.product(pos, neg))
    for kp, kn in pairs:
        if kp < 0 or kn < 0 or kp + kn == 0 or kp + kn > m:
            raise ConfigError(f"k_pos={kp}, k_neg={kn}: the guesses must be >= 0, at least "
                              f"one, and at most the {m} canaries in all.")
    return s, inc, pairs


def correct_guesses(scores: np.ndarray, included: np.ndarray,
                    pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Correct guesses ``v`` of each pair ``(k_pos, k_neg)``, for each row of ``scores``.

    ``scores, included: (R, m)`` (or ``(m,)``); ``in`` for the ``k_pos`` highest scores
    of a row, ``out`` for its ``k_neg`` lowest, ties broken by position. Returns
    ``(R, len(pairs))`` (or ``(len(pairs),)``) int.
    """
    s = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    order = np.argsort(-s, axis=-1, kind="stable")  # highest first; ties by position
    ranked = np.take_along_axis(inc, order, axis=-1)
    zero = np.zeros((*ranked.shape[:-1], 1), dtype=np.int64)
    hits_top = np.concatenate([zero, np.cumsum(ranked, axis=-1)], axis=-1)
    outs_bottom = np.concatenate([zero, np.cumsum(~ranked[..., ::-1], axis=-1)], axis=-1)
    kp = np.array([p[0] for p in pairs], dtype=np.intp)
    kn = np.array([p[1] for p in pairs], dtype=np.intp)
    return hits_top[..., kp] + outs_bottom[..., kn]


def _best_pair(s: np.ndarray, inc: np.ndarray, pairs: Sequence[tuple[int, int]], *,
               beta: float, delta: float) -> OneRunBound:
    """The bound of each pair at ``beta / len(pairs)``; the first highest is reported."""
    m = s.size
    v = correct_guesses(s, inc, pairs)
    r = np.array([kp + kn for kp, kn in pairs])
    eps = one_run_epsilons(m, r, v, beta=beta / len(pairs), delta=delta)
    j = int(np.argmax(eps))
    kp, kn = pairs[j]
    return OneRunBound(float(eps[j]), kp, kn, kp + kn, int(v[j]), m, int(inc.sum()), beta,
                       delta, len(pairs))


def default_guesses(m: int) -> int:
    """Default guesses on each side: a tenth of the canaries (at least one).

    Examples
    --------
    >>> default_guesses(1000)
    100
    """
    return max(1, math.floor(m / 10))
