"""Small helpers shared by the loaders: scaling, label encoding and error-message text."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["encode_labels", "list_names", "suggest", "zscore"]


def zscore(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise columns to mean 0 and standard deviation 1 (population, ddof=0).

    Parameters
    ----------
    values : ndarray of shape (N, D)
        Finite values.

    Returns
    -------
    scaled : ndarray of float64 of shape (N, D)
        Standardised values; constant columns become 0.
    mean, std : ndarray of float64 of shape (D,)
        Column means and standard deviations (0 for constant columns).
    """
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        zeros = np.zeros(values.shape[1])
        return values.copy(), zeros, zeros.copy()
    # Each column is divided by its largest magnitude first, so that finite values near the
    # float64 limit (1e308) cannot overflow the mean or the squares of the deviations.
    peak = np.abs(values).max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    unit = values / peak
    mean_u, std_u = unit.mean(axis=0), unit.std(axis=0)
    # Relative tolerance: a column of identical values can still get a tiny rounding std
    # (std > 1e-12 max(|mean|, 1) in the column's own units).
    varies = std_u * peak > 1e-12 * np.maximum(np.abs(mean_u) * peak, 1.0)
    scaled = (unit - mean_u) / np.where(varies, std_u, 1.0)
    scaled[:, ~varies] = 0.0
    return scaled, mean_u * peak, np.where(varies, std_u * peak, 0.0)


def _label_sort_key(label: str) -> tuple[int, float, str]:
    return (0, float(label), label)


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map string labels to ``0..C-1`` in sorted order.

    Labels sort as numbers when every one of them parses as a finite number (so ``"2"`` comes
    before ``"10"``), and as strings otherwise.

    Parameters
    ----------
    labels : ndarray of str of shape (N,)
        Original labels, already whitespace-stripped.

    Returns
    -------
    codes : ndarray of int64 of shape (N,)
    classes : tuple of str
        Original label of each code.

    Examples
    --------
    >>> encode_labels(np.array(["10", "2", "10"]))
    (array([1, 0, 1]), ('2', '10'))
    """
    uniq, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    names = [str(u) for u in uniq.tolist()]
    try:
        numeric = all(math.isfinite(float(u)) for u in names)
    except ValueError:
        numeric = False
    ordered = sorted(names, key=_label_sort_key) if numeric else names
    rank = {label: i for i, label in enumerate(ordered)}
    remap = np.array([rank[u] for u in names], dtype=np.int64)
    return remap[inverse.reshape(-1)], tuple(ordered)


def list_names(names: Sequence[str], limit: int = 20) -> str:
    """Join names for an error message, cutting long lists."""
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def suggest(name: str, options: Sequence[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or ``""`` when none is close."""
    lowered = {str(o).lower(): str(o) for o in options}
    if name.lower() in lowered:
        return f" Did you mean {lowered[name.lower()]!r}?"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def stratified_positions(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of ``n`` of the labels ``y``, each class in proportion to its size, sorted.

    Each class gets ``floor(n * n_c / N)`` places, and the places left over go to the
    classes with the largest remainders (ties: lower class code first); the records of a
    class are drawn without replacement by ``numpy.random.default_rng(seed)``.
    """
    codes, counts = np.unique(y, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((codes, -(exact - quota)))
    quota[order[: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), size=int(q), replace=False)
              for c, q in zip(codes, quota, strict=True)]
    return np.sort(np.concatenate(picked))
