"""Token scores kept on disk, so that scoring the same texts with the same model twice costs
one pass.

Scoring is most of an audit of a given model (no training): a re-run with other attacks,
another report or another FPR grid would score every text again. :class:`TokenScoreCache`
stores the result of one :func:`~miaudit.targets.lm.token_scores` call under a SHA-256 of
everything it depends on: the model (:func:`state_digest`: its configuration and the
names, dtypes, shapes and bytes of every tensor), the token ids scored (after the
tokenizer, the BOS and any prefix, so the tokenizer needs no identity of its own), the
window, stride and batch size (batch shapes move the last bits of float32 results),
whether the distribution's statistics are wanted, and the device. The values are the
float32 numbers the model computed, stored losslessly, so a cached result equals a fresh
one with the same settings exactly.
Files are written to a temporary name and renamed into place (a killed run leaves no half
file); an unreadable file is ignored and overwritten.

The files live in the model cache folder under ``token-scores/``; ``miaudit cache info``
counts them and ``miaudit cache prune --older-than DAYS`` removes the unused ones. They
hold the token ids of the texts scored: the audited texts, in a recoverable form, so keep
the cache folder as private as the data (or run with ``--no-cache``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.signals.tokens import TokenScores

__all__ = ["SCORES_FOLDER", "TokenScoreCache", "state_digest"]

#: The sub-folder of the model cache that holds token scores.
SCORES_FOLDER = "token-scores"
#: Bump when what a key covers, or the stored layout, changes.
SCORE_CACHE_FORMAT = 1


def state_digest(model) -> str:
    """SHA-256 of a torch module: its ``config`` (JSON, when it has one: attention
    implementation, scalings) and its tensors (names, dtypes, shapes and bytes, in name
    order). Two models with the same digest compute the same function."""
    import torch  # a model to digest means torch is there

    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if callable(getattr(config, "to_json_string", None)):
        h.update(config.to_json_string(use_diff=False).encode())
        h.update(str(getattr(config, "_attn_implementation", None)).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().view(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class TokenScoreCache:
    """Token scores on disk under ``root / token-scores``.

    ``model``: the :func:`state_digest` of the one model this cache is used with, computed
    once by the caller (an audit, whose models do not change); None digests the model at
    every call.
    """

    root: Path
    model: str | None = None

    def key(self, *, model: str, sequences: list[list[int]], settings: dict) -> str:
        """Hex SHA-256 of the model digest, the settings and the token-id sequences."""
        h = hashlib.sha256()
        spec = {"format": SCORE_CACHE_FORMAT, "model": model, "n": len(sequences),
                **settings}
        h.update(json.dumps(spec, sort_keys=True, default=str).encode())
        for ids in sequences:  # length-prefixed, so no two lists of sequences collide
            arr = np.asarray(ids, dtype=np.int64)
            h.update(len(arr).to_bytes(8, "little"))
            h.update(arr.tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return Path(self.root) / SCORES_FOLDER / key[:2] / f"{key}.npz"

    def load(self, key: str) -> TokenScores | None:
        """The stored scores of ``key``, or None (none stored, or an unreadable file)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                stored = {name: f[name] for name in f.files}
            lengths = stored.pop("lengths")
            cuts = np.cumsum(lengths)[:-1]
            parts = {name: [a.astype(np.int64 if name == "token_ids" else np.float64)
                            for a in np.split(arr, cuts)]
                     for name, arr in stored.items()}
            scores = TokenScores(logprobs=parts["logprobs"], mean=parts.get("mean"),
                                 std=parts.get("std"), token_ids=parts.get("token_ids"))
        except Exception:  # a damaged file: score again, and overwrite it
            return None
        with contextlib.suppress(OSError):  # last use, for pruning by age
            os.utime(path)
        return scores

    def store(self, key: str, scores: TokenScores) -> None:
        """Write ``scores`` under ``key`` (atomically; float32 values, as computed)."""
        arrays = {"lengths": scores.n_tokens}
        for name in ("logprobs", "mean", "std", "token_ids"):
            parts = getattr(scores, name)
            if parts is not None:
                dtype = np.int32 if name == "token_ids" else np.float32
                arrays[name] = (np.concatenate(parts).astype(dtype) if len(parts)
                                else np.zeros(0, dtype))
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}.tmp-", suffix=".npz",
                                   dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
