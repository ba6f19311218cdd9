"""The :class:`Dataset` container and the checks every loader runs before returning one."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.data.fingerprint import FINGERPRINT_VERSION, dataset_fingerprint
from miaudit.errors import DataError

__all__ = ["MIN_RECORDS", "Dataset", "build_dataset"]

MIN_RECORDS = 4
"""Smallest number of records a loaded data set may have."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """An encoded, labelled data set with record IDs and content fingerprints.

    Treat the arrays as read-only: the fingerprints describe the raw records they came from.

    Attributes
    ----------
    name : str
        Built-in name (``"digits"``) or file name (``"adult.csv.gz"``).
    X : ndarray of float32 of shape (N, D)
        Encoded features, ready for a model.
    y : ndarray of int64 of shape (N,)
        Encoded labels in ``0..C-1``.
    ids : ndarray of str of shape (N,)
        Unique record IDs: given ones, or 0-based row numbers of the source as strings.
    fingerprints : ndarray of str of shape (N,)
        Hex SHA-256 of each record's canonical raw row (see :mod:`miaudit.data.fingerprint`).
    classes : tuple of str
        Original label of each encoded class (index = encoded label).
    feature_names : tuple of str
        Names of the encoded columns, e.g. ``"workclass=Private"``.
    fingerprint : str
        Data-set fingerprint over the ordered (ID, record fingerprint) pairs.
    info : dict
        JSON-ready facts: ``source``, ``format``, ``n_missing_values`` (cells) and
        ``missing_per_column`` (only columns with missing cells), ``categorical_columns``,
        ``numeric_columns``, ``standardised``, ``encoding``, ``class_counts``, ``ids``, ...

    Examples
    --------
    >>> from miaudit.data import load_dataset
    >>> ds = load_dataset("wine")
    >>> ds.n_records, ds.n_features, ds.n_classes
    (178, 13, 3)
    >>> ds.subset([0, 1]).ids.tolist()
    ['0', '1']
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    fingerprints: np.ndarray
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    fingerprint: str
    info: dict[str, Any]

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.X.ndim != 2 or self.X.dtype != np.float32:
            raise DataError(f"Dataset.X must be a 2-D float32 array, got {self.X.dtype} "
                            f"with shape {self.X.shape}.")
        if self.y.ndim != 1 or self.y.dtype != np.int64:
            raise DataError(f"Dataset.y must be a 1-D int64 array, got {self.y.dtype} "
                            f"with shape {self.y.shape}.")
        lengths = {"X": len(self.X), "ids": len(self.ids), "fingerprints": len(self.fingerprints)}
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise DataError(f"Dataset arrays differ in length: y has {n} records, {bad}.")
        if len(self.feature_names) != self.X.shape[1]:
            raise DataError(f"Dataset has {self.X.shape[1]} feature columns but "
                            f"{len(self.feature_names)} feature names.")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise DataError(f"Dataset.y must lie in 0..{len(self.classes) - 1}, got values "
                            f"{int(self.y.min())}..{int(self.y.max())}.")

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, n_records={self.n_records}, "
                f"n_features={self.n_features}, n_classes={self.n_classes}, "
                f"fingerprint={self.fingerprint[:12]!r}...)")

    @property
    def n_records(self) -> int:
        """Number of records N."""
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes C (those in ``classes``, present in this subset or not)."""
        return len(self.classes)

    @property
    def n_features(self) -> int:
        """Number of encoded feature columns D."""
        return int(self.X.shape[1])

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        """Select records, keeping their IDs, record fingerprints, classes and encoding.

        Parameters
        ----------
        idx : array-like of int, or of bool of shape (N,)
            Record positions (in the wanted order) or a boolean mask.

        Returns
        -------
        subset : Dataset
            The selected records with a recomputed data-set ``fingerprint``. ``info`` is copied
            with ``n_records`` and ``class_counts`` updated and ``subset_of`` set to this data
            set's fingerprint; its missing-value counts still describe the loaded source.
        """
        index = np.asarray(idx)
        if index.dtype == bool:
            if index.shape != (self.n_records,):
                raise DataError(f"A boolean subset mask needs shape ({self.n_records},), "
                                f"got {index.shape}.")
            index = np.flatnonzero(index)
        elif index.size == 0:
            index = index.astype(np.intp)
        elif index.dtype.kind not in "iu":
            raise DataError(f"subset() needs integer positions or a boolean mask, "
                            f"got dtype {index.dtype}.")
        ids, fps, y = self.ids[index], self.fingerprints[index], self.y[index]
        info = copy.deepcopy(self.info)
        info["n_records"] = len(index)
        info["class_counts"] = _class_counts(y, self.classes)
        info["subset_of"] = self.fingerprint
        return Dataset(name=self.name, X=self.X[index], y=y, ids=ids, fingerprints=fps,
                       classes=self.classes, feature_names=self.feature_names,
                       fingerprint=dataset_fingerprint(ids, fps), info=info)

    def duplicate_mask(self) -> np.ndarray:
        """Mark records whose content already appeared earlier (the first one is kept).

        Returns
        -------
        mask : ndarray of bool of shape (N,)
            True for each record whose fingerprint equals that of an earlier record.
        """
        mask = np.ones(self.n_records, dtype=bool)
        _, first = np.unique(self.fingerprints, return_index=True)
        mask[first] = False
        return mask


#: More distinct labels than this share of the records (and than MANY_CLASSES) is not a set
#: of classes but a continuous or identifier-like column.
MAX_CLASS_SHARE = 0.5
MANY_CLASSES = 20


def _check_class_labels(name: str, classes: Sequence[str], n_present: int, n: int) -> None:
    """Refuse labels that are not class labels: numbers with a fractional part (a
    continuous target) or nearly one distinct value per record (issue 17: 279 classes for
    296 records were accepted and gave AUC 0.79 from nothing)."""
    try:
        numbers = [float(c) for c in classes]
    except ValueError:  # text labels: classes by construction
        numbers = []
    fractional = [c for c, v in zip(classes, numbers, strict=False)
                  if np.isfinite(v) and v != round(v)]
    if fractional:
        raise DataError(f"The labels of {name!r} are numbers with a fractional part (e.g. "
                        f"{fractional[0]!r}): a continuous target, not classes. Membership "
                        "audits need class labels; check the label column.")
    if n_present > max(MANY_CLASSES, MAX_CLASS_SHARE * n):
        raise DataError(f"The labels of {name!r} take {n_present} distinct values for {n} "
                        "records: not a set of classes (a continuous or identifier-like "
                        "column?). Check the label column.")


def _class_counts(y: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(y, minlength=len(classes))
    return {c: int(k) for c, k in zip(classes, counts, strict=True)}


def build_dataset(
    *,
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    fingerprints: np.ndarray,
    classes: Sequence[str],
    feature_names: Sequence[str],
    info: dict[str, Any],
    id_source: str = "",
) -> Dataset:
    """Check a freshly loaded data set (size, classes, unique IDs) and wrap it.

    Parameters
    ----------
    name, X, y, ids, fingerprints, classes, feature_names, info
        As in :class:`Dataset`; ``info`` gets the common facts added.
    id_source : str, default ""
        Where the IDs came from, for the duplicate-ID message (e.g. ``"column 'id'"``).

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    DataError
        Fewer than :data:`MIN_RECORDS` records, one class only, labels that are not
        classes (fractional numbers, or more distinct values than half the records and
        than 20), or duplicate IDs.
    """
    n = len(y)
    if n < MIN_RECORDS:
        raise DataError(f"Data set {name!r} has {n} record(s); at least {MIN_RECORDS} are "
                        f"needed for an audit. Use a larger data set.")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"Data set {name!r} has only one class ({classes[int(present[0])]!r}); "
                        f"membership audits need at least 2 classes. Check the label column.")
    _check_class_labels(name, classes, len(present), n)
    ids = np.asarray([str(i) for i in np.asarray(ids).tolist()], dtype=str)
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != n:
        dup = str(uniq[int(np.argmax(counts > 1))])
        rows = np.flatnonzero(ids == dup)
        where = f" in {id_source}" if id_source else ""
        raise DataError(f"Duplicate record ID {dup!r}{where} ({len(rows)} records, at record "
                        f"positions {int(rows[0])} and {int(rows[1])}); record IDs must be "
                        f"unique.")
    y = np.asarray(y, dtype=np.int64)
    classes = tuple(str(c) for c in classes)
    full_info = {
        "name": name,
        **info,
        "n_records": int(n),
        "n_features": int(X.shape[1]),
        "n_classes": len(classes),
        "class_counts": _class_counts(y, classes),
        "fingerprint_version": FINGERPRINT_VERSION,
    }
    return Dataset(name=name, X=np.ascontiguousarray(X, dtype=np.float32), y=y, ids=ids,
                   fingerprints=np.asarray(fingerprints, dtype="<U64"), classes=classes,
                   feature_names=tuple(str(f) for f in feature_names),
                   fingerprint=dataset_fingerprint(ids, fingerprints), info=full_info)
