"""Class-conditional threshold attacks (Song & Mittal, USENIX Security 2021, Sec. 3.2).

A threshold per class is fitted to maximise balanced accuracy; a record is called a member
when its signal is at least its class's threshold. To give a full ROC curve rather than
one operating point, the score is the signal minus the threshold of the record's class:
every global cut-off ``s >= c`` shifts all class thresholds by ``c``, and ``c = 0`` is the
fitted attack. Higher scores mean "more likely a member".

``class-loss`` and ``class-mentr`` fit the thresholds as Song & Mittal do, on shadow
models: the attacker's reference models on the records they were trained from
(:attr:`~miaudit.attacks.base.References.tuning`), whose membership it knows, pooled over
the reference models; the thresholds are then applied to the target's signal. No audited
record's membership is used.

``class-loss-known`` and ``class-mentr-known`` fit them instead on the target's own
membership of the other audited records, cross-fitted (see
:class:`~miaudit.attacks.base.Calibration`), so that a record's own membership never enters
its score. That is oracle knowledge (``known-members``): they run only when named.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.signals.transforms import modified_entropy


def best_threshold(signal: np.ndarray, is_member: np.ndarray) -> float:
    """Threshold ``t`` maximising balanced accuracy of ``signal >= t`` (members positive).

    Returns ``+inf`` (call nobody a member) when no threshold beats 0.5, or when one side
    is empty. The threshold lies halfway between two adjacent distinct signal values.
    """
    n_pos = int(is_member.sum())
    n_neg = len(is_member) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("inf")
    order = np.argsort(-signal, kind="stable")
    s = signal[order]
    m = is_member[order]
    tp = np.cumsum(m)
    fp = np.cumsum(~m)
    last_of_value = np.r_[s[1:] != s[:-1], True]  # cut after the last copy of a tie
    bacc = 0.5 * (tp / n_pos + 1.0 - fp / n_neg)
    bacc = np.where(last_of_value, bacc, -np.inf)
    j = int(np.argmax(bacc))
    if bacc[j] <= 0.5:
        return float("inf")
    below = s[j + 1] if j + 1 < len(s) and np.isfinite(s[j + 1]) else s[j] - 1.0
    return float(0.5 * (s[j] + below))


def fit_class_thresholds(
    signal: np.ndarray, labels: np.ndarray, is_member: np.ndarray, n_classes: int
) -> np.ndarray:
    """One threshold per class (shape (n_classes,)); classes lacking members or
    non-members among the fitting records fall back to the global threshold."""
    global_t = best_threshold(signal, is_member)
    thresholds = np.full(n_classes, global_t)
    for c in range(n_classes):
        in_c = labels == c
        members = int(is_member[in_c].sum())
        if members == 0 or members == int(in_c.sum()):
            continue
        thresholds[c] = best_threshold(signal[in_c], is_member[in_c])
    return thresholds


def _finite(*signals: np.ndarray) -> list[np.ndarray]:
    """The signals with infinities clipped just beyond their common finite range (the
    order within and across them kept)."""
    values = np.concatenate([x.ravel() for x in signals])
    finite = values[np.isfinite(values)]
    if len(finite) == len(values):
        return list(signals)
    lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    return [np.clip(np.nan_to_num(x, nan=lo - 1.0), lo - 1.0, hi + 1.0) for x in signals]


def _shift(signal: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``signal - thresholds``; a record whose class has no usable threshold (+inf) ranks
    below all others."""
    usable = np.isfinite(thresholds)
    return np.where(usable, signal - np.where(usable, thresholds, 0.0), -np.inf)


def _floor_infinities(scores: np.ndarray) -> np.ndarray:
    if np.isinf(scores).any():
        floor = scores[np.isfinite(scores)].min(initial=0.0) - 1.0
        scores = np.where(np.isinf(scores), floor, scores)
    return scores


def reference_threshold_scores(signal: np.ndarray, labels: np.ndarray,
                               reference_signal: np.ndarray, reference_labels: np.ndarray,
                               reference_membership: np.ndarray) -> np.ndarray:
    """``signal - threshold[class]`` with thresholds fitted on reference models.

    Parameters
    ----------
    signal : ndarray (N,)
        The target's member-oriented signal on the audited records.
    labels : ndarray (N,) int
    reference_signal : ndarray (K, R)
        The same signal of each reference model on the records it was fitted on.
    reference_labels : ndarray (R,) int
    reference_membership : ndarray (K, R) bool
        Whether record ``r`` was in reference ``k``'s training set.

    Returns
    -------
    score : ndarray (N,)
        Higher = member. One threshold per class maximising balanced accuracy over the
        ``K * R`` (reference, record) pairs pooled; classes the references lack members or
        non-members of use the pooled global threshold.

    Examples
    --------
    >>> ref = np.array([[3.0, 1.0, 0.0, -2.0]])
    >>> s = reference_threshold_scores(np.array([2.5, 0.5]), np.array([0, 1]), ref,
    ...                                np.array([0, 0, 1, 1]),
    ...                                np.array([[True, False, True, False]]))
    >>> s.tolist()  # thresholds 2.0 (class 0) and -1.0 (class 1)
    [0.5, 1.5]
    """
    signal, reference_signal = _finite(signal, reference_signal)
    k = reference_signal.shape[0]
    n_classes = int(max(labels.max(initial=0), reference_labels.max(initial=0))) + 1
    t = fit_class_thresholds(reference_signal.reshape(-1), np.tile(reference_labels, k),
                             reference_membership.reshape(-1), n_classes)
    return _floor_infinities(_shift(signal, t[labels]))


def class_threshold_scores(signal: np.ndarray, inputs: AttackInput) -> np.ndarray:
    """Cross-fitted ``signal - threshold[class]`` for a member-oriented ``signal``, fitted
    on the known membership of the other folds' records (``inputs.calibration``)."""
    cal = inputs.calibration
    if cal is None:
        raise ValueError("class-threshold attacks need calibration records")
    labels = inputs.target.labels
    n_classes = int(labels.max()) + 1
    (signal,) = _finite(signal)
    scores = np.empty(len(signal), dtype=np.float64)
    for f in range(cal.n_folds):
        held = cal.folds == f
        fit = ~held
        t = fit_class_thresholds(signal[fit], labels[fit], cal.is_member[fit], n_classes)
        scores[held] = _shift(signal[held], t[labels[held]])
    return _floor_infinities(scores)


def _reference_mentr(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([-modified_entropy(softmax(z, axis=1), labels) for z in logits])


def class_loss_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional LOSS threshold on reference models (Song & Mittal, USENIX
    Security 2021): signal ``-loss``, one threshold per class fitted on the references'
    ``-loss`` on the records they were trained from and not (``References.tuning``),
    pooled over the references. Higher = member."""
    refs = inputs.references.tuning
    return reference_threshold_scores(-inputs.target.loss, inputs.target.labels, -refs.loss,
                                      refs.labels, refs.membership)


def class_mentr_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional modified-entropy threshold on reference models (Song & Mittal,
    USENIX Security 2021): signal ``-Mentr``, thresholds fitted as in
    :func:`class_loss_attack`. Higher = member."""
    refs = inputs.references.tuning
    signal = -modified_entropy(inputs.target.probs, inputs.target.labels)
    return reference_threshold_scores(signal, inputs.target.labels,
                                      _reference_mentr(refs.logits, refs.labels), refs.labels,
                                      refs.membership)


def class_loss_known_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional LOSS threshold fitted on the target's membership of the other
    audited records (cross-fitted; oracle knowledge). Signal ``-loss``. Higher = member."""
    return class_threshold_scores(-inputs.target.loss, inputs)


def class_mentr_known_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional modified-entropy threshold fitted on the target's membership of
    the other audited records (cross-fitted; oracle knowledge). Signal ``-Mentr``.
    Higher = member."""
    signal = -modified_entropy(inputs.target.probs, inputs.target.labels)
    return class_threshold_scores(signal, inputs)


_PAPER = "Song & Mittal, USENIX Security 2021"
_ORACLE = "oracle: uses the membership of other audited records (cross-fitted)"

register_attack(Attack(
    "class-loss", class_loss_attack, frozenset({"loss"}),
    "per-class loss thresholds fitted on reference models", _PAPER,
    min_references=1, knowledge=frozenset({"references"}),
))
register_attack(Attack(
    "class-mentr", class_mentr_attack, frozenset({"probs"}),
    "per-class modified-entropy thresholds fitted on reference models", _PAPER,
    min_references=1, knowledge=frozenset({"references"}),
))
register_attack(Attack(
    "class-loss-known", class_loss_known_attack, frozenset({"loss"}),
    f"per-class loss thresholds; {_ORACLE}", _PAPER,
    uses_calibration=True, knowledge=frozenset({"known-members"}),
))
register_attack(Attack(
    "class-mentr-known", class_mentr_known_attack, frozenset({"probs"}),
    f"per-class modified-entropy thresholds; {_ORACLE}", _PAPER,
    uses_calibration=True, knowledge=frozenset({"known-members"}),
))
