"""Label-only attacks: the target answers with its predicted label and nothing else.

Choquette-Choo et al. (ICML 2021) and Li & Zhang (CCS 2021) showed that hiding the
confidences does not stop membership inference: a model is more robust around the
records it was trained on, so its label survives more perturbation there. The audit
queries the target on perturbed copies of each record (see
:mod:`miaudit.signals.label_queries`) and hands the answers over in
:class:`~miaudit.attacks.base.LabelQueries`; these functions turn them into scores,
higher meaning "more likely a member".
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.errors import ConfigError


def label_augment(inputs: AttackInput) -> np.ndarray:
    """Augmentation consistency: the fraction of perturbed copies (noise and feature flips
    for tables, flips and shifts for images) the target still labels correctly
    (Choquette-Choo et al., ICML 2021). Members keep their label more often."""
    return inputs.label_queries.augment_correct.mean(axis=1)


def label_boundary(inputs: AttackInput) -> np.ndarray:
    """Decision-boundary distance: the smallest perturbation (L2) found along random
    directions that changes the target's label, negative for misclassified records
    (Choquette-Choo et al., ICML 2021; Li & Zhang, CCS 2021). Members lie farther
    from the boundary."""
    return inputs.label_queries.boundary_distance


def _level_fractions(correct: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per record, the fraction of copies labelled correctly at each perturbation level."""
    return np.stack([correct[..., levels == lv].mean(axis=-1) for lv in np.unique(levels)],
                    axis=-1)


def label_augment_learned(inputs: AttackInput, *, seed: int = 0) -> np.ndarray:
    """A logistic regression over the per-level correctness fractions, fitted on the
    attacker's reference models (whose membership it knows) and applied to the target
    (Choquette-Choo et al., ICML 2021, Sec. 5). Score: the predicted probability of IN."""
    from sklearn.linear_model import LogisticRegression

    q = inputs.label_queries
    inside = q.reference_membership.reshape(-1)
    if inside.all() or not inside.any():
        raise ConfigError(
            "The attack 'label-augment-learned' learns from reference models on records they "
            "were and were not trained on; these references saw none (or all) of them."
        )
    train = _level_fractions(q.reference_correct, q.augment_levels)
    train = train.reshape(-1, train.shape[-1])
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    clf.fit(train, inside)
    return clf.predict_proba(_level_fractions(q.augment_correct, q.augment_levels))[:, 1]


_PAPERS = "Choquette-Choo et al., ICML 2021; Li & Zhang, CCS 2021"

register_attack(Attack(
    "label-augment", label_augment, frozenset({"predicted"}),
    "fraction of perturbed copies still labelled correctly (label only)", _PAPERS,
    needs_queries=True, knowledge=frozenset({"queries"}),
))
register_attack(Attack(
    "label-boundary", label_boundary, frozenset({"predicted"}),
    "distance to the decision boundary along random directions (label only)", _PAPERS,
    needs_queries=True, knowledge=frozenset({"queries"}),
))
register_attack(Attack(
    "label-augment-learned", label_augment_learned, frozenset({"predicted"}),
    "logistic regression over augmentation results, fitted on reference models",
    "Choquette-Choo et al., ICML 2021", min_references=1, needs_queries=True,
    knowledge=frozenset({"queries", "references"}),
))
