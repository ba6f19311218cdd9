"""Choices among rows that depend on the rows' content, never on their order: attacks
that subsample or split records stay equivariant to the order of the records (a property
every attack is tested for)."""

from __future__ import annotations

import hashlib

import numpy as np


def row_hashes(rows: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each row's bytes, keyed by ``seed``: equal rows hash alike."""
    rows = np.ascontiguousarray(np.asarray(rows, dtype=np.float64).reshape(len(rows), -1))
    key = int(seed).to_bytes(8, "little", signed=True)
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8, key=key)
                                    .digest(), "little") for r in rows], dtype=np.uint64)


def content_subsample(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows chosen by their content (the lowest hashes), sorted; all rows
    when there are at most ``n``."""
    if len(rows) <= n:
        return np.arange(len(rows))
    return np.sort(np.argsort(row_hashes(rows, seed), kind="stable")[:n])


def content_folds(rows: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold in ``0 .. n_folds - 1`` per row from its hash; a fold left empty takes the
    largest fold's row of lowest hash, so every fold is non-empty (``n_folds <= len(rows)``)."""
    h = row_hashes(rows, seed)
    fold = (h % np.uint64(n_folds)).astype(np.int64)
    for f in range(n_folds):
        if not (fold == f).any():
            biggest = np.flatnonzero(fold == np.bincount(fold, minlength=n_folds).argmax())
            fold[biggest[np.argmin(h[biggest])]] = f
    return fold
