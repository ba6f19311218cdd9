"""Empirical lower bound on the differential-privacy epsilon from attack scores.

:func:`audit_epsilon_lower_bound` is the audit's bound: the one-run method of Steinke, Nasr &
Jagielski (2023) over the audited records of ONE trained model, valid when each record's
membership was drawn independently with probability 1/2 (the privacy game with a Bernoulli
target, :func:`miaudit.game.membership_design` with ``bernoulli >= 1``). For any other
membership (an existing model and its own training set, an exact random half) no number
is reported.

It replaced a bound that treated the records of one training run as independent trials of
the mechanism (Clopper-Pearson bounds on FPR and FNR at a threshold chosen on a held-out
half), which DP does not make them: on an (0, delta)-DP mechanism that reveals a few
records' membership, that bound exceeded the truth in about 20% of runs at alpha = 5%.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import ConfigError, UndefinedMetricWarning
from miaudit.metrics.one_run import OneRunBound, correct_guesses, one_run_epsilons
from miaudit.metrics.roc import _as_arrays

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
    """Result of :func:`audit_epsilon_lower_bound`.

    Attributes
    ----------
    value : float or None
        Lower bound on epsilon (>= 0); None when not measurable or not valid.
    reason : str or None
        Why ``value`` is None.
    method : str
        Which bound (:data:`ONE_RUN_METHOD`), as ``summary.json``'s ``epsilon_method``.
    one_run : OneRunBound or None
        One-run method: the pair ``(k_pos, k_neg)`` reported, its guesses ``n_guesses``,
        correct ones ``n_correct``, the records ``n_canaries`` and the pairs tried
        ``n_hypotheses``.
    """

    value: float | None
    reason: str | None
    method: str = ONE_RUN_METHOD
    one_run: OneRunBound | None = None


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
        return EpsilonBound(None, reason)
    eps, best, v, pairs = _audit_bounds(s, y, delta=delta, alpha=alpha)
    j = int(best)
    kp, kn = pairs[j]
    bound = OneRunBound(float(eps), kp, kn, kp + kn, int(v[j]), s.size, int(y.sum()), alpha,
                        delta, len(pairs))
    return EpsilonBound(float(eps), None, one_run=bound)


