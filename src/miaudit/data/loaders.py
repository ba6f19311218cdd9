"""``load_dataset``: built-in data sets, ``.npz`` arrays and CSV / parquet tables."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data._encoding import (
    encode_labels,
    list_names,
    stratified_positions,
    suggest,
    zscore,
)
from miaudit.data._npz import open_npz, read_arrays
from miaudit.data.dataset import MIN_RECORDS, Dataset, build_dataset
from miaudit.data.fingerprint import array_record_fingerprints
from miaudit.data.tables import load_table
from miaudit.errors import DataError

__all__ = ["BUILTIN_DATASETS", "SUPPORTED_EXTENSIONS", "load_dataset"]

SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".npz": "npz",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
}
"""File name endings that :func:`load_dataset` reads, and the format of each."""


def _load_sklearn(name: str) -> Dataset:
    """Load scikit-learn's bundled ``load_<name>()`` with z-scored features."""
    from sklearn import datasets  # imported here: scikit-learn takes a while to import

    bunch = getattr(datasets, f"load_{name}")()
    raw = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    classes = tuple(str(c) for c in np.asarray(bunch.target_names).tolist())
    names = getattr(bunch, "feature_names", None)
    feature_names = ([str(f) for f in names] if names is not None
                     else [f"x{j}" for j in range(raw.shape[1])])
    scaled, _, std = zscore(raw)
    info: dict[str, Any] = {
        "source": f"sklearn.datasets.load_{name}",
        "format": "builtin",
        "ids": "0-based row numbers",
        "n_missing_values": 0,
        "missing_per_column": {},
        "categorical_columns": [],
        "numeric_columns": feature_names,
        "constant_columns": [f for f, s in zip(feature_names, std, strict=True) if s == 0],
        "standardised": True,
        "encoding": "z-score per column (population std; constant columns set to 0)",
    }
    return build_dataset(name=name, X=scaled, y=y, ids=np.arange(len(y)).astype(str),
                         fingerprints=array_record_fingerprints(raw, y, classes),
                         classes=classes, feature_names=feature_names, info=info)


def _builtin(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        return _load_sklearn(name)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"Load scikit-learn's {name!r} data set, features standardised."
    return load


BUILTIN_DATASETS: dict[str, Callable[[], Dataset]] = {
    name: _builtin(name) for name in ("digits", "breast_cancer", "wine")
}
"""Built-in data sets by name: each value loads one, without network access."""


def _decoded(values: np.ndarray, what: str, path: Path) -> np.ndarray:
    """A 1-D byte-string array as text; bytes that are not UTF-8 are refused."""
    out = []
    for i, v in enumerate(values.tolist()):
        try:
            out.append(v.decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{what} in {path.name} holds bytes that are not UTF-8 text at "
                            f"record {i} ({v!r}); save it as a str array.") from None
    return np.array(out, dtype=str)


def _labels_as_text(y: np.ndarray, path: Path) -> np.ndarray:
    """Original labels of an npz ``y`` as stripped strings; integers as ``str(int)``."""
    kind = y.dtype.kind
    if kind == "f":
        if not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
            raise DataError(f"y in {path.name} holds non-integer float labels (dtype "
                            f"{y.dtype}); give integer or string class labels.")
        return np.array([str(int(v)) for v in y.tolist()], dtype=str)  # exact, any size
    if kind in "iub":
        return np.array([str(v) for v in y.tolist()], dtype=str)
    if kind == "S":
        return np.char.strip(_decoded(y, "y", path))
    if kind == "U":
        return np.char.strip(y)
    raise DataError(f"y in {path.name} has dtype {y.dtype}; give integer or string labels.")


def _load_npz(path: Path, n_records: int | None = None, seed: int = 0) -> Dataset:
    archive = open_npz(path, "Save arrays with numpy.savez(path, X=..., y=...).")
    with archive:
        files = list(archive.files)
        if "jpeg" in files and "offsets" in files and "X" not in files:  # JPEG image archive
            from miaudit.data.images import load_cifar10_npz

            return load_cifar10_npz(path, n_records=n_records, seed=seed)
        absent = [k for k in ("X", "y") if k not in files]
        if absent:
            raise DataError(f"{path.name} lacks array(s) {', '.join(map(repr, absent))}; it has "
                            f"{list_names(files) or 'no arrays'}. Save features as 'X' and "
                            f"labels as 'y'.")
        arrays = read_arrays(archive, path, [k for k in ("X", "y", "ids") if k in files])
    X, y, given_ids = arrays["X"], arrays["y"], arrays.get("ids")
    if X.ndim != 2:
        raise DataError(f"X in {path.name} has shape {X.shape}; expected a 2-D array "
                        f"(records x features). Flatten it first, e.g. X.reshape(len(X), -1).")
    if X.shape[1] == 0:
        raise DataError(f"X in {path.name} has no feature columns (shape {X.shape}).")
    if X.dtype.kind not in "biuf":
        raise DataError(f"X in {path.name} has dtype {X.dtype}; expected numbers.")
    if y.ndim != 1:
        raise DataError(f"y in {path.name} has shape {y.shape}; expected a 1-D array of labels.")
    if len(X) != len(y):
        raise DataError(f"X and y in {path.name} differ in length: X has {len(X)} rows, "
                        f"y has {len(y)} labels.")
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        features = X.astype(np.float32)
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise DataError(f"X in {path.name} has NaN or infinite values (or values too large "
                        f"for float32) in {int(bad.sum())} row(s), first at row "
                        f"{int(np.argmax(bad))}; remove or impute them before loading.")
    if given_ids is not None:
        if given_ids.shape != y.shape:
            raise DataError(f"ids in {path.name} has shape {given_ids.shape}; expected "
                            f"({len(y)},), one ID per record.")
        if given_ids.dtype.kind == "S":
            given_ids = _decoded(given_ids, "ids", path)
        ids = np.array([str(v) for v in given_ids.tolist()], dtype=str)
    else:
        ids = np.arange(len(y)).astype(str)
    y_codes, classes = encode_labels(_labels_as_text(y, path))
    info: dict[str, Any] = {
        "source": str(path.resolve()),
        "format": "npz",
        "arrays": files,
        "ids": "array 'ids'" if given_ids is not None else "0-based row numbers",
        "original_dtype": str(X.dtype),
        "n_missing_values": 0,
        "missing_per_column": {},
        "categorical_columns": [],
        "numeric_columns": [f"x{j}" for j in range(X.shape[1])],
        "standardised": False,
        "encoding": "features as given, cast to float32 (not standardised)",
    }
    return build_dataset(name=path.name, X=features, y=y_codes, ids=ids,
                         fingerprints=array_record_fingerprints(X, y_codes, classes),
                         classes=classes, feature_names=info["numeric_columns"], info=info,
                         id_source="array 'ids'")


def _file_format(path: Path) -> str | None:
    lowered = path.name.lower()
    for ending in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lowered.endswith(ending):
            return SUPPORTED_EXTENSIONS[ending]
    return None


def load_dataset(
    source: str | os.PathLike[str],
    *,
    label_column: str | None = None,
    id_column: str | None = None,
    n_records: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a built-in data set or a data file as an encoded :class:`Dataset`.

    Parameters
    ----------
    source : str or path-like
        A name in :data:`BUILTIN_DATASETS` (``"digits"``, ``"breast_cancer"``, ``"wine"``;
        features z-scored) or a path ending in ``.npz`` (arrays ``X`` of shape (N, D), ``y`` of
        shape (N,) and optional ``ids``; features used as given, cast to float32), ``.csv``,
        ``.csv.gz`` or ``.parquet`` (encoded as described in :mod:`miaudit.data.tables`).
    label_column : str, optional
        Column of a CSV / parquet file holding the class labels; required for those files.
    id_column : str, optional
        Column of a CSV / parquet file holding unique record IDs; used for nothing else
        (neither features nor fingerprints). Default: 0-based row numbers of the file.
    n_records : int, optional
        Keep a seeded, class-stratified subset of this many records (for a JPEG image
        archive only those images are decoded). Default: every record.
    seed : int, default 0
        Seed of the subset.

    Returns
    -------
    dataset : Dataset
        Labels are the sorted original labels mapped to ``0..C-1`` (numerically sorted when all
        of them are numbers).

    Raises
    ------
    DataError
        Unknown name, missing or unreadable file, bad arrays or columns, fewer than 4 records,
        a single class, or duplicate IDs.

    Warns
    -----
    DataWarning
        When table rows with a missing label are dropped.

    Examples
    --------
    >>> ds = load_dataset("breast_cancer")
    >>> ds.X.shape, ds.classes
    ((569, 30), ('malignant', 'benign'))
    """
    if n_records is not None and (isinstance(n_records, bool) or not isinstance(
            n_records, int | np.integer) or n_records < MIN_RECORDS):
        raise DataError(f"n_records must be an integer >= {MIN_RECORDS}, got {n_records!r}.")
    ds = _load(source, label_column, id_column, n_records, seed)
    if n_records is not None and n_records < ds.n_records:  # JPEG archives did it already
        ds = ds.subset(stratified_positions(ds.y, int(n_records), int(seed)))
    return ds


def _load(source, label_column, id_column, n_records, seed) -> Dataset:
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        if label_column is not None or id_column is not None:
            raise DataError(f"label_column and id_column apply to CSV/parquet files only, "
                            f"not to the built-in data set {source!r}.")
        return BUILTIN_DATASETS[source]()
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a built-in name or a path, got {type(source).__name__}.")
    path = Path(source)
    fmt = _file_format(path)
    endings = ", ".join(SUPPORTED_EXTENSIONS)
    if not path.exists():
        if fmt is not None or isinstance(source, os.PathLike) or os.sep in str(source):
            resolved = "" if path.is_absolute() else f" (resolved to {path.absolute()})"
            raise DataError(f"Data file not found: {path}{resolved}; check the path.")
        raise DataError(f"Unknown data set {str(source)!r}: not a built-in name "
                        f"({', '.join(BUILTIN_DATASETS)}) and no such file."
                        f"{suggest(str(source), list(BUILTIN_DATASETS))} Data files must end "
                        f"in {endings}.")
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a data file ending in {endings}.")
    if fmt is None:
        raise DataError(f"Unsupported file type for {path.name}: miaudit reads files ending "
                        f"in {endings}. Convert the data to one of these.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file {path} is empty (0 bytes).")
    if fmt == "npz":
        if label_column is not None or id_column is not None:
            raise DataError("label_column and id_column apply to CSV/parquet files; an .npz "
                            "file gives labels as array 'y' and IDs as optional array 'ids'.")
        return _load_npz(path, n_records, seed)
    return load_table(path, fmt, label_column=label_column, id_column=id_column)
