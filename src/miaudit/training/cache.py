"""A content-addressed cache of trained models and their outputs.

Each model is one entry, keyed by a SHA-256 over everything that determines it: the
records of the pool (data-set fingerprint) and the exact arrays trained on (features and
labels, so another encoding or label column never matches), the recipe, the model's row of
the membership design, its seed, the device, the augmented queries, and the versions of the
cache format and of the training code. An entry holds ``weights.safetensors`` (the
state dict of the recipe's module, never a pickle), ``logits.npy`` (its logits on every
record of the pool), ``variants.npy`` (logits on augmented queries, image recipes) and
``meta.json`` (with the SHA-256 of every other file). Entries are written into a
temporary folder, flushed to disk and renamed into place, so a run killed mid-write leaves
no corrupt entry, and a re-run skips every model already stored. An entry damaged later
(a truncated or altered file) fails its checksums when read: it is set aside and the model
trained again. A chunk of models still training keeps a checkpoint under ``checkpoints/``
(:mod:`miaudit.training.checkpoint`), removed once its models are stored, so a run killed
mid-training resumes where it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit._version import __version__
from miaudit.defaults import CACHE_ENV_VAR
from miaudit.errors import ConfigError
from miaudit.targets.score_cache import SCORES_FOLDER
from miaudit.training import Recipe
from miaudit.training.checkpoint import Checkpoint

CACHE_FORMAT = 2
#: Bump whenever training changes what a recipe, seed and data produce (optimizer, init,
#: minibatch order), so that stale entries are not reused.
TRAINING_VERSION = 2
ENV_VAR = CACHE_ENV_VAR
#: The cache's folder of training checkpoints of unfinished chunks of models.
CHECKPOINTS = "checkpoints"


def training_data_digest(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the exact arrays a model trains on (encoded features and labels), so that
    a different encoding or label column of the same records never shares a cache entry."""
    h = hashlib.sha256()
    for arr in (np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(y, np.int64)):
        h.update(str(arr.shape).encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def recipe_key(recipe: Recipe) -> dict:
    """The recipe as it enters a cache key: :meth:`Recipe.to_dict`, which leaves out the
    training defences while they are off, so that recipes without them keep the keys (and
    the cached models) they had before the defences existed."""
    return recipe.to_dict()


def model_key(*, data_fingerprint: str, training_data: str, recipe: Recipe,
              design_row: np.ndarray, seed: int, n_classes: int, device: str,
              augment: str | None = None) -> str:
    """The cache key of one model and its stored outputs (hex SHA-256)."""
    h = hashlib.sha256()
    spec = {"format": CACHE_FORMAT, "training": TRAINING_VERSION, "data": data_fingerprint,
            "arrays": training_data, "recipe": recipe_key(recipe), "seed": int(seed),
            "n_classes": int(n_classes), "n_records": len(design_row), "augment": augment,
            "device": str(device)}
    h.update(json.dumps(spec, sort_keys=True).encode())
    h.update(np.packbits(np.asarray(design_row, dtype=bool)).tobytes())
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or a folder to disk (folders where the system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class CachedModel:
    """One cache entry, read and checked."""

    logits: np.ndarray
    variants: np.ndarray | None
    weights: dict[str, np.ndarray]
    meta: dict


class ModelCache:
    """Models on disk under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"The cache path {self.root} exists and is not a folder.")

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        return (self._dir(key) / "meta.json").exists()

    def load(self, key: str) -> CachedModel | None:
        """The entry of ``key``, or None when there is none or it is damaged (then it is
        moved aside, so that the model is trained and stored again)."""
        entry = self._dir(key)
        if not (entry / "meta.json").exists():
            return None
        try:
            model = self._read(entry)
        except Exception as exc:  # any unreadable entry is set aside and retrained
            self._set_aside(entry, exc)
            return None
        with contextlib.suppress(OSError):  # last use, for 'miaudit cache prune'
            os.utime(entry / "meta.json")
        return model

    def _read(self, entry: Path) -> CachedModel:
        from safetensors.numpy import load as load_safetensors

        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        files = meta.get("files")
        if not isinstance(files, dict) or "logits.npy" not in files:
            raise ValueError("meta.json lists no checksums")
        content = {}  # each file read once: checked, then parsed from the same bytes
        for name, digest in files.items():
            content[name] = (entry / name).read_bytes()
            if hashlib.sha256(content[name]).hexdigest() != digest:
                raise ValueError(f"{name} does not match its checksum")

        def array(name: str) -> np.ndarray:
            return np.load(io.BytesIO(content[name]), allow_pickle=False)

        logits = array("logits.npy")
        variants = array("variants.npy") if "variants.npy" in files else None
        if logits.ndim != 2 or (variants is not None and variants.ndim != 3):
            raise ValueError("stored logits of the wrong shape")
        return CachedModel(logits, variants, load_safetensors(content["weights.safetensors"]),
                           meta)

    def _set_aside(self, entry: Path, exc: Exception) -> None:
        import warnings

        from miaudit.errors import MiauditWarning

        bad = entry.with_name(f".damaged-{entry.name}-{os.getpid()}")
        with contextlib.suppress(OSError):  # another process may have moved it first
            entry.rename(bad)
        warnings.warn(f"The cached model {entry.name[:12]} was damaged ({exc}); it was moved "
                      f"to {bad.name} and the model is trained again.", MiauditWarning,
                      stacklevel=4)

    def checkpoint(self, keys: list[str], every: float) -> Checkpoint:
        """Where the chunk of models ``keys`` checkpoints its training
        (``checkpoints/<hash of the keys>.safetensors``; see
        :mod:`miaudit.training.checkpoint`)."""
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        return Checkpoint(self.root / CHECKPOINTS / f"{digest}.safetensors", every=every,
                          signature=digest)

    def load_weights(self, key: str) -> dict[str, np.ndarray]:
        entry = self.load(key)
        if entry is None:
            raise ConfigError(f"No usable cache entry for {key[:12]}.")
        return entry.weights

    def store(self, key: str, *, weights: dict[str, np.ndarray], logits: np.ndarray,
              meta: dict, variants: np.ndarray | None = None) -> None:
        """Write one entry atomically (a concurrent writer of the same key is harmless)."""
        from safetensors.numpy import save_file

        final = self._dir(key)
        if self.has(key):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.tmp-", dir=final.parent))
        try:
            save_file({k: np.ascontiguousarray(v) for k, v in weights.items()},
                      str(tmp / "weights.safetensors"))
            np.save(tmp / "logits.npy", np.asarray(logits, dtype=np.float32))
            if variants is not None:
                np.save(tmp / "variants.npy", np.asarray(variants, dtype=np.float32))
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
            (tmp / "meta.json").write_text(json.dumps(
                {**meta, "miaudit_version": __version__, "format": CACHE_FORMAT,
                 "files": files}, indent=2))
            for p in tmp.iterdir():  # on disk before the entry appears under its name
                _fsync(p)
            _fsync(tmp)
            try:
                tmp.rename(final)
                _fsync(final.parent)
            except OSError:  # another process stored the same model first
                if not self.has(key):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------- maintenance

#: A temporary file or folder younger than this may belong to a run writing it now.
STALE_TEMPORARY_SECONDS = 3600.0


@dataclass
class CacheUsage:
    """What a model cache folder holds: counts and bytes by kind.

    ``entries``: stored models; ``scores``: stored token scores of language models
    (:mod:`miaudit.targets.score_cache`); ``damaged``: entries set aside after failing their
    checksums; ``temporary``: leftovers of writes that were killed; ``checkpoints``:
    training checkpoints of unfinished chunks; ``other``: anything else (the HTTP answer
    cache). ``oldest_use`` / ``newest_use``: when a stored model was last stored or loaded
    (POSIX seconds)."""

    root: Path
    counts: dict[str, int]
    bytes: dict[str, int]
    oldest_use: float | None = None
    newest_use: float | None = None

    def to_dict(self) -> dict:
        return {"root": str(self.root), "counts": self.counts, "bytes": self.bytes,
                "total_bytes": sum(self.bytes.values()), "oldest_use": self.oldest_use,
                "newest_use": self.newest_use}


KINDS = ("entries", "scores", "damaged", "temporary", "checkpoints", "other")


def _size(path: Path) -> int:
    """Bytes under ``path`` (0 for what a running audit removed meanwhile)."""
    def size(p: Path) -> int:
        with contextlib.suppress(FileNotFoundError):
            return p.stat().st_size if p.is_file() else 0
        return 0

    return size(path) if path.is_file() else sum(size(p) for p in path.rglob("*"))


def _items(root: Path):
    """Every item of the cache as ``(kind, path, last use)``; an item that a running audit
    renames or removes meanwhile is skipped."""
    def listed(folder: Path) -> list[Path]:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            return sorted(folder.iterdir())
        return []

    for shard in listed(root):
        for kind, path, stamp in _shard_items(shard, listed):
            with contextlib.suppress(FileNotFoundError):
                yield kind, path, stamp.stat().st_mtime


def _shard_items(shard: Path, listed):
    """``(kind, path, the file whose time is its last use)`` of one top-level item."""
    if shard.name == CHECKPOINTS and shard.is_dir():
        for f in listed(shard):
            yield ("temporary" if f.name.startswith(".tmp-") else "checkpoints"), f, f
    elif shard.name == SCORES_FOLDER and shard.is_dir():  # token scores of language models
        for sub in listed(shard):
            for f in listed(sub):
                yield ("temporary" if ".tmp-" in f.name else "scores"), f, f
    elif len(shard.name) == 2 and shard.is_dir():
        for entry in listed(shard):
            if entry.name.startswith(".damaged-"):
                yield "damaged", entry, entry
            elif ".tmp-" in entry.name:
                yield "temporary", entry, entry
            elif (entry / "meta.json").is_file():
                yield "entries", entry, entry / "meta.json"
            else:
                yield "other", entry, entry
    else:
        yield "other", shard, shard


def _checked(items, root: Path):
    """``items``, an unreadable cache (permissions) refused in one line."""
    try:
        yield from items
    except OSError as exc:
        raise ConfigError(f"Cannot read the model cache {root}: {exc}.") from exc


def cache_usage(root: str | os.PathLike) -> CacheUsage:
    """Counts and sizes of what the cache under ``root`` holds (see :class:`CacheUsage`)."""
    root = Path(root)
    counts, sizes = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    uses = []
    for kind, path, used in _checked(_items(root), root):
        counts[kind] += 1
        sizes[kind] += _size(path)
        if kind == "entries":
            uses.append(used)
    return CacheUsage(root, counts, sizes, min(uses, default=None), max(uses, default=None))


def prune_cache(root: str | os.PathLike, *, older_than_days: float | None = None,
                dry_run: bool = False, now: float | None = None) -> CacheUsage:
    """Remove from the cache under ``root``: damaged entries, leftovers of killed writes
    older than an hour and, with ``older_than_days``, stored models, token scores and
    checkpoints not used for that many days. Returns what was (or, with ``dry_run``, would
    be) removed."""
    import time

    if older_than_days is not None and not older_than_days >= 0:
        raise ConfigError(f"older_than_days must be >= 0, got {older_than_days}.")
    root, now = Path(root), time.time() if now is None else now
    counts, sizes = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    for kind, path, used in list(_checked(_items(root), root)):
        age = now - used
        # a checkpoint saved within the hour may belong to an audit training now
        least = STALE_TEMPORARY_SECONDS if kind == "checkpoints" else 0.0
        if kind == "damaged" or (kind == "temporary" and age > STALE_TEMPORARY_SECONDS) or (
                kind in ("entries", "scores", "checkpoints") and older_than_days is not None
                and age > max(older_than_days * 86400, least)):
            counts[kind] += 1
            sizes[kind] += _size(path)
            if not dry_run:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
    return CacheUsage(root, counts, sizes)
