"""The on-disk cache of an HTTP target's answers (SQLite), so that a re-run or a resumed
run sends nothing already answered."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from miaudit.errors import (
    ConfigError,
)

CACHE_CHECK_ROWS = 8


CACHE_FORMAT = 2


_TABLE = f"answers_v{CACHE_FORMAT}"  # answers of earlier formats are never read


def same_answer(a, b, tol: float = 1e-9) -> bool:
    """Whether two cached answers ``[code, payload]`` agree (numbers to ``tol``)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_answer(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(
            a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


class AnswerCache:
    """Answers by row key in one SQLite file (each batch written in one transaction)."""

    def __init__(self, root: Path) -> None:
        if root.exists() and not root.is_dir():
            raise ConfigError(f"The cache path {root} exists and is not a folder.")
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "http-answers.sqlite"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            with self._db:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (key TEXT PRIMARY "
                                 "KEY, endpoint TEXT NOT NULL, answer TEXT NOT NULL)")
                self._db.execute(f"CREATE INDEX IF NOT EXISTS {_TABLE}_endpoint "
                                 f"ON {_TABLE} (endpoint)")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"Cannot open the answer cache {self.path}: {exc}.") from None

    def get_many(self, keys: set[str]) -> dict[str, list]:
        out: dict[str, list] = {}
        items = list(keys)
        with self._lock:
            for s in range(0, len(items), 500):
                chunk = items[s : s + 500]
                marks = ",".join("?" * len(chunk))
                for key, answer in self._db.execute(
                        f"SELECT key, answer FROM {_TABLE} WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(answer)
        return out

    def put_many(self, items, endpoint: str) -> None:
        rows = [(k, endpoint, json.dumps(a, separators=(",", ":"))) for k, a in items]
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?)", rows)

    def forget(self, endpoint: str) -> None:
        """Drop every answer of one endpoint (by its identity digest)."""
        with self._lock, self._db:
            self._db.execute(f"DELETE FROM {_TABLE} WHERE endpoint = ?", (endpoint,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
