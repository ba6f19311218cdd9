"""Adapters: one query interface over any kind of target model.

Every adapter has ``outputs(X) -> ModelOutputs``; the audit calls nothing else. Use
:func:`as_target` to wrap a scikit-learn estimator, a PyTorch module or a plain callable.
Precomputed outputs ("bring your own logits") are loaded by :func:`load_outputs` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from miaudit.errors import ConfigError, DataError, OutputError
from miaudit.targets.outputs import ModelOutputs, OutputKind, check_outputs


@runtime_checkable
class Target(Protocol):
    """Anything the audit can query: returns outputs for a batch of feature rows."""

    def outputs(self, X: np.ndarray) -> ModelOutputs: ...


@dataclass
class SklearnTarget:
    """A fitted scikit-learn classifier queried through ``predict_proba``.

    Parameters
    ----------
    estimator : object
        Fitted, with ``predict_proba`` and ``classes_``.
    classes : sequence, optional
        The data set's classes in encoded order (``Dataset.classes``). The estimator's
        ``classes_`` are matched to them by value (as encoded integers 0..C-1 or as the
        original labels); classes the estimator never saw get probability 0.
    """

    estimator: object
    classes: tuple[str, ...] | None = None
    name: str | None = None  # how summary.json names the model (a file's name, say)

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        probs = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        est_classes = getattr(self.estimator, "classes_", None)
        if self.classes is None or est_classes is None:
            return check_outputs(probs, "probs", n_records=len(X), source="predict_proba")
        n_classes = len(self.classes)
        columns = _match_classes(list(est_classes), list(self.classes))
        full = np.zeros((len(X), n_classes))
        full[:, columns] = probs
        return check_outputs(full, "probs", n_records=len(X), n_classes=n_classes,
                             source="predict_proba")


def _match_classes(est_classes: list, classes: list[str]) -> np.ndarray:
    as_str = [str(c) for c in est_classes]
    if all(c in classes for c in as_str):
        return np.array([classes.index(c) for c in as_str])
    try:
        ints = [int(c) for c in est_classes]
    except (TypeError, ValueError):
        ints = []
    if ints and all(0 <= i < len(classes) for i in ints):
        return np.array(ints)
    raise OutputError(
        f"The estimator's classes {as_str[:10]} do not match the data's classes "
        f"{classes[:10]} (by label or as encoded integers 0..{len(classes) - 1})."
    )


@dataclass
class TorchTarget:
    """A PyTorch module returning logits, queried in evaluation mode without gradients."""

    module: object
    device: str = "cpu"
    batch_size: int = 4096

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        import torch

        module = self.module
        was_training = bool(getattr(module, "training", False))
        module.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                xb = torch.as_tensor(
                    np.ascontiguousarray(X[start : start + self.batch_size], dtype=np.float32),
                    device=self.device,
                )
                chunks.append(module(xb).detach().to("cpu", torch.float64).numpy())
        if was_training:
            module.train()
        logits = np.concatenate(chunks) if chunks else np.zeros((0, 0))
        return check_outputs(logits, "logits", n_records=len(X), source="torch module")


@dataclass
class CallableTarget:
    """A plain function ``fn(X) -> array (N, C)`` of logits or probabilities."""

    fn: object
    kind: OutputKind = "probs"

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        values = self.fn(X)  # type: ignore[operator]
        return check_outputs(values, self.kind, n_records=len(X), source="model callable")


@dataclass
class LabelTarget:
    """A model that answers with labels only: ``predict(X) -> (N,)`` class indices
    (0..C-1), such as a scikit-learn classifier without ``predict_proba`` or an API that
    returns the label. Its outputs are one-hot probability vectors, so only the ``label``
    exposure (and the label-only attacks) describe it honestly.

    Parameters
    ----------
    predict : callable
    n_classes : int
    classes : sequence, optional
        The data set's classes, to map an estimator's original labels to 0..C-1.
    """

    predict: object
    n_classes: int
    classes: tuple[str, ...] | None = None

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        labels = np.asarray(self.predict(X))  # type: ignore[operator]
        if labels.shape != (len(X),):
            raise OutputError(f"predict returned shape {labels.shape} for {len(X)} records; "
                              "expected one label per record.")
        if self.classes is not None and not np.issubdtype(labels.dtype, np.integer):
            index = {c: i for i, c in enumerate(self.classes)}
            try:
                labels = np.array([index[str(v)] for v in labels])
            except KeyError as exc:
                raise OutputError(f"predict returned the label {exc.args[0]!r}, which is not "
                                  "among the data's classes.") from None
        labels = labels.astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise OutputError(f"predict returned labels outside 0..{self.n_classes - 1}.")
        onehot = np.zeros((len(X), self.n_classes))
        onehot[np.arange(len(X)), labels] = 1.0
        return check_outputs(onehot, "probs", n_records=len(X), source="predict (labels only)")


def as_target(
    model: object, *, classes: tuple[str, ...] | None = None, kind: OutputKind | None = None
) -> Target:
    """Wrap a model in the adapter that fits it.

    Parameters
    ----------
    model : object
        An adapter already; a scikit-learn estimator with ``predict_proba``; an estimator
        with ``predict`` only (:class:`LabelTarget`, labels only); a ``torch.nn.Module``
        (returns logits); or a callable ``fn(X) -> (N, C)``.
    classes : tuple of str, optional
        The data set's classes, to align a scikit-learn estimator's columns.
    kind : {"logits", "probs"}, optional
        What a callable returns (default ``"probs"``).
    """
    if isinstance(model, Target):
        return model
    if hasattr(model, "predict_proba"):
        return SklearnTarget(model, classes)
    if hasattr(model, "predict") and classes is not None:  # labels only
        return LabelTarget(model.predict, len(classes), classes)
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchTarget(model)
    except ImportError:
        pass
    if callable(model):
        return CallableTarget(model, kind or "probs")
    raise ConfigError(
        f"Cannot audit an object of type {type(model).__name__}: pass a recipe name, a "
        "scikit-learn estimator with predict_proba, a torch.nn.Module, or a callable "
        "returning probabilities."
    )


@dataclass(frozen=True)
class PrecomputedOutputs:
    """Outputs a user computed elsewhere, with labels and membership ("bring your own logits").

    Attributes
    ----------
    outputs : ModelOutputs
    labels : ndarray (N,) int, 0..C-1 (column index of the true class)
    is_member : ndarray (N,) bool
    ids : ndarray (N,) str
    fingerprints : ndarray (N,) str or None
        Per-record fingerprints, when the file carries them.
    source : str
    """

    outputs: ModelOutputs
    labels: np.ndarray
    is_member: np.ndarray
    ids: np.ndarray
    fingerprints: np.ndarray | None
    source: str


#: The arrays of an outputs file that :func:`load_outputs` reads.
_OUTPUT_ARRAYS = ("logits", "probs", "y", "is_member", "ids", "fingerprints")


def _as_text(arr: np.ndarray, key: str, p: Path) -> np.ndarray:
    """An array of IDs or fingerprints as str; bytes must be UTF-8 text."""
    if arr.dtype.kind != "S":
        return arr.astype(str)
    try:
        return np.char.decode(arr, "utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p.name}: '{key}' holds bytes that are not UTF-8 text "
                        f"({exc.object!r}); save it as a str array.") from None


def load_outputs(path: str | Path) -> PrecomputedOutputs:
    """Load an ``.npz`` with ``logits`` or ``probs``, ``y`` and ``is_member`` (optional ``ids``,
    ``fingerprints``). ``y`` holds the column index of each record's true class."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"Outputs file not found: {p}")
    if p.suffix != ".npz":
        raise DataError(f"Outputs must be an .npz file with logits or probs, got {p.name}.")
    from miaudit.data._npz import open_npz, read_arrays  # shared with the data loaders

    with open_npz(p, "Save the outputs with numpy.savez(path, logits=..., y=..., "
                     "is_member=...).") as archive:
        have = ", ".join(sorted(archive.files)) or "none"
        arrays = read_arrays(archive, p, [k for k in _OUTPUT_ARRAYS if k in archive.files])
    kinds = [k for k in ("logits", "probs") if k in arrays]
    if len(kinds) != 1:
        raise DataError(
            f"{p.name} must hold exactly one of the arrays 'logits' or 'probs' (it has: {have})."
        )
    for required in ("y", "is_member"):
        if required not in arrays:
            raise DataError(f"{p.name} has no array {required!r} (it has: {have}).")
    kind: OutputKind = "logits" if kinds[0] == "logits" else "probs"
    y = arrays["y"]
    if y.ndim != 1 or y.dtype.kind not in "iu":  # numpy counts timedelta64 as an integer
        raise DataError(f"{p.name}: 'y' must be a 1-D integer array of class indices, "
                        f"got dtype {y.dtype} and shape {y.shape}.")
    if len(y) == 0:
        raise DataError(f"{p.name} holds no records: 'y' is empty.")
    outputs = check_outputs(arrays[kinds[0]], kind, n_records=len(y), source=p.name)
    if y.min() < 0 or y.max() >= outputs.n_classes:
        bad = int(np.flatnonzero((y < 0) | (y >= outputs.n_classes))[0])
        raise OutputError(
            f"{p.name}: label {int(y[bad])} of record {bad} is outside the model's classes "
            f"0..{outputs.n_classes - 1}."
        )
    member = arrays["is_member"]
    if member.shape != y.shape or not (
        member.dtype == bool or set(np.unique(member).tolist()) <= {0, 1}
    ):
        raise DataError(f"{p.name}: 'is_member' must be a boolean array with one entry per "
                        f"record, got dtype {member.dtype} and shape {member.shape}.")
    ids = arrays.get("ids")
    ids = np.arange(len(y)).astype(str) if ids is None else _as_text(ids, "ids", p)
    fps = arrays.get("fingerprints")
    fps = None if fps is None else _as_text(fps, "fingerprints", p)
    for key, arr in (("ids", ids), ("fingerprints", fps)):
        if arr is not None and arr.shape != y.shape:
            raise DataError(f"{p.name}: '{key}' has shape {arr.shape}; expected "
                            f"({len(y)},), one entry per record.")
    return PrecomputedOutputs(
        outputs, y.astype(np.int64), member.astype(bool), ids,
        fps, str(p.resolve()),
    )
