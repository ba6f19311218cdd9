"""Fingerprint a record given as a one-row table file, exactly as :func:`miaudit.audit` does
for the rows of a CSV or parquet data set."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from miaudit.data.fingerprint import table_record_fingerprints
from miaudit.data.tables import _raw_cells, _read_frame
from miaudit.errors import DataError

__all__ = ["RECORD_FILE_SUFFIXES", "record_file_fingerprint"]

#: Suffixes of the record files :func:`record_file_fingerprint` reads.
RECORD_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json")


def _read_json(path: Path) -> pd.DataFrame:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {path} as JSON: {exc}; give an object "
                        f'{{"column": "value", ...}}.') from exc
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path} must hold one JSON object mapping each column of the data "
                        f'set to the record\'s value ({{"age": "39", ...}}).')
    if any(isinstance(v, dict | list) for v in obj.values()):
        raise DataError(f"{path} has a nested value; give each column's raw cell as a string "
                        f"or number.")
    return pd.DataFrame({str(k).strip(): pd.Series([v], dtype=object) for k, v in obj.items()})


def record_file_fingerprint(path: str | Path, *, id_column: str | None = None) -> str:
    """The fingerprint of the one record held by a table file.

    Parameters
    ----------
    path : path
        A ``.csv``/``.csv.gz``/``.parquet`` file with a header and one row, or a ``.json``
        object ``{"column": value, ...}``, holding every column of the data set as loaded
        (the label column included); values are compared as the text of the data file
        (give JSON values as strings to be exact: ``"39"``, not ``39.0``).
    id_column : str, optional
        A column holding the record's ID, left out of the fingerprint as when loading.

    Returns
    -------
    fingerprint : str
        64 hex digits (see :mod:`miaudit.data.fingerprint`; table records only: records of
        array data sets such as the built-in ones are traced by ID or fingerprint).
    """
    path = Path(path).expanduser()
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"Record file {path} not found; give a one-row .csv/.json/.parquet "
                        f"file, a record fingerprint or a record ID.")
    if name.endswith(".json"):
        frame = _read_json(path)
    elif name.endswith((".csv", ".csv.gz")):
        frame = _read_frame(path, "csv")
    elif name.endswith(".parquet"):
        frame = _read_frame(path, "parquet")
    else:
        raise DataError(f"Record file {path} has an unsupported suffix; use one of "
                        f"{', '.join(RECORD_FILE_SUFFIXES)}.")
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    if len(frame) != 1:
        raise DataError(f"Record file {path} holds {len(frame)} rows; give exactly one record.")
    if id_column is not None:
        if id_column not in frame.columns:
            raise DataError(f"ID column {id_column!r} not found in {path.name}; its columns: "
                            f"{', '.join(frame.columns)}.")
        frame = frame.drop(columns=[id_column])
    if frame.shape[1] == 0:
        raise DataError(f"Record file {path} has no columns besides the ID column.")
    cells = {c: _raw_cells(frame[c]) for c in frame.columns}
    fps = table_record_fingerprints({c: v for c, (v, _) in cells.items()},
                                    {c: m for c, (_, m) in cells.items()})
    return str(fps[0])
