"""Canonical SHA-256 fingerprints of records and data sets (version 1).

A fingerprint identifies a record by its raw content, so that the same record gives the same
fingerprint across runs, machines and file formats, and duplicates can be found.

Record fingerprint
    ``sha256(b"miaudit-record-v1\\x00" + KIND + PAYLOAD)`` as 64 lowercase hex digits.

    * Array records (built-in data sets, ``.npz`` files): ``KIND = b"array\\x00"`` and
      ``PAYLOAD = uint64_le(len(L)) + L + F``, where ``L`` is the UTF-8 text of the record's
      original label (``7 -> "7"``; string labels whitespace-stripped) and ``F`` the row's raw
      feature values as given, before any scaling, as little-endian float64 bytes (``-0.0`` is
      written as ``0.0``).
    * Table records (CSV, parquet): ``KIND = b"table\\x00"`` and ``PAYLOAD`` is the ASCII JSON
      text ``[["age","39"],["workclass",null],...]``: one ``[name, value]`` pair per column
      except the id column (the label column included), sorted by column name (Unicode code
      points), the value being the whitespace-stripped raw cell and ``null`` for a missing cell,
      as written by ``json.dumps(pairs, ensure_ascii=True, separators=(",", ":"))``. Reordering
      the columns of a file therefore does not change any fingerprint.

Data-set fingerprint
    ``sha256(b"miaudit-dataset-v1\\x00" + CONCAT_i(uint64_le(len(I_i)) + I_i + D_i))`` as hex,
    over the records in order, where ``I_i`` is the UTF-8 record ID and ``D_i`` the 32-byte
    record digest. It depends on record order, IDs and contents, not on the name or encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DATASET_PREFIX",
    "FINGERPRINT_VERSION",
    "RECORD_PREFIX",
    "array_record_fingerprints",
    "dataset_fingerprint",
    "table_record_fingerprints",
]

FINGERPRINT_VERSION = "miaudit-record-v1"
RECORD_PREFIX = b"miaudit-record-v1\x00"
DATASET_PREFIX = b"miaudit-dataset-v1\x00"


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def array_record_fingerprints(
    features: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> np.ndarray:
    """Fingerprint the records of array data (see the module docstring).

    Parameters
    ----------
    features : ndarray of shape (N, D)
        Raw feature values as given, before any scaling.
    labels : ndarray of int of shape (N,)
        Encoded labels, indices into ``classes``.
    classes : sequence of str
        Original label of each encoded class.

    Returns
    -------
    fingerprints : ndarray of str of shape (N,)
        Hex SHA-256 of each record.

    Examples
    --------
    >>> fp = array_record_fingerprints(np.zeros((2, 3)), np.array([0, 1]), ("a", "b"))
    >>> fp.shape, len(fp[0]), fp[0] != fp[1]
    ((2,), 64, True)
    """
    rows = np.ascontiguousarray(features, dtype="<f8") + 0.0  # -0.0 + 0.0 == +0.0
    base = hashlib.sha256(RECORD_PREFIX + b"array\x00")
    heads = []
    for label in classes:
        head = base.copy()
        head.update(_length_prefixed(str(label).encode("utf-8")))
        heads.append(head)
    n, width = rows.shape[0], rows.shape[1] * 8
    flat = memoryview(rows.reshape(-1).view(np.uint8))  # no copy
    out = []
    for i, code in enumerate(np.asarray(labels).tolist()):
        h = heads[code].copy()
        h.update(flat[i * width : (i + 1) * width])
        out.append(h.hexdigest())
    return np.array(out, dtype="<U64").reshape(n)


def table_record_fingerprints(
    cells: Mapping[str, np.ndarray], missing: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Fingerprint the records of a table (see the module docstring).

    Parameters
    ----------
    cells : mapping of column name to ndarray of str of shape (N,)
        Whitespace-stripped raw cells of every column that takes part (all but the id column).
    missing : mapping of column name to ndarray of bool of shape (N,)
        True where the cell is missing; its value in ``cells`` is then ignored.

    Returns
    -------
    fingerprints : ndarray of str of shape (N,)
        Hex SHA-256 of each record.

    Examples
    --------
    >>> cells = {"b": np.array(["x", "?"], dtype=object), "a": np.array(["1", "1"], dtype=object)}
    >>> miss = {"b": np.array([False, True]), "a": np.array([False, False])}
    >>> fp = table_record_fingerprints(cells, miss)
    >>> text = b'miaudit-record-v1\\x00table\\x00[["a","1"],["b",null]]'
    >>> fp[1] == hashlib.sha256(text).hexdigest()
    True
    """
    rows: np.ndarray | None = None
    for k, name in enumerate(sorted(cells)):
        values = np.asarray(cells[name], dtype=object)
        codes, uniques = pd.factorize(values)
        head = ("[" if k == 0 else ",") + "[" + json.dumps(str(name)) + ","
        pieces = [head + json.dumps(str(u)) + "]" for u in uniques]
        pieces.append(head + "null]")
        codes = np.where(np.asarray(missing[name], dtype=bool), len(uniques), codes)
        part = np.array(pieces, dtype=object)[codes]
        rows = part if rows is None else rows + part
    if rows is None:
        raise ValueError("a table record needs at least one column")
    prefix = RECORD_PREFIX + b"table\x00"
    out = [hashlib.sha256(prefix + (row + "]").encode("ascii")).hexdigest() for row in rows]
    return np.array(out, dtype="<U64").reshape(len(rows))


def dataset_fingerprint(ids: np.ndarray, fingerprints: np.ndarray) -> str:
    """Fingerprint a data set from its ordered (record ID, record fingerprint) pairs.

    Parameters
    ----------
    ids : ndarray of shape (N,)
        Record IDs (converted with ``str``).
    fingerprints : ndarray of str of shape (N,)
        Hex record fingerprints, in the same order.

    Returns
    -------
    fingerprint : str
        64 hex digits.

    Examples
    --------
    >>> a = dataset_fingerprint(np.array(["0", "1"]), np.array(["00" * 32, "11" * 32]))
    >>> b = dataset_fingerprint(np.array(["1", "0"]), np.array(["11" * 32, "00" * 32]))
    >>> a != b
    True
    """
    parts = [DATASET_PREFIX]
    for record_id, fp in zip(np.asarray(ids).tolist(), np.asarray(fingerprints).tolist(),
                             strict=True):
        parts.append(_length_prefixed(str(record_id).encode("utf-8")))
        parts.append(bytes.fromhex(fp))
    return hashlib.sha256(b"".join(parts)).hexdigest()
