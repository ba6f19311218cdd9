"""Per-record signals computed from model outputs (pure functions over arrays).

Every function takes arrays of shape (N, C) (and labels of shape (N,)) and returns an
array of shape (N,). Signals are *not* attack scores: their direction is documented on
each function, and the attacks in :mod:`miaudit.attacks` orient them so that higher
means "more likely a member".
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp

# Probabilities are clipped to [_EPS, 1 - _EPS] wherever a log of p or 1 - p is taken.
_EPS = 1e-300


def true_class_loss(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy loss ``l = -log p_y`` (lower for members).

    Parameters
    ----------
    log_probs : ndarray (N, C)
        Log-probabilities.
    labels : ndarray (N,) of int
        True labels.
    """
    return -log_probs[np.arange(len(labels)), labels]


def loss_from_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy loss from logits via a stable log-softmax (lower for members)."""
    return true_class_loss(log_softmax(logits, axis=1), labels)


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's ``phi = log(p_y / (1 - p_y)) = z_y - logsumexp_{j != y} z_j`` (higher for members).

    Computed from logits without forming ``p_y``, so it stays finite when ``p_y``
    rounds to 1 in floating point (Carlini et al., S&P 2022, Sec. IV-B).
    """
    n = len(labels)
    rows = np.arange(n)
    z_y = logits[rows, labels]
    others = logits.astype(np.float64, copy=True)
    others[rows, labels] = -np.inf
    return z_y - logsumexp(others, axis=1)


def logit_scaled_confidence_from_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``phi = log p_y - log(1 - p_y)`` from probabilities (higher for members).

    ``1 - p_y`` is taken as the sum of the other classes' probabilities, which keeps
    precision when ``p_y`` is close to 1.
    """
    rows = np.arange(len(labels))
    p_y = probs[rows, labels]
    rest = probs.sum(axis=1) - p_y
    return np.log(np.maximum(p_y, _EPS)) - np.log(np.maximum(rest, _EPS))


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy ``H(p) = -sum_i p_i log p_i`` in nats (lower for members)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(np.maximum(probs, _EPS)), 0.0)
    return -terms.sum(axis=1)


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal's modified entropy (lower for members).

    ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``
    (Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models",
    USENIX Security 2021, Eq. 6). Unlike the entropy it uses the true label, so a
    confidently wrong prediction gets a high value.
    """
    rows = np.arange(len(labels))
    p = np.clip(probs, _EPS, 1.0 - 1e-16)
    p_y = p[rows, labels]
    other_terms = p * np.log1p(-p)
    other_terms[rows, labels] = 0.0
    return -(1.0 - p_y) * np.log(p_y) - other_terms.sum(axis=1)


def correctness(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``1[argmax = y]`` as float (1 for correctly classified records, more often members)."""
    return (predicted == labels).astype(np.float64)
