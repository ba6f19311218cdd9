"""The :class:`TextDataset` of loaded texts, their fingerprints, and seeded choices of texts.

:func:`split_texts` draws a seeded half of the texts as members; :func:`set_aside_texts`
sets texts aside from the audit (the tiny recipe trains its tokenizer on them), chosen from
their contents and a seed only. :func:`~miaudit.data.text.load_texts` reads them from files.

Record fingerprint
    ``sha256(b"miaudit-record-v1\\x00" + b"text\\x00" + UTF8(text))`` as hex: version 1 of
    the scheme in :mod:`miaudit.data.fingerprint`, with its own record kind. The data-set
    fingerprint is :func:`~miaudit.data.fingerprint.dataset_fingerprint` over the (ID, record
    fingerprint) pairs.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.data.fingerprint import RECORD_PREFIX, dataset_fingerprint
from miaudit.errors import DataError

__all__ = ["TextDataset", "set_aside_texts", "split_texts", "text_fingerprints"]

_TEXT_KIND = b"text\x00"


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
                                **member_counts(member)}
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
        info.update(member_counts(member))
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


# --------------------------------------------------------------------------- helpers


def member_counts(member: np.ndarray | None) -> dict[str, int]:
    """``n_members`` / ``n_non_members`` for ``info``; empty without membership."""
    if member is None:
        return {}
    return {"n_members": int(member.sum()), "n_non_members": int((~member).sum())}


def _as_text(value: Any, what: str, i: int) -> str:
    """``value`` itself when it is a str, else a :class:`DataError` naming ``what[i]``."""
    if not isinstance(value, str):
        raise DataError(f"{what}[{i}] is a {type(value).__name__}, not a str.")
    return value
