"""Raw model outputs on a set of records: logits or probabilities, validated once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import log_softmax

from miaudit.errors import OutputError

OutputKind = Literal["logits", "probs"]

_PROB_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ModelOutputs:
    """A model's outputs on ``N`` records.

    Parameters
    ----------
    kind : {"logits", "probs"}
        Unnormalised scores (any real numbers) or a probability vector per record.
    values : ndarray of shape (N, C), float64
        The outputs. Build instances with :func:`check_outputs`, which validates them.
    """

    kind: OutputKind
    values: np.ndarray

    @property
    def n_records(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.values.shape[1])

    def log_probs(self) -> np.ndarray:
        """Log-probabilities (N, C); exact log-softmax for logits, ``log p`` for probabilities
        (a probability of exactly 0 gives ``log(1e-300)``, so every loss stays finite)."""
        if self.kind == "logits":
            return log_softmax(self.values, axis=1)
        return np.log(np.maximum(self.values, 1e-300))

    def probs(self) -> np.ndarray:
        """Probabilities (N, C)."""
        if self.kind == "logits":
            return np.exp(log_softmax(self.values, axis=1))
        return self.values


#: A query to a model: inputs in, the model's outputs on them out.
Query = Callable[[np.ndarray], ModelOutputs]


def check_outputs(
    values: object,
    kind: OutputKind,
    *,
    n_records: int | None = None,
    n_classes: int | None = None,
    source: str = "model outputs",
) -> ModelOutputs:
    """Validate raw outputs and return them as :class:`ModelOutputs`.

    Raises :class:`~miaudit.errors.OutputError` naming the problem: not 2-D, wrong number
    of rows or classes, NaN/inf, or (for probabilities) values outside [0, 1] or rows that
    do not sum to 1.
    """
    if kind not in ("logits", "probs"):
        raise OutputError(f"{source}: output kind must be 'logits' or 'probs', got {kind!r}.")
    try:
        raw = np.asarray(values)
        if raw.dtype.kind in "cmMSUV":  # complex, dates, text: never cast to a number
            raise OutputError(f"{source}: outputs must be real numbers, got dtype {raw.dtype}.")
        arr = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise OutputError(f"{source}: cannot read outputs as numbers ({exc}).") from None
    if arr.ndim == 1 and n_classes == 2 and kind == "probs":
        # A binary model that returns P(class 1) only.
        arr = np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2:
        raise OutputError(
            f"{source}: expected a 2-D array (records x classes), got shape {arr.shape}."
        )
    if n_records is not None and arr.shape[0] != n_records:
        raise OutputError(
            f"{source}: {arr.shape[0]} rows of outputs for {n_records} records; "
            "the model must return one row per record."
        )
    if n_classes is not None and arr.shape[1] != n_classes:
        raise OutputError(
            f"{source}: outputs have {arr.shape[1]} columns but the data has {n_classes} "
            "classes; the model must return one column per class, in class order."
        )
    if arr.shape[1] < 2:
        raise OutputError(f"{source}: need at least 2 classes, got {arr.shape[1]} column(s).")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise OutputError(
            f"{source}: {len(rows)} record(s) have NaN or infinite outputs "
            f"(first at row {rows[0]}); fix the model or drop those records."
        )
    if kind == "probs" and arr.size:
        if arr.min() < -_PROB_TOLERANCE or arr.max() > 1 + _PROB_TOLERANCE:
            raise OutputError(
                f"{source}: probabilities must lie in [0, 1], got values in "
                f"[{arr.min():.4g}, {arr.max():.4g}]; pass them as logits instead."
            )
        sums = arr.sum(axis=1)
        off = np.abs(sums - 1.0) > _PROB_TOLERANCE
        if off.any():
            first = int(np.flatnonzero(off)[0])
            raise OutputError(
                f"{source}: {int(off.sum())} probability row(s) do not sum to 1 "
                f"(row {first} sums to {sums[first]:.6g}); pass logits or normalised "
                "probabilities."
            )
        arr = np.clip(arr, 0.0, 1.0)
        # rows already normalised to float precision are kept as given, so that checking
        # outputs twice never changes them (and never splits tied scores)
        sums = arr.sum(axis=1, keepdims=True)
        arr = np.where(np.abs(sums - 1.0) > 1e-12, arr / sums, arr)
    return ModelOutputs(kind, arr)
