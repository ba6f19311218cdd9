"""Text data for language-model audits: ``.jsonl``, ``.csv`` / ``.tsv`` and ``.txt`` files.

:func:`load_texts` reads one document per record, strips surrounding whitespace, drops empty
texts and exact duplicates (keeping the first, so that no text can be both a member and a
non-member), and returns a :class:`TextDataset` with record IDs, content fingerprints and,
when the file says so, each text's membership. :func:`split_texts` draws a seeded half
as members; :func:`set_aside_texts` sets texts aside from the audit (the tiny recipe trains
its tokenizer on them), chosen from their contents and a seed only.

Formats (``.gz`` compressed versions of each are read too):

``.jsonl``
    One JSON object per line (blank lines skipped). ``text_column`` names a key (default
    ``"text"``); ``id_column`` and ``member_column`` name keys as well.
``.csv``, ``.tsv``
    Read as text with pandas. A column is given by name or by 0-based position, and
    ``text_column`` may list several, separated by commas (``"1,2"`` or
    ``"title,description"``); their non-empty cells are joined with ``". "``. Without
    ``text_column`` the file needs a column named ``"text"``. Header row: a file is read with
    one when any column is given by name (or none is given); when every column is given by
    position, the first row is taken as a header only if each of its cells looks like a
    column name (a letter or ``_`` first, then at most 63 letters, digits, spaces, ``_``,
    ``-`` or ``.``; none a number; all different). ``header=True`` / ``False`` overrides the
    guess. AG News (``class,title,description`` without a header row) is read with
    ``text_column="1,2"``.
``.txt``
    One document per non-empty line; no column options.

Record fingerprint
    ``sha256(b"miaudit-record-v1\\x00" + b"text\\x00" + UTF8(text))`` as hex: version 1 of
    the scheme in :mod:`miaudit.data.fingerprint`, with its own record kind. The data-set
    fingerprint is :func:`~miaudit.data.fingerprint.dataset_fingerprint` over the (ID, record
    fingerprint) pairs.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data._encoding import list_names, stratified_positions, suggest
from miaudit.data.fingerprint import RECORD_PREFIX, dataset_fingerprint
from miaudit.errors import DataError, DataWarning

__all__ = [
    "MEMBER_VALUES",
    "TEXT_EXTENSIONS",
    "TextDataset",
    "load_texts",
    "set_aside_texts",
    "split_texts",
    "text_fingerprints",
]

TEXT_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".txt": "txt",
    ".txt.gz": "txt",
}
"""File name endings that :func:`load_texts` reads, and the format of each."""

MEMBER_VALUES: dict[str, bool] = {
    "true": True, "1": True, "1.0": True, "member": True, "yes": True,
    "false": False, "0": False, "0.0": False, "non-member": False, "nonmember": False,
    "non_member": False, "no": False,
}
"""Accepted membership values (case-insensitive, whitespace-stripped); JSON booleans and
the numbers 0 and 1 are accepted as well."""

_TEXT_KIND = b"text\x00"
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-]{0,63}")
ColumnSpec = str | int | Sequence[str | int]


def text_fingerprints(texts: Sequence[str]) -> np.ndarray:
    """Fingerprint texts (see the module docstring).

    Parameters
    ----------
    texts : sequence of str

    Returns
    -------
    fingerprints : ndarray of str of shape (N,)
        Hex SHA-256 of each text.

    Examples
    --------
    >>> fp = text_fingerprints(["a cat", "a dog"])
    >>> fp.shape, len(fp[0]), fp[0] != fp[1]
    ((2,), 64, True)
    >>> fp[0] == hashlib.sha256(b"miaudit-record-v1\\x00text\\x00a cat").hexdigest()
    True
    """
    prefix = RECORD_PREFIX + _TEXT_KIND
    out = [hashlib.sha256(prefix + t.encode("utf-8")).hexdigest() for t in texts]
    return np.array(out, dtype="<U64").reshape(len(out))


@dataclass(frozen=True, eq=False, repr=False)
class TextDataset:
    """Texts with record IDs, content fingerprints and optional membership labels.

    Attributes
    ----------
    texts : list of str
        Whitespace-stripped, non-empty, pairwise different documents.
    ids : ndarray of str of shape (N,)
        Unique record IDs: given ones, or the 0-based record numbers of the source (data
        rows of a table, JSON objects or non-empty lines of a text file, counted before
        any record is dropped).
    fingerprints : ndarray of str of shape (N,)
        Hex SHA-256 of each text (see :func:`text_fingerprints`).
    is_member : ndarray of bool of shape (N,) or None
        Membership from ``member_column``; None when the file does not give it.
    name : str
        File name.
    source : str
        Absolute path of the file.
    fingerprint : str
        Data-set fingerprint over the ordered (ID, record fingerprint) pairs.
    info : dict
        JSON-ready facts: ``format``, ``n_read``, ``n_empty_dropped``,
        ``n_duplicates_dropped``, ``n_duplicate_label_conflicts``, ``n_texts``, the columns
        used, ``header``, ``ids`` and, with membership, ``n_members`` / ``n_non_members``.

    Examples
    --------
    >>> ds = TextDataset.from_texts(["a cat", "the dog", "a bird"], name="toy")
    >>> len(ds), ds.subset([2, 0]).texts
    (3, ['a bird', 'a cat'])
    """

    texts: list[str]
    ids: np.ndarray
    fingerprints: np.ndarray
    is_member: np.ndarray | None
    name: str
    source: str
    fingerprint: str
    info: dict[str, Any]

    def __post_init__(self) -> None:
        n = len(self.texts)
        lengths = {"ids": len(self.ids), "fingerprints": len(self.fingerprints)}
        if self.is_member is not None:
            lengths["is_member"] = len(self.is_member)
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise DataError(f"TextDataset arrays differ in length: {n} texts, {bad}.")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        members = "" if self.is_member is None else f", n_members={int(self.is_member.sum())}"
        return (f"TextDataset(name={self.name!r}, n_texts={len(self)}{members}, "
                f"fingerprint={self.fingerprint[:12]!r}...)")

    @property
    def n_texts(self) -> int:
        """Number of texts N."""
        return len(self.texts)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        *,
        is_member: Sequence[bool] | np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        name: str = "texts",
    ) -> TextDataset:
        """Wrap in-memory texts (stripped; empty and duplicate texts are an error here).

        Parameters
        ----------
        texts : sequence of str
        is_member : sequence of bool, optional
        ids : sequence of str, optional
            Default: ``"0"``, ``"1"``, ...
        name : str, default "texts"

        Returns
        -------
        dataset : TextDataset
        """
        stripped = [_as_text(t, "texts", i).strip() for i, t in enumerate(texts)]
        empty = [i for i, t in enumerate(stripped) if not t]
        if empty:
            raise DataError(f"texts[{empty[0]}] is empty; give non-empty texts.")
        fps = text_fingerprints(stripped)
        if len(np.unique(fps)) != len(fps):
            raise DataError("texts holds duplicate texts; remove them first (load_texts "
                            "drops them for you).")
        id_array = (np.arange(len(stripped)).astype(str) if ids is None
                    else np.array([str(i) for i in ids], dtype=str))
        member = None if is_member is None else np.asarray(is_member, dtype=bool)
        info: dict[str, Any] = {"format": "memory", "n_texts": len(stripped),
                                **_member_counts(member)}
        return cls(texts=stripped, ids=id_array, fingerprints=fps, is_member=member, name=name,
                   source="<memory>", fingerprint=dataset_fingerprint(id_array, fps), info=info)

    def subset(self, idx: Sequence[int] | np.ndarray) -> TextDataset:
        """Select texts, keeping their IDs, fingerprints and membership.

        Parameters
        ----------
        idx : array-like of int, or of bool of shape (N,)
            Positions (in the wanted order) or a boolean mask.

        Returns
        -------
        subset : TextDataset
            With a recomputed ``fingerprint``; ``info`` copied with ``n_texts`` (and member
            counts) updated and ``subset_of`` set to this data set's fingerprint.
        """
        index = np.asarray(idx)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise DataError(f"A boolean subset mask needs shape ({len(self)},), "
                                f"got {index.shape}.")
            index = np.flatnonzero(index)
        elif index.size == 0:
            index = index.astype(np.intp)
        elif index.dtype.kind not in "iu":
            raise DataError(f"subset() needs integer positions or a boolean mask, "
                            f"got dtype {index.dtype}.")
        index = index.reshape(-1)
        ids, fps = self.ids[index], self.fingerprints[index]
        member = None if self.is_member is None else self.is_member[index]
        info = copy.deepcopy(self.info)
        info["n_texts"] = len(index)
        info.update(_member_counts(member))
        info["subset_of"] = self.fingerprint
        return TextDataset(texts=[self.texts[i] for i in index.tolist()], ids=ids,
                           fingerprints=fps, is_member=member, name=self.name,
                           source=self.source, fingerprint=dataset_fingerprint(ids, fps),
                           info=info)


def split_texts(ds: TextDataset | int, seed: int = 0) -> np.ndarray:
    """Pick a seeded random half of the texts as members ("split by the tool").

    Parameters
    ----------
    ds : TextDataset or int
        The texts, or their number N.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    is_member : ndarray of bool of shape (N,)
        Exactly ``N // 2`` True values.

    Examples
    --------
    >>> m = split_texts(10, seed=1)
    >>> m.shape, int(m.sum())
    ((10,), 5)
    """
    n = int(ds) if isinstance(ds, int | np.integer) else len(ds)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
    return mask


def set_aside_texts(ds: TextDataset, size: int, *, seed: int = 0) -> np.ndarray:
    """Pick ``size`` texts to set aside from the audit (for example to train a tokenizer).

    The choice is a seeded random one that depends only on the texts' contents and the
    seed: each text is ranked by ``sha256(b"miaudit-set-aside-v1\\x00" + str(seed) +
    b"\\x00" + fingerprint)`` and the ``size`` lowest are set aside. So it does not depend
    on membership (swapping members and non-members sets aside the same texts), on the
    record IDs or on the order of the file.

    Parameters
    ----------
    ds : TextDataset
        The loaded texts.
    size : int
        How many to set aside, ``1 <= size <= N - 2`` (the audit keeps at least two).
    seed : int, default 0

    Returns
    -------
    aside : ndarray of bool of shape (N,)
        Exactly ``size`` True values.

    Examples
    --------
    >>> ds = TextDataset.from_texts([f"text {i}" for i in range(10)])
    >>> aside = set_aside_texts(ds, 3, seed=1)
    >>> int(aside.sum()), bool((set_aside_texts(ds.subset(range(9, -1, -1)), 3, seed=1)
    ...                         == aside[::-1]).all())
    (3, True)
    """
    n = len(ds)
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not (
            1 <= size <= n - 2):
        raise DataError(f"Cannot set {size!r} of {n} texts aside: 'size' must be a whole "
                        f"number from 1 to {max(n - 2, 1)}, so that the audit keeps at least "
                        "two texts; set aside fewer texts or give more.")
    prefix = b"miaudit-set-aside-v1\x00" + str(int(seed)).encode("ascii") + b"\x00"
    keys = [hashlib.sha256(prefix + fp.encode("ascii")).hexdigest()
            for fp in ds.fingerprints.tolist()]
    aside = np.zeros(n, dtype=bool)
    aside[np.argsort(np.array(keys), kind="stable")[: int(size)]] = True
    return aside


def load_texts(
    source: str | os.PathLike[str],
    *,
    text_column: ColumnSpec | None = None,
    id_column: str | int | None = None,
    member_column: str | int | None = None,
    n_records: int | None = None,
    seed: int = 0,
    header: bool | None = None,
) -> TextDataset:
    """Load documents from a ``.jsonl``, ``.csv``, ``.tsv`` or ``.txt`` file.

    Parameters
    ----------
    source : str or path-like
        Path ending in one of :data:`TEXT_EXTENSIONS` (see the module docstring).
    text_column : str, int or sequence of them, optional
        Key / column of the text. Tables: a name, a 0-based position, or several of them
        (a sequence or a comma-separated string, ``"1,2"``) whose non-empty cells are joined
        with ``". "``. Default ``"text"``.
    id_column : str or int, optional
        Key / column of unique record IDs. Default: 0-based record numbers of the file.
    member_column : str or int, optional
        Key / column of membership: booleans, 0 / 1, or the strings in
        :data:`MEMBER_VALUES` (``"true"``, ``"member"``, ``"non-member"``, ...).
    n_records : int, optional
        Keep a seeded random subset of this many texts (stratified by membership when it is
        given), after empty and duplicate texts are dropped. Default: all.
    seed : int, default 0
        Seed of the subset.
    header : bool, optional
        Tables only: whether the first row holds column names. Default: guessed (see the
        module docstring).

    Returns
    -------
    dataset : TextDataset

    Raises
    ------
    DataError
        Missing file, unknown extension, missing column or key (the available ones are
        listed), a bad JSON line (with its line number), a bad membership value, duplicate
        IDs, or no text left.

    Warns
    -----
    DataWarning
        When empty or duplicate texts are dropped.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "news.jsonl"
    >>> _ = path.write_text('{"text": "Stocks rise", "label": 1}\\n'
    ...                     '{"text": "Rain expected", "label": 0}\\n')
    >>> ds = load_texts(path, member_column="label")
    >>> ds.texts, ds.is_member.tolist(), ds.ids.tolist()
    (['Stocks rise', 'Rain expected'], [True, False], ['0', '1'])
    """
    if n_records is not None and (isinstance(n_records, bool) or not isinstance(
            n_records, int | np.integer) or n_records < 1):
        raise DataError(f"n_records must be an integer >= 1, got {n_records!r}.")
    if header is not None and not isinstance(header, bool):
        raise DataError(f"header must be True, False or None (guess), got {header!r}.")
    path, fmt = _check_path(source)
    if fmt == "txt":
        given = {k: v for k, v in (("text_column", text_column), ("id_column", id_column),
                                   ("member_column", member_column), ("header", header))
                 if v is not None}
        if given:
            raise DataError(f"{', '.join(given)} do(es) not apply to the .txt file "
                            f"{path.name} (one document per line); use a .jsonl or .csv file "
                            f"to give columns.")
        raw = _read_txt(path)
    elif fmt == "jsonl":
        if header is not None:
            raise DataError(f"header applies to CSV/TSV files, not to {path.name}.")
        raw = _read_jsonl(path, text_column, id_column, member_column)
    else:
        raw = _read_table(path, fmt, text_column, id_column, member_column, header)

    texts = [t.strip() for t in raw.texts]
    n_read = len(texts)
    nonempty = np.array([bool(t) for t in texts], dtype=bool)
    keep = np.flatnonzero(nonempty)
    fps_all = text_fingerprints([texts[i] for i in keep.tolist()])
    _, first = np.unique(fps_all, return_index=True)
    first = np.sort(first)
    n_empty = n_read - len(keep)
    n_dup = len(keep) - len(first)

    member_all = None
    n_conflicts = 0
    if raw.members is not None:
        member_all = _parse_members(raw.members, keep, raw.record_ids, raw.member_label, path)
        if n_dup:
            # a text the model trained on under any of its copies is a member
            _, inverse = np.unique(fps_all, return_inverse=True)
            any_member = np.zeros(inverse.max() + 1, dtype=bool)
            np.logical_or.at(any_member, inverse, member_all)
            n_conflicts = int((member_all != any_member[inverse]).sum())
            member_all = any_member[inverse]
    kept = keep[first]
    fps = fps_all[first]
    if len(kept) == 0:
        raise DataError(f"No text left in {path.name}: all {n_read} record(s) are empty"
                        f"{'' if n_read else ' (the file has no records)'}.")
    if raw.ids is not None:
        ids = np.array([str(raw.ids[i]).strip() for i in kept.tolist()], dtype=object)
        blank = np.flatnonzero(ids == "")
        if len(blank):
            raise DataError(f"ID {raw.id_label} is empty for record "
                            f"{raw.record_ids[kept[blank[0]]]} of {path.name}; every text "
                            f"needs an ID.")
        uniq, counts = np.unique(ids.astype(str), return_counts=True)
        if (counts > 1).any():
            dup = str(uniq[np.argmax(counts > 1)])
            raise DataError(f"ID {raw.id_label} of {path.name} holds {dup!r} more than once; "
                            f"record IDs must be unique.")
        ids = ids.astype(str)
        id_note = f"{raw.id_label}"
    else:
        ids = np.array([str(raw.record_ids[i]) for i in kept.tolist()], dtype=str)
        id_note = raw.default_ids
    member = None if member_all is None else member_all[first]

    if n_empty or n_dup:
        parts = []
        if n_empty:
            parts.append(f"{n_empty} empty text(s)")
        if n_dup:
            conflict = (f"; {n_conflicts} copies were labelled non-member while another copy "
                        "is a member: the text counts as a member" if n_conflicts else "")
            parts.append(f"{n_dup} duplicate text(s) (kept the first of each{conflict})")
        warnings.warn(f"Dropped {' and '.join(parts)} of {n_read} record(s) in {path.name}.",
                      DataWarning, stacklevel=2)

    info: dict[str, Any] = {
        "source": str(path.resolve()),
        "format": fmt,
        **raw.columns,
        "ids": id_note,
        "n_read": n_read,
        "n_empty_dropped": n_empty,
        "n_duplicates_dropped": n_dup,
        "n_duplicate_label_conflicts": n_conflicts,
        "n_texts": len(kept),
        **_member_counts(member),
    }
    ds = TextDataset(texts=[texts[i] for i in kept.tolist()], ids=ids, fingerprints=fps,
                     is_member=member, name=path.name, source=info["source"],
                     fingerprint=dataset_fingerprint(ids, fps), info=info)
    if n_records is not None and n_records < len(ds):
        if member is None:
            rng = np.random.default_rng(int(seed))
            pick = np.sort(rng.choice(len(ds), size=int(n_records), replace=False))
        else:
            pick = stratified_positions(member.astype(np.int64), int(n_records), int(seed))
        ds = ds.subset(pick)
        ds.info["n_records_requested"] = int(n_records)
        ds.info["subset_seed"] = int(seed)
    return ds


# --------------------------------------------------------------------------- helpers


@dataclass
class _Raw:
    """What a reader found: one entry per record of the file, in file order."""

    texts: list[str]
    record_ids: list[int]  # 0-based record numbers (default IDs)
    default_ids: str
    columns: dict[str, Any]
    ids: list[Any] | None = None
    id_label: str = ""
    members: list[Any] | None = None
    member_label: str = ""


def _member_counts(member: np.ndarray | None) -> dict[str, int]:
    if member is None:
        return {}
    return {"n_members": int(member.sum()), "n_non_members": int((~member).sum())}


def _as_text(value: Any, what: str, i: int) -> str:
    if not isinstance(value, str):
        raise DataError(f"{what}[{i}] is a {type(value).__name__}, not a str.")
    return value


def _check_path(source: Any) -> tuple[Path, str]:
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path, got {type(source).__name__}.")
    path = Path(source)
    endings = ", ".join(TEXT_EXTENSIONS)
    if not path.exists():
        resolved = "" if path.is_absolute() else f" (resolved to {path.absolute()})"
        raise DataError(f"Text file not found: {path}{resolved}; check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a text file ending in {endings}.")
    lowered = path.name.lower()
    for ending in sorted(TEXT_EXTENSIONS, key=len, reverse=True):
        if lowered.endswith(ending):
            return path, TEXT_EXTENSIONS[ending]
    raise DataError(f"Unsupported file type for {path.name}: text data must end in {endings}.")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _read_lines(path: Path) -> list[str]:
    try:
        with _open_text(path) as fh:
            return fh.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise DataError(f"Cannot read {path} as UTF-8 text: {reason}.") from exc


def _read_txt(path: Path) -> _Raw:
    lines = [line for line in _read_lines(path) if line.strip()]
    return _Raw(texts=lines, record_ids=list(range(len(lines))),
                default_ids="0-based numbers of the non-empty lines",
                columns={"text_columns": None, "id_column": None, "member_column": None})


def _split_names(spec: ColumnSpec) -> list[str | int]:
    if isinstance(spec, bool):
        raise DataError(f"text_column must be a name or a position, got {spec!r}.")
    if isinstance(spec, int | np.integer):
        return [int(spec)]
    if isinstance(spec, str):
        return [p.strip() for p in spec.split(",")]
    parts = list(spec)
    if not parts or not all(isinstance(p, str | int) and not isinstance(p, bool)
                            for p in parts):
        raise DataError(f"text_column must be a name, a position or a list of them, "
                        f"got {spec!r}.")
    return parts


def _read_jsonl(path: Path, text_column, id_column, member_column) -> _Raw:
    if text_column is None:
        keys: list[str] = ["text"]
    elif isinstance(text_column, str):
        keys = [text_column]  # the exact key first; a comma list when no key is named so
    else:
        parts = _split_names(text_column)
        if any(not isinstance(p, str) for p in parts):
            raise DataError(f"text_column {text_column!r} gives a position; JSON lines are "
                            f"addressed by key names.")
        keys = [str(p) for p in parts]
    for label, spec in (("id_column", id_column), ("member_column", member_column)):
        if spec is not None and not isinstance(spec, str):
            raise DataError(f"{label} must be a key name for {path.name}, got {spec!r}.")

    objects: list[dict[str, Any]] = []
    seen: dict[str, None] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"Line {number} of {path.name} is not valid JSON ({exc.msg} at "
                            f"column {exc.colno}); each line must hold one JSON object.") from exc
        if not isinstance(obj, dict):
            raise DataError(f"Line {number} of {path.name} holds a JSON "
                            f"{type(obj).__name__}, not an object; each line must hold one "
                            f"JSON object such as {{\"text\": \"...\"}}.")
        seen.update(dict.fromkeys(obj))
        objects.append(obj)
    available = list(seen)
    if not objects:
        raise DataError(f"No text left in {path.name}: the file has no JSON records.")
    if isinstance(text_column, str) and text_column not in seen and "," in text_column:
        keys = [p.strip() for p in text_column.split(",")]
    for label, names in (("Text key", keys), ("ID key", [id_column]),
                         ("Member key", [member_column])):
        for name in names:
            if name is not None and name not in seen:
                raise DataError(f"{label} {name!r} not found in {path.name}; keys present: "
                                f"{list_names(available) or 'none'}.{suggest(name, available)}")

    texts = []
    for i, obj in enumerate(objects):
        parts = []
        for key in keys:
            value = obj.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise DataError(f"Record {i} of {path.name} has a {type(value).__name__} "
                                f"under {key!r}; texts must be strings.")
            parts.append(str(value).strip())
        texts.append(". ".join(p for p in parts if p))
    raw = _Raw(texts=texts, record_ids=list(range(len(objects))),
               default_ids="0-based numbers of the JSON records",
               columns={"text_columns": keys, "id_column": id_column,
                        "member_column": member_column})
    if id_column is not None:
        raw.ids = ["" if o.get(id_column) is None else o[id_column] for o in objects]
        raw.id_label = f"key {id_column!r}"
    if member_column is not None:
        raw.members = [o.get(member_column) for o in objects]
        raw.member_label = f"key {member_column!r}"
    return raw


def _as_position(part: str | int) -> int | None:
    if isinstance(part, int):
        return part
    return int(part) if part.isdigit() else None


def _looks_like_header(row: list[str]) -> bool:
    cells = [c.strip() for c in row]
    if not cells or len(set(cells)) != len(cells):
        return False
    for cell in cells:
        if not _NAME_LIKE.fullmatch(cell):
            return False
        try:
            float(cell)
        except ValueError:
            continue
        return False
    return True


def _read_table(path: Path, fmt: str, text_column, id_column, member_column,
                header: bool | None) -> _Raw:
    text_parts = _split_names("text" if text_column is None else text_column)
    for label, spec in (("id_column", id_column), ("member_column", member_column)):
        if isinstance(spec, bool) or not (spec is None or isinstance(spec, str | int)):
            raise DataError(f"{label} must be a column name or a 0-based position, "
                            f"got {spec!r}.")
    requested = [*text_parts, *(s for s in (id_column, member_column) if s is not None)]
    by_name = any(_as_position(p) is None for p in requested)
    try:
        frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", header=None, dtype=str,
                            keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"No text left in {path.name}: the file is empty.") from exc
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise DataError(f"Cannot parse {path} as {fmt.upper()}: {reason}.") from exc
    first_row = [str(c) for c in frame.iloc[0].tolist()] if len(frame) else []
    header_guessed = header is None
    if header is None:
        header = by_name or _looks_like_header(first_row)
    if header:
        columns = [c.strip() for c in first_row]
        frame = frame.iloc[1:].reset_index(drop=True)
    else:
        columns = [str(j) for j in range(frame.shape[1])]
    if by_name and not header:
        raise DataError(f"Columns of {path.name} are given by name but header=False; give "
                        f"0-based positions (e.g. text_column='1,2') instead.")

    def resolve(part: str | int, label: str) -> int:
        position = _as_position(part)
        if header and isinstance(part, str) and part in columns:
            return columns.index(part)
        if position is not None:
            if position >= len(columns):
                raise DataError(f"{label} position {position} is out of range: {path.name} "
                                f"has {len(columns)} column(s) (positions 0 to "
                                f"{len(columns) - 1}).")
            return position
        if header_guessed and not _looks_like_header(first_row):
            shown = list_names([c if len(c) <= 30 else c[:27] + "..." for c in columns], 5)
            raise DataError(f"{label} {part!r} not found in {path.name}: its first row, read "
                            f"as the header, does not look like column names ({shown}). If "
                            f"the file has no header row, give 0-based positions of its "
                            f"{len(columns)} columns, e.g. text_column='1,2'.")
        raise DataError(f"{label} {part!r} not found in {path.name}; available columns: "
                        f"{list_names(columns)}.{suggest(str(part), columns)}")

    text_positions = [resolve(p, "Text column") for p in text_parts]
    id_position = None if id_column is None else resolve(id_column, "ID column")
    member_position = None if member_column is None else resolve(member_column, "Member column")
    cells = frame.to_numpy(dtype=object)
    texts = [". ".join(p for p in (str(row[j]).strip() for j in text_positions) if p)
             for row in cells]
    names = [columns[j] for j in text_positions]
    raw = _Raw(texts=texts, record_ids=list(range(len(texts))),
               default_ids="0-based numbers of the data rows",
               columns={"text_columns": names,
                        "id_column": None if id_position is None else columns[id_position],
                        "member_column": (None if member_position is None
                                          else columns[member_position]),
                        "header": bool(header)})
    if id_position is not None:
        raw.ids = cells[:, id_position].tolist()
        raw.id_label = f"column {columns[id_position]!r}"
    if member_position is not None:
        raw.members = cells[:, member_position].tolist()
        raw.member_label = f"column {columns[member_position]!r}"
    return raw


def _member_value(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return {0: False, 1: True}.get(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        return MEMBER_VALUES.get(value.strip().lower())
    return None


def _parse_members(values: list[Any], keep: np.ndarray, record_ids: list[int], label: str,
                   path: Path) -> np.ndarray:
    out = np.empty(len(keep), dtype=bool)
    for k, i in enumerate(keep.tolist()):
        parsed = _member_value(values[i])
        if parsed is None:
            raise DataError(f"Member {label} of {path.name} holds {values[i]!r} at record "
                            f"{record_ids[i]}; expected true/false, 1/0 or "
                            f"member/non-member.")
        out[k] = parsed
    return out
