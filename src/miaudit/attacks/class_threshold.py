"""Class-conditional threshold attacks (Song & Mittal, USENIX Security 2021, Sec. 3.2).

A threshold per class is fitted, on records of known membership, to maximise balanced
accuracy; a record is called a member when its signal is at least its class's threshold.
To give a full ROC curve rather than one operating point, the score is the signal minus
the threshold of the record's class: every global cut-off ``s >= c`` shifts all class
thresholds by ``c``, and ``c = 0`` is the fitted attack. Thresholds are cross-fitted (see
:class:`~miaudit.attacks.base.Calibration`), so a record's own membership never enters
its score. Higher scores mean "more likely a member".
"""

from __future__ import annotations

import numpy as np

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


def class_threshold_scores(signal: np.ndarray, inputs: AttackInput) -> np.ndarray:
    """Cross-fitted ``signal - threshold[class]`` for a member-oriented ``signal``."""
    cal = inputs.calibration
    if cal is None:
        raise ValueError("class-threshold attacks need calibration records")
    labels = inputs.target.labels
    n_classes = int(labels.max()) + 1
    finite = np.isfinite(signal)
    if not finite.all():  # keep the order, drop the infinities
        lo, hi = (signal[finite].min(), signal[finite].max()) if finite.any() else (0.0, 0.0)
        signal = np.clip(signal, lo - 1.0, hi + 1.0)
    scores = np.empty(len(signal), dtype=np.float64)
    for f in range(cal.n_folds):
        held = cal.folds == f
        fit = ~held
        t = fit_class_thresholds(signal[fit], labels[fit], cal.is_member[fit], n_classes)
        t_held = t[labels[held]]
        # A class with no usable threshold (+inf) ranks its records below all others.
        usable = np.isfinite(t_held)
        scores[held] = np.where(usable, signal[held] - np.where(usable, t_held, 0.0), -np.inf)
    if np.isinf(scores).any():
        floor = scores[np.isfinite(scores)].min(initial=0.0) - 1.0
        scores = np.where(np.isinf(scores), floor, scores)
    return scores


def class_loss_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional LOSS threshold: signal ``-loss``."""
    return class_threshold_scores(-inputs.target.loss, inputs)


def class_mentr_attack(inputs: AttackInput) -> np.ndarray:
    """Class-conditional modified-entropy threshold: signal ``-Mentr``."""
    signal = -modified_entropy(inputs.target.probs, inputs.target.labels)
    return class_threshold_scores(signal, inputs)


register_attack(
    Attack("class-loss", class_loss_attack, frozenset({"loss"}),
           "per-class loss thresholds fitted on known records (cross-fitted)",
           "Song & Mittal, USENIX Security 2021", uses_calibration=True)
)
register_attack(
    Attack("class-mentr", class_mentr_attack, frozenset({"probs"}),
           "per-class modified-entropy thresholds fitted on known records (cross-fitted)",
           "Song & Mittal, USENIX Security 2021", uses_calibration=True)
)
