"""Load CSV (``.csv``, ``.csv.gz``) and parquet tables into a :class:`Dataset`.

Every cell is first read as raw text (parquet values are converted with pandas'
``astype("string")``, which writes numbers as ``to_csv`` does), whitespace-stripped, and
marked missing when it is empty or one of :data:`MISSING_MARKERS` (case-insensitive). Then:

* rows whose label is missing are dropped (with a :class:`~miaudit.errors.DataWarning`);
* a column is numeric when every non-missing value parses as a finite number, else categorical;
* numeric columns are standardised (z-score over the non-missing values); missing numeric
  cells are imputed with the column mean, i.e. 0 after standardising;
* categorical columns are one-hot encoded as ``"COL=value"`` (values in sorted order) plus a
  ``"COL=<missing>"`` indicator when the column has missing cells;
* the id column, if any, gives the record IDs and takes part in nothing else (neither
  features nor fingerprints).
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data._encoding import encode_labels, list_names, suggest, zscore
from miaudit.data.dataset import Dataset, build_dataset
from miaudit.data.fingerprint import table_record_fingerprints
from miaudit.errors import DataError, DataWarning

__all__ = ["MAX_CATEGORIES", "MISSING_MARKERS", "MISSING_TOKEN", "load_table"]

MISSING_MARKERS = frozenset({"", "?", "na", "n/a", "nan", "null", "<na>"})
"""Cell texts (after stripping, compared in lower case) that mean "missing"."""

MISSING_TOKEN = "<missing>"
"""Category name of the indicator column of missing categorical cells."""

MAX_CATEGORIES = 1000
"""Most distinct values a categorical column may have before loading refuses it."""

_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet"}
_PARSE_ERRORS = (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error)


def _read_frame(path: Path, fmt: str) -> pd.DataFrame:
    kind = _FORMAT_NAMES[fmt]
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        # header=None: pandas neither renames repeated names ("a", "a.1") nor turns the
        # first column into the index when the rows have one field more than the header
        rows = pd.read_csv(path, header=None, dtype=str, keep_default_na=False,
                           na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"Data file {path} is empty (no header and no rows); "
                        f"give a {kind} file with a header row and records.") from exc
    except _PARSE_ERRORS as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise DataError(f"Cannot parse {path} as {kind}: {reason}. "
                        f"Check that the file is a valid {kind} file.") from exc
    header = [c if c else f"Unnamed: {i}" for i, c in enumerate(rows.iloc[0].fillna(""))]
    frame = rows.iloc[1:].reset_index(drop=True)
    frame.columns = pd.Index(header, dtype=object)
    return frame


def _raw_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Stripped text of each cell (object array) and the mask of missing cells."""
    null = column.isna().to_numpy()
    text = column.astype("string").str.strip().fillna("")
    values = text.to_numpy(dtype=object)
    missing = null | text.str.lower().isin(sorted(MISSING_MARKERS)).to_numpy()
    return values, missing


def _column_cells(name: str, column: pd.Series, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_raw_cells` of one column, a column that cannot be read as text (a damaged
    Parquet file's invalid UTF-8) refused naming it."""
    try:
        return _raw_cells(column)
    except ValueError as exc:  # pyarrow's ArrowInvalid is a ValueError
        reason = " ".join(str(exc).split()).rstrip(".")
        raise DataError(f"Column {name!r} of {path.name} cannot be read as text ({reason}): "
                        "the file is damaged or not written as a table.") from exc


def _check_flat(name: str, column: pd.Series) -> None:
    """Refuse a column of lists, arrays or structs (nested Parquet types): one cell must be
    one value, never a text rendering of a container to one-hot encode; and binary cells
    that are not UTF-8 text."""
    if column.dtype != object:
        return
    nested = column.map(lambda v: isinstance(v, dict | list | tuple | set | np.ndarray))
    if nested.any():
        row = int(np.argmax(nested.to_numpy()))
        raise DataError(f"Column {name!r} holds nested values (lists, arrays or structs; the "
                        f"first at row {row}); flatten it into columns of single values or "
                        "remove it.")
    for row, value in enumerate(column.tolist()):  # binary cells are read as UTF-8 text
        if isinstance(value, bytes):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"Column {name!r} holds binary values that are not UTF-8 text "
                                f"(the first at row {row}: {value[:20]!r}); store text, or "
                                "remove the column.") from None


#: A column whose cells parse as numbers except for at most this share of them (and at most
#: MAX_STRAY_CELLS) is a numeric column with stray text, not a categorical one.
STRAY_SHARE = 0.01
MAX_STRAY_CELLS = 10


def _stray_cells(name: str, values: np.ndarray, missing: np.ndarray,
                 not_numeric: np.ndarray) -> None:
    """Refuse a numeric column with a few non-numeric cells, naming them (issue 17: two
    stray strings turned a numeric column into 120 one-hot features). ``not_numeric``:
    per present cell, whether its text does not parse as a number."""
    present = np.flatnonzero(~missing)
    stray = present[not_numeric]
    if 0 < len(stray) <= min(MAX_STRAY_CELLS, STRAY_SHARE * len(present)):
        shown = ", ".join(f"{values[i]!r} (record {int(i)})" for i in stray[:5])
        raise DataError(f"Column {name!r} is numeric but for {len(stray)} cell(s): {shown}; "
                        f"mark them missing (empty, NA or ?) or correct them.")


def _column_error(kind: str, wanted: str, columns: list[str], path: Path) -> DataError:
    return DataError(f"{kind} {wanted!r} not found in {path.name}; available columns: "
                     f"{list_names(columns)}.{suggest(wanted, columns)}")


def _encode_column(
    name: str, values: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Encode one feature column; returns the block (N, k), its names and facts for info."""
    present = values[~missing]
    codes, uniques = pd.factorize(present.astype(str))  # parse each distinct text once
    parsed_uniques = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    if not np.isnan(parsed_uniques).any():
        parsed = parsed_uniques[codes]
        bad = np.isinf(parsed)
        if bad.any():
            row = int(np.flatnonzero(~missing)[np.argmax(bad)])
            raise DataError(f"Column {name!r} holds {int(bad.sum())} infinite value(s) "
                            f"(first at record {row}); replace them or mark them missing.")
        unnamed = not name.strip() or name.startswith("Unnamed:")
        if unnamed and not missing.any() and len(parsed) > 20 and np.array_equal(
                np.sort(parsed), np.arange(len(parsed)) + parsed.min()):
            warnings.warn(f"Column {name!r} numbers the rows (a saved pandas index?); it is "
                          f"used as a feature: pass --id-column {name!r} or remove it.",
                          DataWarning, stacklevel=4)
        scaled, mean, std = zscore(parsed.reshape(-1, 1))
        block = np.zeros((len(values), 1), dtype=np.float64)
        block[~missing, 0] = scaled[:, 0]
        return block, [name], {"kind": "numeric", "mean": float(mean[0]), "std": float(std[0])}
    _stray_cells(name, values, missing, np.isnan(parsed_uniques)[codes])
    order = np.argsort(np.asarray(uniques, dtype=str), kind="stable")
    categories = np.asarray(uniques, dtype=str)[order]
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    codes = rank[codes]
    if len(categories) > MAX_CATEGORIES:
        raise DataError(f"Column {name!r} has {len(categories)} distinct non-numeric values "
                        f"(limit {MAX_CATEGORIES}); it looks like text or an identifier: pass "
                        f"it as the ID column (--id-column {name}) or remove it from the file.")
    if len(categories) == len(present) and len(present) > 20:
        warnings.warn(f"Column {name!r} has a different value in every row: if it is an "
                      f"identifier, pass --id-column {name}, or a model can memorise it.",
                      DataWarning, stacklevel=4)
    names = [f"{name}={c}" for c in categories.tolist()]
    width = len(categories) + int(missing.any())
    all_codes = np.full(len(values), len(categories), dtype=np.intp)
    all_codes[~missing] = codes.reshape(-1)
    if missing.any():
        names.append(f"{name}={MISSING_TOKEN}")
    block = np.zeros((len(values), width), dtype=np.float64)
    block[np.arange(len(values)), all_codes] = 1.0
    return block, names, {"kind": "categorical", "n_categories": len(categories)}


def load_table(
    path: Path, fmt: str, *, label_column: str | None, id_column: str | None
) -> Dataset:
    """Load a CSV or parquet table (see the module docstring for the encoding).

    Parameters
    ----------
    path : Path
        Existing, non-empty file.
    fmt : {"csv", "parquet"}
        File format (``.csv.gz`` is ``"csv"``).
    label_column : str or None
        Column holding the class labels (required).
    id_column : str or None
        Column holding unique record IDs; None numbers the rows of the file from 0.

    Returns
    -------
    dataset : Dataset
    """
    frame = _read_frame(path, fmt)
    columns = _unique_columns(frame, path)
    label_column = _check_key_columns(columns, fmt, path, label_column=label_column,
                                      id_column=id_column)
    if len(frame) == 0:
        raise DataError(f"Data file {path} is empty: it has a header but no records.")
    if fmt == "parquet":  # a CSV cell is always text; only Parquet has nested types
        for c in columns:
            _check_flat(c, frame[c])
    cells = {c: _column_cells(c, frame[c], path) for c in columns}

    labels, label_missing = cells[label_column]
    keep = _labelled_rows(label_missing, label_column, path)
    ids = _record_ids(cells, keep, id_column)
    feature_columns = [c for c in columns if c not in (label_column, id_column)]
    if not feature_columns:
        raise DataError(f"{path.name} has no feature columns besides the label"
                        f"{' and id' if id_column else ''} column.")
    y, classes = encode_labels(labels[keep].astype(str))
    X, names, facts, missing_per_column = _encode_features(cells, keep, feature_columns)

    fp_columns = [c for c in columns if c != id_column]
    fingerprints = table_record_fingerprints({c: cells[c][0][keep] for c in fp_columns},
                                             {c: cells[c][1][keep] for c in fp_columns})
    info: dict[str, Any] = {
        "source": str(path.resolve()),
        "format": fmt,
        "label_column": label_column,
        "id_column": id_column,
        "ids": f"column {id_column!r}" if id_column else "0-based row numbers of the file",
        "n_rows_read": len(frame),
        "n_dropped_missing_label": int(label_missing.sum()),
        **_encoding_info(feature_columns, facts, missing_per_column),
    }
    return build_dataset(name=path.name, X=X, y=y, ids=ids, fingerprints=fingerprints,
                         classes=classes, feature_names=names, info=info,
                         id_source=f"column {id_column!r}" if id_column else "")


# --------------------------------------------------------------------------- steps


def _unique_columns(frame: pd.DataFrame, path: Path) -> list[str]:
    """Strip the column names of ``frame`` (in place) and refuse a name given twice."""
    columns = [str(c).strip() for c in frame.columns]
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(f"Column name {c!r} appears twice in {path.name}; "
                            f"column names must be unique.")
        seen.add(c)
    frame.columns = pd.Index(columns)
    return columns


def _check_key_columns(columns: list[str], fmt: str, path: Path, *, label_column: str | None,
                       id_column: str | None) -> str:
    """Check that the label (required) and ID columns exist and differ; return the label one."""
    if label_column is None:
        raise DataError(f"label_column is required for {_FORMAT_NAMES[fmt]} files: name the column "
                        f"of {path.name} that holds the class labels ({list_names(columns)}).")
    if label_column not in columns:
        raise _column_error("Label column", label_column, columns, path)
    if id_column is not None:
        if id_column not in columns:
            raise _column_error("ID column", id_column, columns, path)
        if id_column == label_column:
            raise DataError(f"id_column and label_column are both {id_column!r}; "
                            f"they must name different columns.")
    return label_column


def _labelled_rows(label_missing: np.ndarray, label_column: str, path: Path) -> np.ndarray:
    """The mask of rows with a label, warning (at load_dataset's caller) of those dropped."""
    n_dropped = int(label_missing.sum())
    if n_dropped:
        warnings.warn(f"Dropped {n_dropped} of {len(label_missing)} rows of {path.name} whose "
                      f"label column {label_column!r} is missing.", DataWarning, stacklevel=4)
    return ~label_missing


def _record_ids(cells: dict[str, tuple[np.ndarray, np.ndarray]], keep: np.ndarray,
                id_column: str | None) -> np.ndarray:
    """IDs of the kept rows: the ID column (no cell missing) or the file's row numbers."""
    if id_column is None:
        return np.flatnonzero(keep).astype(str)
    id_values, id_missing = cells[id_column]
    if id_missing.any():
        raise DataError(f"ID column {id_column!r} has {int(id_missing.sum())} missing "
                        f"value(s) (first at row {int(np.argmax(id_missing))}); every "
                        f"record needs an ID.")
    return id_values[keep]


def _encode_features(
    cells: dict[str, tuple[np.ndarray, np.ndarray]], keep: np.ndarray, feature_columns: list[str]
) -> tuple[np.ndarray, list[str], dict[str, dict[str, Any]], dict[str, int]]:
    """Encode the kept rows of the feature columns: X, feature names, facts, missing counts."""
    blocks, names, facts = [], [], {}
    missing_per_column: dict[str, int] = {}
    for c in feature_columns:
        values, missing = cells[c][0][keep], cells[c][1][keep]
        if missing.any():
            missing_per_column[c] = int(missing.sum())
        block, block_names, facts[c] = _encode_column(c, values, missing)
        blocks.append(block)
        names.extend(block_names)
    X = np.hstack(blocks).astype(np.float32)
    if not np.isfinite(X).all():  # never expected after zscore; refused rather than trained on
        row, col = map(int, np.argwhere(~np.isfinite(X))[0])
        raise DataError(f"Feature {names[col]!r} is not finite after encoding at record {row}; "
                        "check that column's values.")
    return X, names, facts, missing_per_column


def _encoding_info(feature_columns: list[str], facts: dict[str, dict[str, Any]],
                   missing_per_column: dict[str, int]) -> dict[str, Any]:
    """The ``info`` entries on missing values and on how the feature columns were encoded."""
    numeric = [c for c in feature_columns if facts[c]["kind"] == "numeric"]
    return {
        "n_missing_values": int(sum(missing_per_column.values())),
        "missing_per_column": missing_per_column,
        "missing_markers": sorted(MISSING_MARKERS),
        "categorical_columns": [c for c in feature_columns if c not in numeric],
        "numeric_columns": numeric,
        "standardised": True,
        "encoding": ("numeric columns z-scored (missing -> column mean = 0); categorical "
                     f"columns one-hot, missing -> 'COL={MISSING_TOKEN}'"),
        "numeric_scaling": {c: {"mean": facts[c]["mean"], "std": facts[c]["std"]}
                            for c in numeric},
    }
