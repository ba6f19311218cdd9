"""Shokri et al.'s learned attack (IEEE S&P 2017): attack classifiers on shadow outputs.

For each class, a classifier learns to tell IN from OUT from a shadow (reference) model's
probability vector sorted in decreasing order, on the reference models' outputs whose
membership the attacker knows; it is then applied to the target's probability vectors.
Score: the classifier's probability of IN (higher = member).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.errors import ConfigError

#: Training rows per class classifier are subsampled to at most this many.
MAX_ROWS_PER_CLASS = 20_000
_TOP = 10  # the sorted vector is cut to its 10 largest entries (plus the true-class one)


def _features(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    top = -np.sort(-probs, axis=1)[:, :_TOP]
    p_y = probs[np.arange(len(labels)), labels]
    return np.column_stack([top, np.log(np.maximum(p_y, 1e-300))])


def shokri(inputs: AttackInput, *, seed: int = 0) -> np.ndarray:
    """Per-class gradient-boosted attack classifiers (scikit-learn's
    ``HistGradientBoostingClassifier``) on sorted probability vectors of the references."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    refs = inputs.references.tuning
    labels = inputs.target.labels
    if refs.membership.all() or not refs.membership.any():
        raise ConfigError(
            "The attack 'shokri' learns from reference outputs on records they were and were "
            "not trained on; these references saw none (or all) of the audited records. Use "
            "--reference-mode online."
        )
    k = refs.n_models
    feats = np.concatenate([_features(softmax(z, axis=1), refs.labels) for z in refs.logits])
    inside = refs.membership.reshape(-1)
    row_labels = np.tile(refs.labels, k)
    target_feats = _features(inputs.target.probs, labels)
    rng = np.random.default_rng(seed)
    scores = np.full(len(labels), 0.5)
    for c in np.unique(labels):
        rows = np.flatnonzero(row_labels == c)
        if len(rows) > MAX_ROWS_PER_CLASS:
            rows = rng.choice(rows, MAX_ROWS_PER_CLASS, replace=False)
        y = inside[rows]
        if y.all() or not y.any():
            continue
        clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1,
                                             random_state=seed)
        clf.fit(feats[rows], y)
        mask = labels == c
        scores[mask] = clf.predict_proba(target_feats[mask])[:, 1]
    return scores


register_attack(Attack(
    "shokri", shokri, frozenset({"probs"}),
    "per-class attack classifiers trained on reference models' sorted outputs",
    "Shokri et al., IEEE S&P 2017", min_references=1, knowledge=frozenset({"references"}),
))
