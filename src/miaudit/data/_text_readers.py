"""Readers of the text formats of :func:`~miaudit.data.text.load_texts`: ``.txt``, ``.jsonl``,
``.csv`` and ``.tsv`` (each also ``.gz`` compressed).

Each reader chooses the text key(s) or column(s), the ID and the member column, and returns
:class:`RawTexts`: one entry per record of the file, in file order, before any text is
stripped or dropped. The rules (header guessing, joining several columns) are in
:mod:`miaudit.data.text`.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from miaudit.data._encoding import list_names, suggest
from miaudit.errors import DataError

__all__ = ["ColumnSpec", "RawTexts", "read_jsonl", "read_table", "read_txt"]

ColumnSpec = str | int | Sequence[str | int]
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-]{0,63}")


@dataclass
class RawTexts:
    """What a reader found: one entry per record of the file, in file order."""

    texts: list[str]
    record_ids: list[int]  # 0-based record numbers (default IDs)
    default_ids: str
    columns: dict[str, Any]
    ids: list[Any] | None = None
    id_label: str = ""
    members: list[Any] | None = None
    member_label: str = ""


# --------------------------------------------------------------------------- .txt


def _open_text(path: Path) -> IO[str]:
    """Open ``path`` (gzip-compressed when it ends in ``.gz``) as UTF-8 text."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _read_lines(path: Path) -> list[str]:
    """All lines of the file, or a :class:`DataError` when it is not readable UTF-8 text."""
    try:
        with _open_text(path) as fh:
            return fh.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise DataError(f"Cannot read {path} as UTF-8 text: {reason}.") from exc


def read_txt(path: Path) -> RawTexts:
    """Read a ``.txt`` file: one document per non-empty line."""
    lines = [line for line in _read_lines(path) if line.strip()]
    return RawTexts(texts=lines, record_ids=list(range(len(lines))),
                    default_ids="0-based numbers of the non-empty lines",
                    columns={"text_columns": None, "id_column": None, "member_column": None})


# --------------------------------------------------------------------------- .jsonl


def _split_names(spec: ColumnSpec) -> list[str | int]:
    """The names / positions of a ``text_column`` (one, a comma list or a sequence)."""
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


def _jsonl_text_keys(text_column: ColumnSpec | None) -> list[str]:
    """The JSON key(s) of the text; a str ``text_column`` is first taken as one exact key."""
    if text_column is None:
        return ["text"]
    if isinstance(text_column, str):
        return [text_column]  # the exact key first; a comma list when no key is named so
    parts = _split_names(text_column)
    if any(not isinstance(p, str) for p in parts):
        raise DataError(f"text_column {text_column!r} gives a position; JSON lines are "
                        f"addressed by key names.")
    return [str(p) for p in parts]


def _read_json_objects(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects of the non-blank lines and every key seen, in first-seen order."""
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
    return objects, list(seen)


def _check_keys(path: Path, keys: list[str], id_column: str | None,
                member_column: str | None, available: list[str]) -> None:
    """Refuse a text, ID or member key that no JSON record holds."""
    for label, names in (("Text key", keys), ("ID key", [id_column]),
                         ("Member key", [member_column])):
        for name in names:
            if name is not None and name not in available:
                raise DataError(f"{label} {name!r} not found in {path.name}; keys present: "
                                f"{list_names(available) or 'none'}.{suggest(name, available)}")


def _join_json_texts(path: Path, objects: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """Each record's non-empty values under ``keys``, stripped and joined with ``". "``."""
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
    return texts


def read_jsonl(path: Path, text_column: ColumnSpec | None, id_column: Any,
               member_column: Any) -> RawTexts:
    """Read a ``.jsonl`` file: one JSON object per non-blank line, addressed by key names."""
    keys = _jsonl_text_keys(text_column)
    for label, spec in (("id_column", id_column), ("member_column", member_column)):
        if spec is not None and not isinstance(spec, str):
            raise DataError(f"{label} must be a key name for {path.name}, got {spec!r}.")
    objects, available = _read_json_objects(path)
    if not objects:
        raise DataError(f"No text left in {path.name}: the file has no JSON records.")
    if isinstance(text_column, str) and text_column not in available and "," in text_column:
        keys = [p.strip() for p in text_column.split(",")]
    _check_keys(path, keys, id_column, member_column, available)
    raw = RawTexts(texts=_join_json_texts(path, objects, keys),
                   record_ids=list(range(len(objects))),
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


# --------------------------------------------------------------------------- .csv / .tsv


def _as_position(part: str | int) -> int | None:
    """``part`` as a 0-based column position, or None when it is a name."""
    if isinstance(part, int):
        return part
    return int(part) if part.isdigit() else None


def _looks_like_header(row: list[str]) -> bool:
    """Whether every cell of ``row`` looks like a column name, all different, none a number."""
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


def _read_cells(path: Path, fmt: str) -> pd.DataFrame:
    """Every row of the CSV / TSV file (header row included) as text cells."""
    try:
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", header=None, dtype=str,
                           keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"No text left in {path.name}: the file is empty.") from exc
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise DataError(f"Cannot parse {path} as {fmt.upper()}: {reason}.") from exc


@dataclass(frozen=True)
class _Columns:
    """The column names of a table, and how its header row was decided."""

    path: Path
    names: list[str]
    header: bool
    header_guessed: bool
    first_row: list[str]

    def position(self, part: str | int, label: str) -> int:
        """The 0-based position of the column named or numbered ``part``."""
        position = _as_position(part)
        if self.header and isinstance(part, str) and part in self.names:
            return self.names.index(part)
        if position is not None:
            if position >= len(self.names):
                raise DataError(f"{label} position {position} is out of range: "
                                f"{self.path.name} has {len(self.names)} column(s) "
                                f"(positions 0 to {len(self.names) - 1}).")
            return position
        if self.header_guessed and not _looks_like_header(self.first_row):
            shown = list_names([c if len(c) <= 30 else c[:27] + "..." for c in self.names], 5)
            raise DataError(f"{label} {part!r} not found in {self.path.name}: its first row, "
                            f"read as the header, does not look like column names ({shown}). "
                            f"If the file has no header row, give 0-based positions of its "
                            f"{len(self.names)} columns, e.g. text_column='1,2'.")
        raise DataError(f"{label} {part!r} not found in {self.path.name}; available columns: "
                        f"{list_names(self.names)}.{suggest(str(part), self.names)}")


def _split_header(path: Path, frame: pd.DataFrame, header: bool | None,
                  by_name: bool) -> tuple[_Columns, pd.DataFrame]:
    """Decide (or take) whether the first row is a header; the columns and the data rows."""
    first_row = [str(c) for c in frame.iloc[0].tolist()] if len(frame) else []
    header_guessed = header is None
    if header is None:
        header = by_name or _looks_like_header(first_row)
    if header:
        names = [c.strip() for c in first_row]
        frame = frame.iloc[1:].reset_index(drop=True)
    else:
        names = [str(j) for j in range(frame.shape[1])]
    if by_name and not header:
        raise DataError(f"Columns of {path.name} are given by name but header=False; give "
                        f"0-based positions (e.g. text_column='1,2') instead.")
    return _Columns(path, names, bool(header), header_guessed, first_row), frame


def read_table(path: Path, fmt: str, text_column: ColumnSpec | None, id_column: Any,
               member_column: Any, header: bool | None) -> RawTexts:
    """Read a ``.csv`` / ``.tsv`` file: columns by name or 0-based position."""
    text_parts = _split_names("text" if text_column is None else text_column)
    for label, spec in (("id_column", id_column), ("member_column", member_column)):
        if isinstance(spec, bool) or not (spec is None or isinstance(spec, str | int)):
            raise DataError(f"{label} must be a column name or a 0-based position, "
                            f"got {spec!r}.")
    requested = [*text_parts, *(s for s in (id_column, member_column) if s is not None)]
    by_name = any(_as_position(p) is None for p in requested)
    columns, frame = _split_header(path, _read_cells(path, fmt), header, by_name)
    text_positions = [columns.position(p, "Text column") for p in text_parts]
    id_position = None if id_column is None else columns.position(id_column, "ID column")
    member_position = (None if member_column is None
                       else columns.position(member_column, "Member column"))
    names = columns.names
    cells = frame.to_numpy(dtype=object)
    texts = [". ".join(p for p in (str(row[j]).strip() for j in text_positions) if p)
             for row in cells]
    raw = RawTexts(texts=texts, record_ids=list(range(len(texts))),
                   default_ids="0-based numbers of the data rows",
                   columns={"text_columns": [names[j] for j in text_positions],
                            "id_column": None if id_position is None else names[id_position],
                            "member_column": (None if member_position is None
                                              else names[member_position]),
                            "header": columns.header})
    if id_position is not None:
        raw.ids = cells[:, id_position].tolist()
        raw.id_label = f"column {names[id_position]!r}"
    if member_position is not None:
        raw.members = cells[:, member_position].tolist()
        raw.member_label = f"column {names[member_position]!r}"
    return raw
