"""A content-addressed cache of trained models and their outputs.

Each model is one entry, keyed by a SHA-256 over everything that determines it: the
records of the pool (data-set fingerprint) and the exact arrays trained on (features and
labels, so another encoding or label column never matches), the recipe, the model's row of
the membership design, its seed, the device, the augmented queries, and the versions of the
cache format and of the training code. An entry holds ``weights.safetensors`` (the
state dict of the recipe's module, never a pickle), ``logits.npy`` (its logits on every
record of the pool), ``variants.npy`` (logits on augmented queries, image recipes) and
``meta.json``. Entries are
written into a temporary folder and renamed into place, so a run killed mid-write leaves
no corrupt entry, and a re-run skips every model already stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from miaudit import __version__
from miaudit.errors import ConfigError
from miaudit.models import Recipe

CACHE_FORMAT = 1
#: Bump whenever training changes what a recipe, seed and data produce (optimizer, init,
#: minibatch order), so that stale entries are not reused.
TRAINING_VERSION = 2
ENV_VAR = "MIAUDIT_CACHE"


def default_cache_dir() -> Path:
    """``$MIAUDIT_CACHE``, else ``$XDG_CACHE_HOME/miaudit``, else ``~/.cache/miaudit``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "miaudit"


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

    def load_logits(self, key: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The stored logits ``(N, C)`` and, if any, the variants' logits ``(A, N, C)``."""
        entry = self._dir(key)
        variants = entry / "variants.npy"
        return (np.load(entry / "logits.npy", allow_pickle=False),
                np.load(variants, allow_pickle=False) if variants.exists() else None)

    def load_meta(self, key: str) -> dict:
        """The entry's ``meta.json`` (recipe, seed, training facts such as DP accounting)."""
        return json.loads((self._dir(key) / "meta.json").read_text())

    def load_weights(self, key: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self._dir(key) / "weights.safetensors"))

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
            (tmp / "meta.json").write_text(json.dumps(
                {**meta, "miaudit_version": __version__, "format": CACHE_FORMAT}, indent=2))
            try:
                tmp.rename(final)
            except OSError:  # another process stored the same model first
                if not self.has(key):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
