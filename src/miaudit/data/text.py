"""Load texts for language-model audits from ``.jsonl``, ``.csv`` / ``.tsv`` and ``.txt`` files.

:func:`load_texts` reads one document per record, strips surrounding whitespace, drops empty
texts and exact duplicates (keeping the first, so that no text can be both a member and a
non-member), and returns a :class:`~miaudit.data.text_dataset.TextDataset` with record IDs,
content fingerprints and, when the file says so, each text's membership. The readers of each
format are in :mod:`miaudit.data._text_readers`; record fingerprints, and the seeded choice
of members or of texts to set aside, in :mod:`miaudit.data.text_dataset`.

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
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data._encoding import stratified_positions
from miaudit.data._text_readers import ColumnSpec, RawTexts, read_jsonl, read_table, read_txt
from miaudit.data.fingerprint import dataset_fingerprint
from miaudit.data.text_dataset import TextDataset, member_counts, text_fingerprints
from miaudit.errors import DataError, DataWarning

__all__ = ["MEMBER_VALUES", "TEXT_EXTENSIONS", "load_texts"]

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
    _check_options(n_records, header)
    path, fmt = _check_path(source)
    raw = _read_records(path, fmt, text_column, id_column, member_column, header)
    kept = _KeptTexts.of(raw.texts)
    member, n_conflicts = _members(raw, kept, path)
    if len(kept.rows) == 0:
        raise DataError(f"No text left in {path.name}: all {kept.n_read} record(s) are empty"
                        f"{'' if kept.n_read else ' (the file has no records)'}.")
    ids, id_note = _record_ids(raw, kept.rows, path)
    _warn_dropped(kept, n_conflicts, path)
    info: dict[str, Any] = {
        "source": str(path.resolve()),
        "format": fmt,
        **raw.columns,
        "ids": id_note,
        "n_read": kept.n_read,
        "n_empty_dropped": kept.n_empty,
        "n_duplicates_dropped": kept.n_duplicates,
        "n_duplicate_label_conflicts": n_conflicts,
        "n_texts": len(kept.rows),
        **member_counts(member),
    }
    fps = kept.fingerprints
    ds = TextDataset(texts=[kept.texts[i] for i in kept.rows.tolist()], ids=ids,
                     fingerprints=fps, is_member=member, name=path.name,
                     source=info["source"], fingerprint=dataset_fingerprint(ids, fps),
                     info=info)
    return _subset(ds, n_records, seed)


# --------------------------------------------------------------------------- steps


def _check_options(n_records: Any, header: Any) -> None:
    """Refuse an ``n_records`` that is not a whole number >= 1, or a non-bool ``header``."""
    if n_records is not None and (isinstance(n_records, bool) or not isinstance(
            n_records, int | np.integer) or n_records < 1):
        raise DataError(f"n_records must be an integer >= 1, got {n_records!r}.")
    if header is not None and not isinstance(header, bool):
        raise DataError(f"header must be True, False or None (guess), got {header!r}.")


def _check_path(source: Any) -> tuple[Path, str]:
    """The path of an existing text file and its format (from :data:`TEXT_EXTENSIONS`)."""
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


def _read_records(path: Path, fmt: str, text_column: ColumnSpec | None, id_column: Any,
                  member_column: Any, header: bool | None) -> RawTexts:
    """Read every record with the reader of ``fmt``, refusing options that do not apply."""
    if fmt == "txt":
        given = {k: v for k, v in (("text_column", text_column), ("id_column", id_column),
                                   ("member_column", member_column), ("header", header))
                 if v is not None}
        if given:
            raise DataError(f"{', '.join(given)} do(es) not apply to the .txt file "
                            f"{path.name} (one document per line); use a .jsonl or .csv file "
                            f"to give columns.")
        return read_txt(path)
    if fmt == "jsonl":
        if header is not None:
            raise DataError(f"header applies to CSV/TSV files, not to {path.name}.")
        return read_jsonl(path, text_column, id_column, member_column)
    return read_table(path, fmt, text_column, id_column, member_column, header)


@dataclass(frozen=True)
class _KeptTexts:
    """The stripped texts of all records, and which are kept: non-empty, first copy of each."""

    texts: list[str]  # stripped, one per record read
    nonempty: np.ndarray  # record positions of the non-empty texts
    nonempty_fingerprints: np.ndarray  # fingerprint of each non-empty text
    first: np.ndarray  # positions in ``nonempty`` of the first copy of each text, sorted

    @classmethod
    def of(cls, raw_texts: list[str]) -> _KeptTexts:
        """Strip ``raw_texts`` and find the non-empty ones and the first copy of each."""
        texts = [t.strip() for t in raw_texts]
        nonempty = np.flatnonzero(np.array([bool(t) for t in texts], dtype=bool))
        fps_all = text_fingerprints([texts[i] for i in nonempty.tolist()])
        _, first = np.unique(fps_all, return_index=True)
        return cls(texts, nonempty, fps_all, np.sort(first))

    @property
    def rows(self) -> np.ndarray:
        """Record positions of the kept texts."""
        return self.nonempty[self.first]

    @property
    def fingerprints(self) -> np.ndarray:
        """Fingerprints of the kept texts."""
        return self.nonempty_fingerprints[self.first]

    @property
    def n_read(self) -> int:
        """Number of records read."""
        return len(self.texts)

    @property
    def n_empty(self) -> int:
        """Number of empty texts dropped."""
        return self.n_read - len(self.nonempty)

    @property
    def n_duplicates(self) -> int:
        """Number of duplicate texts dropped."""
        return len(self.nonempty) - len(self.first)


def _members(raw: RawTexts, kept: _KeptTexts,
             path: Path) -> tuple[np.ndarray | None, int]:
    """Membership of the kept texts (member if any copy is) and the number of conflicts."""
    if raw.members is None:
        return None, 0
    member_all = _parse_members(raw.members, kept.nonempty, raw.record_ids, raw.member_label,
                                path)
    n_conflicts = 0
    if kept.n_duplicates:
        # a text the model trained on under any of its copies is a member
        _, inverse = np.unique(kept.nonempty_fingerprints, return_inverse=True)
        any_member = np.zeros(inverse.max() + 1, dtype=bool)
        np.logical_or.at(any_member, inverse, member_all)
        n_conflicts = int((member_all != any_member[inverse]).sum())
        member_all = any_member[inverse]
    return member_all[kept.first], n_conflicts


def _member_value(value: Any) -> bool | None:
    """A membership value as a bool (see :data:`MEMBER_VALUES`), or None when not one."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return {0: False, 1: True}.get(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        return MEMBER_VALUES.get(value.strip().lower())
    return None


def _parse_members(values: list[Any], keep: np.ndarray, record_ids: list[int], label: str,
                   path: Path) -> np.ndarray:
    """Parse the membership values of the records at ``keep``."""
    out = np.empty(len(keep), dtype=bool)
    for k, i in enumerate(keep.tolist()):
        parsed = _member_value(values[i])
        if parsed is None:
            raise DataError(f"Member {label} of {path.name} holds {values[i]!r} at record "
                            f"{record_ids[i]}; expected true/false, 1/0 or "
                            f"member/non-member.")
        out[k] = parsed
    return out


def _record_ids(raw: RawTexts, rows: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """IDs of the records at ``rows`` (given ones, non-empty and unique, or record numbers)."""
    if raw.ids is None:
        numbers = np.array([str(raw.record_ids[i]) for i in rows.tolist()], dtype=str)
        return numbers, raw.default_ids
    ids = np.array([str(raw.ids[i]).strip() for i in rows.tolist()], dtype=object)
    blank = np.flatnonzero(ids == "")
    if len(blank):
        raise DataError(f"ID {raw.id_label} is empty for record "
                        f"{raw.record_ids[rows[blank[0]]]} of {path.name}; every text "
                        f"needs an ID.")
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        dup = str(uniq[np.argmax(counts > 1)])
        raise DataError(f"ID {raw.id_label} of {path.name} holds {dup!r} more than once; "
                        f"record IDs must be unique.")
    return ids.astype(str), raw.id_label


def _warn_dropped(kept: _KeptTexts, n_conflicts: int, path: Path) -> None:
    """Warn (at the caller of :func:`load_texts`) of the empty and duplicate texts dropped."""
    n_empty, n_dup = kept.n_empty, kept.n_duplicates
    if not (n_empty or n_dup):
        return
    parts = []
    if n_empty:
        parts.append(f"{n_empty} empty text(s)")
    if n_dup:
        conflict = (f"; {n_conflicts} copies were labelled non-member while another copy "
                    "is a member: the text counts as a member" if n_conflicts else "")
        parts.append(f"{n_dup} duplicate text(s) (kept the first of each{conflict})")
    warnings.warn(f"Dropped {' and '.join(parts)} of {kept.n_read} record(s) in {path.name}.",
                  DataWarning, stacklevel=3)


def _subset(ds: TextDataset, n_records: int | None, seed: int) -> TextDataset:
    """A seeded subset of ``n_records`` texts (stratified by membership), or ``ds`` itself."""
    if n_records is None or n_records >= len(ds):
        return ds
    if ds.is_member is None:
        rng = np.random.default_rng(int(seed))
        pick = np.sort(rng.choice(len(ds), size=int(n_records), replace=False))
    else:
        pick = stratified_positions(ds.is_member.astype(np.int64), int(n_records), int(seed))
    sub = ds.subset(pick)
    sub.info["n_records_requested"] = int(n_records)
    sub.info["subset_seed"] = int(seed)
    return sub
