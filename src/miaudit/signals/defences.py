"""Output defences: the probability vector a deployed model releases after a cheap defence.

Each defence is a pure function from probabilities (or log-probabilities) of shape (N, C)
to released probabilities of the same shape, in float64, with every row non-negative and
summing to 1. :func:`~miaudit.signals.exposure.apply_defence` turns a model's raw outputs
into its outputs "as deployed with the defence"; the exposure settings ``temperature:T``,
``noise:SIGMA`` and ``memguard:EPS`` (see :mod:`miaudit.signals.exposure`) release that
vector in full.

=================  ==============================================================  ===========
defence            released vector                                                 keeps label
=================  ==============================================================  ===========
``temperature:T``  ``softmax(log p / T)``                                          yes
``noise:SIGMA``    ``p + N(0, SIGMA^2)`` per entry, clipped at 0, renormalised      no
``memguard:EPS``   ``(1 - lam) p + lam u``, largest ``lam`` with L1 change <= EPS  yes
=================  ==============================================================  ===========
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

# Released top-class margin kept by memguard: the first argmax stays strictly above every
# smaller entry by at least this much, far above float64 rounding (~1e-16), so the label
# survives renormalisation and logs downstream.
_LABEL_MARGIN = 1e-12


@dataclass(frozen=True)
class Defence:
    """Metadata of one output defence (an entry of :data:`DEFENCES`).

    Attributes
    ----------
    name : str
        The exposure kind, written ``name:VALUE``.
    symbol : str
        The parameter's name in messages (``T``, ``sigma``, ``eps``).
    description : str
        One line: what the defence releases.
    keeps_label : bool
        Whether the released argmax always equals the model's argmax.
    deterministic : bool
        Whether the same outputs always give the same released vector.
    minimum, maximum : float
        Allowed parameter range; ``minimum`` itself is allowed unless ``open_minimum``.
    open_minimum : bool
        True when the parameter must be strictly greater than ``minimum``.
    example : float
        A typical value, for messages.
    reference : str
        Where the defence comes from.
    """

    name: str
    symbol: str
    description: str
    keeps_label: bool
    deterministic: bool
    minimum: float
    maximum: float
    open_minimum: bool
    example: float
    reference: str


DEFENCES: dict[str, Defence] = {
    d.name: d
    for d in (
        Defence(
            "temperature", "T",
            "softmax of the log-probabilities divided by T (T > 1 flattens, T < 1 sharpens)",
            keeps_label=True, deterministic=True, minimum=0.0, maximum=math.inf,
            open_minimum=True, example=2.0,
            reference="Guo et al., On Calibration of Modern Neural Networks, ICML 2017",
        ),
        Defence(
            "noise", "sigma",
            "Gaussian noise N(0, sigma^2) added to each probability, clipped at 0, "
            "renormalised",
            keeps_label=False, deterministic=False, minimum=0.0, maximum=math.inf,
            open_minimum=False, example=0.01,
            reference="output perturbation baseline (Jia et al., CCS 2019, Sec. 6)",
        ),
        Defence(
            "memguard", "eps",
            "probabilities flattened toward uniform by at most eps in L1, keeping the label "
            "(simplified MemGuard)",
            keeps_label=True, deterministic=True, minimum=0.0, maximum=2.0,
            open_minimum=False, example=0.3,
            reference="Jia et al., MemGuard, CCS 2019 (label-keeping, L1-bounded part only)",
        ),
    )
}


def temperature_scale(log_probs: np.ndarray, T: float) -> np.ndarray:
    """Temperature scaling: ``softmax(log p / T)`` row by row; keeps the label.

    Dividing log-probabilities (or logits: softmax is shift-invariant) by ``T`` keeps the
    order of the classes within each row, so the predicted label is unchanged; ``T > 1``
    flattens the vector toward uniform, ``T < 1`` sharpens it, ``T = 1`` is the identity.
    The ranking of records by true-class probability is kept for two classes, not always
    for more (a record's other probabilities matter too). An attacker who knows ``T`` can
    undo the scaling (``log p`` is recovered up to a per-row constant).

    Parameters
    ----------
    log_probs : ndarray (N, C)
        Log-probabilities (``-inf`` allowed for zero probabilities) or logits.
    T : float
        Temperature, ``T > 0``.

    Returns
    -------
    probs : ndarray (N, C) float64
        Released probabilities; rows sum to 1.

    References
    ----------
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.

    Examples
    --------
    >>> temperature_scale(np.log([[0.9, 0.1]]), 2.0).round(3)
    array([[0.75, 0.25]])
    """
    z = np.asarray(log_probs, dtype=np.float64)
    # shift each row's maximum to 0 first, so that a tiny T gives 0 and -inf, never nan
    z = (z - z.max(axis=1, keepdims=True)) / float(T)
    return np.exp(log_softmax(z, axis=1))


def gaussian_noise(probs: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``N(0, sigma^2)`` noise to every probability, clip at 0 and renormalise.

    Fresh noise for every entry of every record. A row that is all zero after clipping is
    released as uniform. The label may change: that is part of the defence's utility cost.
    ``sigma = 0`` returns the probabilities unchanged.

    Parameters
    ----------
    probs : ndarray (N, C)
        Probabilities; rows sum to 1.
    sigma : float
        Noise standard deviation, ``sigma >= 0``.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    probs : ndarray (N, C) float64
        Released probabilities; non-negative, rows sum to 1.

    References
    ----------
    The noise baseline of Jia et al., "MemGuard: Defending against Black-Box Membership
    Inference Attacks via Adversarial Examples", CCS 2019.

    Examples
    --------
    >>> out = gaussian_noise(np.array([[0.7, 0.2, 0.1]]), 0.05, np.random.default_rng(0))
    >>> bool(np.isclose(out.sum(), 1.0)), bool((out >= 0).all())
    (True, True)
    """
    p = np.array(probs, dtype=np.float64)
    if sigma == 0:
        return p
    noisy = np.clip(p + rng.normal(0.0, float(sigma), size=p.shape), 0.0, None)
    total = noisy.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    noisy[empty] = 1.0
    total[empty] = p.shape[1]
    return noisy / total


def memguard(probs: np.ndarray, eps: float) -> np.ndarray:
    """Simplified MemGuard: flatten toward uniform by at most ``eps`` in L1; keeps the label.

    Each row is released as ``q = (1 - lam) p + lam u`` (``u`` uniform) with the largest
    ``lam`` in ``[0, 1)`` such that ``||q - p||_1 <= eps`` and the first argmax of ``p``
    (as :func:`numpy.argmax` picks it) stays the argmax of ``q``, strictly above every
    smaller entry by a margin of ``1e-12`` (exact ties in ``p`` stay exact ties, so the
    first argmax is still the one picked). A row whose top-class lead is already below the
    margin, or which is uniform, is released unchanged. ``eps = 0`` is the identity.

    This is only the label-keeping, L1-bounded flattening part of MemGuard. Real MemGuard
    additionally crafts the noise adversarially, against an attack classifier the defender
    trains on its own member/non-member outputs, so that this classifier is fooled; that
    step is not implemented here. Where the budget binds, the released vector still
    determines ``p`` (``||q - u||_1 = ||p - u||_1 - eps`` and ``q - u`` points the same way
    as ``p - u``), so an attacker who knows the defence can undo it; it only hides
    confidence from attacks that read the released numbers at face value.

    Parameters
    ----------
    probs : ndarray (N, C)
        Probabilities; rows sum to 1.
    eps : float
        L1 budget per record, ``0 <= eps <= 2``.

    Returns
    -------
    probs : ndarray (N, C) float64
        Released probabilities; non-negative, rows sum to 1, same argmax as ``probs``.

    References
    ----------
    Jia et al., "MemGuard: Defending against Black-Box Membership Inference Attacks via
    Adversarial Examples", CCS 2019.

    Examples
    --------
    >>> memguard(np.array([[0.9, 0.1]]), 0.2).round(6)
    array([[0.8, 0.2]])
    """
    p = np.array(probs, dtype=np.float64)
    n, c = p.shape
    if eps == 0 or n == 0:
        return p
    rows = np.arange(n)
    top_index = np.argmax(p, axis=1)
    top = p[rows, top_index]
    smaller = np.where(p < top[:, None], p, -np.inf).max(axis=1)
    gap = top - smaller  # +inf for a uniform row
    distance = np.abs(p - 1.0 / c).sum(axis=1)  # ||p - u||_1, so ||q - p||_1 = lam * distance
    with np.errstate(divide="ignore", invalid="ignore"):
        by_budget = np.where(distance > 0, float(eps) / distance, 0.0)
        by_label = np.where(gap > _LABEL_MARGIN, 1.0 - _LABEL_MARGIN / gap, 0.0)
    lam = np.clip(np.minimum(by_budget, by_label), 0.0, None)
    # rounding in lam * distance must not push the L1 change over the budget
    lam *= 1.0 - 1e-12
    # rows sum to (1 - lam) + lam = 1 up to rounding; a row with lam = 0 is returned as is
    return (1.0 - lam)[:, None] * p + (lam / c)[:, None]
