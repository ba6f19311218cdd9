"""Multiple testing: which of several hypotheses to reject, family-wise (Holm) or at a
false discovery rate (Benjamini-Hochberg, through ``scipy.stats.false_discovery_control``)."""

from __future__ import annotations

import numpy as np

__all__ = ["benjamini_hochberg", "holm"]


def holm(p_values: dict[str, float], alpha: float) -> dict[str, bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``.

    Holm (1979), Scand. J. Statist. 6(2).

    Examples
    --------
    >>> holm({"exact": 0.01, "near": 0.03}, 0.05)
    {'exact': True, 'near': True}
    >>> holm({"exact": 0.03, "near": 0.04}, 0.05)
    {'exact': False, 'near': False}
    """
    order = sorted(p_values, key=lambda key: p_values[key])
    rejected = {key: False for key in p_values}
    for i, key in enumerate(order):
        if p_values[key] > alpha / (len(order) - i):
            break
        rejected[key] = True
    return rejected


def benjamini_hochberg(p_values: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which hypotheses the Benjamini-Hochberg procedure rejects at false discovery rate
    ``alpha``: the ``k`` smallest p-values, ``k`` the largest with ``p_(k) <= k alpha / n``
    (scipy's BH-adjusted p-values at most ``alpha``).

    Benjamini & Hochberg (1995), JRSS B 57(1).

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.001, 0.02, 0.04, 0.9]), 0.05).tolist()
    [True, True, False, False]
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    return false_discovery_control(p, method="bh") <= alpha
