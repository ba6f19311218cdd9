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

    ``1 - p_y`` is taken as the sum of the other classes' probabilities (see
    :func:`one_minus`), which keeps precision when ``p_y`` is close to 1.
    """
    rows = np.arange(len(labels))
    p_y = probs[rows, labels]
    rest = one_minus(probs)[rows, labels]
    return np.log(np.maximum(p_y, _EPS)) - np.log(np.maximum(rest, _EPS))


def one_minus(probs: np.ndarray) -> np.ndarray:
    """``1 - p_i`` for every entry, exact where it matters: for the largest entry of each row
    (the only one that can be close to 1) it is the sum of the others, not ``1 - p``, when
    the row sums to 1 (a released vector that does not, such as a rounded one, keeps
    ``1 - p``: there the others' sum says nothing exact about ``p``)."""
    out = 1.0 - probs
    rows = np.arange(len(probs))
    top = np.argmax(probs, axis=1)
    others = probs.copy()
    others[rows, top] = 0.0
    rest = others.sum(axis=1)
    normalised = np.abs(rest + probs[rows, top] - 1.0) <= 1e-9
    out[rows, top] = np.where(normalised, rest, out[rows, top])
    return out


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
    confidently wrong prediction gets a high value. ``1 - p_i`` and ``log p_y`` are taken in
    forms that stay exact for the most confident records, which decide the TPR at low FPR.
    """
    rows = np.arange(len(labels))
    rest = np.maximum(one_minus(probs), _EPS)  # 1 - p_i, exact near p_i = 1
    p_y = probs[rows, labels]
    rest_y = rest[rows, labels]
    with np.errstate(divide="ignore"):  # log1p(-1) of the branch np.where discards
        log_p_y = np.where(p_y > 0.5, np.log1p(-rest_y), np.log(np.maximum(p_y, _EPS)))
    other_terms = probs * np.log(rest)
    other_terms[rows, labels] = 0.0
    return -rest_y * log_p_y - other_terms.sum(axis=1)


def correctness(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``1[argmax = y]`` as float (1 for correctly classified records, more often members)."""
    return (predicted == labels).astype(np.float64)


def logit_scaled_confidence_from_loss(loss: np.ndarray) -> np.ndarray:
    """``phi = log(p_y / (1 - p_y))`` from the loss ``l = -log p_y`` (higher for members).

    Uses ``1 - p_y = -expm1(-l)``, exact for small losses; a loss of exactly 0 gives +inf.
    """
    with np.errstate(divide="ignore"):
        return -loss - np.log(-np.expm1(-loss))
