"""The on-disk cache of an HTTP target's answers (SQLite), so that a re-run or a resumed
run sends nothing already answered."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from miaudit.errors import (
    ConfigError,
)

CACHE_CHECK_ROWS = 8


CACHE_FORMAT = 2


_TABLE = f"answers_v{CACHE_FORMAT}"  # answers of earlier formats are never read


#: How far a fresh answer may lie from its cached one and still be "the same model".
#: float32 carries 24 bits (a relative rounding step of 6e-8); a model served in float32
#: answers a row of an 8-row batch a few such steps away from the same row in a 256-row
#: batch (its matrix products sum in another order): up to 9e-7 relative on the
#: probabilities of a torch MLP. 1e-5 leaves a factor of 10 above that and stays far below
#: what a changed model moves: one Adam step at lr 1e-4 moves the same MLP's probabilities
#: by 4e-4, another training run or version by far more. The absolute part (1e-6 times the
#: row's largest magnitude: 1e-6 for probabilities) covers values near 0, whose rounding
#: error follows the size of the terms summed, not of the result.
RTOL = 1e-5
ATOL = 1e-6


def same_answer(a: list, b: list) -> bool:
    """Whether two answers ``[code, payload]`` of one row agree: the same form, the same
    labels, and numbers within float32 rounding (:data:`RTOL`, :data:`ATOL` times the
    row's scale). Top-k lists are compared label by label (a near-tie may swap their
    order). A rounded answer whose value sits on a rounding boundary may still differ."""
    if not (isinstance(a, list | tuple) and isinstance(b, list | tuple)
            and len(a) == len(b) == 2 and a[0] == b[0]):
        return False
    code, x, y = a[0], a[1], b[1]
    if code == "k":
        if not (isinstance(x, list) and isinstance(y, list)):
            return x == y
        x, y = sorted(x, key=_label_key), sorted(y, key=_label_key)
        return [p[0] for p in x] == [p[0] for p in y] and _close([p[1] for p in x],
                                                                 [p[1] for p in y])
    if code in ("v", "p", "z"):
        return _close(x, y)
    return x == y  # a label


def _label_key(pair: list) -> str:
    return repr(pair[0])


def _close(x: list, y: list) -> bool:
    try:
        u, v = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if u.shape != v.shape or u.ndim != 1:
        return False
    if not u.size:
        return True
    scale = max(1.0, float(np.abs(u).max()), float(np.abs(v).max()))
    return bool(np.allclose(u, v, rtol=RTOL, atol=ATOL * scale))


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
