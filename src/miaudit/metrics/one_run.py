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
``beta``. For ``delta = 0``, ``p`` increases with ``eps`` and ``eps_lb`` is its root.

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
from scipy import optimize, special, stats

from miaudit.errors import ConfigError

__all__ = ["OneRunBound", "default_guesses", "one_run_audit", "one_run_epsilon", "one_run_p_value"]

#: Upper end of the search for epsilon (a bound of 50 needs ~10^21 guesses; none here).
_EPS_MAX = 50.0


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
    if one_run_p_value(m, r, v, 0.0, delta) > beta:
        return 0.0

    def gap(eps: float) -> float:
        return one_run_p_value(m, r, v, eps, delta) - beta

    if delta == 0:  # p increases with eps: its one root
        if gap(_EPS_MAX) <= 0:
            return _EPS_MAX
        return float(optimize.brentq(gap, 0.0, _EPS_MAX, xtol=1e-9))
    # delta > 0: the first crossing, found on a grid below the delta = 0 root (p with
    # delta >= p without, so it crosses no later), then refined
    hi = one_run_epsilon(m, r, v, beta=beta, delta=0.0)
    grid = np.linspace(0.0, hi, 401)
    above = [e for e in grid if gap(float(e)) > 0]
    if not above:
        return hi
    first = float(above[0])
    lo = float(grid[max(0, int(np.searchsorted(grid, first)) - 1)])
    if lo == first:
        return first
    return float(optimize.brentq(gap, lo, first, xtol=1e-9))


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
    if not 0 < beta < 1:
        raise ConfigError(f"beta (significance) must lie in (0, 1), got {beta}.")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta must lie in [0, 1), got {delta}.")
    m = s.size
    pos = [int(k) for k in np.atleast_1d(k_pos)]
    neg = [int(k) for k in np.atleast_1d(k_neg)]
    pairs = list(itertools.product(pos, neg))
    for kp, kn in pairs:
        if kp < 0 or kn < 0 or kp + kn == 0 or kp + kn > m:
            raise ConfigError(f"k_pos={kp}, k_neg={kn}: the guesses must be >= 0, at least "
                              f"one, and at most the {m} canaries in all.")
    order = np.argsort(-s, kind="stable")  # highest first; ties by position
    ranked = inc[order]
    hits_top = np.concatenate([[0], np.cumsum(ranked)])  # included among the top k
    outs_bottom = np.concatenate([[0], np.cumsum(~ranked[::-1])])  # excluded among bottom k
    level = beta / len(pairs)
    best: OneRunBound | None = None
    for kp, kn in pairs:
        v = int(hits_top[kp] + outs_bottom[kn])
        eps = one_run_epsilon(m, kp + kn, v, beta=level, delta=delta)
        if best is None or eps > best.epsilon:
            best = OneRunBound(eps, kp, kn, kp + kn, v, m, int(inc.sum()), beta, delta,
                               len(pairs))
    assert best is not None
    return best


def default_guesses(m: int) -> int:
    """Default guesses on each side: a tenth of the canaries (at least one).

    Examples
    --------
    >>> default_guesses(1000)
    100
    """
    return max(1, math.floor(m / 10))
