"""Checkpoints of a batched training run, so that a run killed at any moment (Ctrl-C,
``kill -9``, a lost machine) loses at most one interval of training.

:func:`~miaudit.training.batched.train_models` saves the whole state of a batched run
(every model's weights, the optimizer's moments and step counters, the minibatch and
dropout generators' states, the position in each model's epochs, early-stopping
bookkeeping) at most every ``every`` seconds, and a run started again with the same models
resumes from the last checkpoint: its models, and so the audit's figures, are bit-identical
to an uninterrupted run's on CPU.

A checkpoint is one safetensors file (the tensors, with the rest of the state as JSON in its
metadata), written to a temporary file and renamed into place, so a kill during the write
leaves the previous checkpoint intact. It is never unpickled. The model cache
(:class:`~miaudit.training.cache.ModelCache`) keeps the checkpoints of unfinished chunks of
models under ``checkpoints/`` and removes each once its models are cached.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miaudit.defaults import CHECKPOINT_SECONDS
from miaudit.errors import MiauditWarning

__all__ = ["CHECKPOINT_SECONDS", "Checkpoint"]

#: Version of the checkpoint layout: a file of another version is ignored (retrained).
_FORMAT = 1


@dataclass
class Checkpoint:
    """Where one chunk of models checkpoints its training, and how often.

    ``path`` is the checkpoint file (``.safetensors``); ``every`` the least number of
    seconds between two saves (0: after every step, for tests). ``signature`` identifies
    the run (recipe, seeds, data): a checkpoint of another run at the same path is ignored.
    """

    path: Path
    every: float = CHECKPOINT_SECONDS
    signature: str = ""
    #: Set by the trainer when it resumed from this checkpoint: the epochs done then.
    resumed_epoch: int | None = field(default=None, compare=False)
    _last: float = field(default=0.0, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._last = time.monotonic()

    def due(self) -> bool:
        """Whether ``every`` seconds passed since the last save (or the start)."""
        return time.monotonic() - self._last >= self.every

    def save(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        """Write the tensors and the JSON-able ``state`` atomically (flushed to disk, then
        renamed into place). A save that fails (a full disk, a read-only cache) is warned
        about once and checkpoints stop: training goes on without them."""
        from safetensors.torch import save_file

        meta = {"format": str(_FORMAT), "signature": self.signature,
                "state": json.dumps(state)}
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-",
                                       suffix=".safetensors")
            os.close(fd)
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                      metadata=meta)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            warnings.warn(f"The training checkpoint {self.path} could not be written ({exc}); "
                          "training goes on without checkpoints.", MiauditWarning,
                          stacklevel=3)
            self.every = math.inf
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self._last = time.monotonic()

    def load(self, device) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The saved tensors (on ``device``) and state, or None when there is no usable
        checkpoint (absent, of another run or format, or damaged: then removed with a
        warning, and the chunk trains from the start)."""
        self._last = time.monotonic()  # the interval counts from the start of training
        if not self.path.is_file():
            return None
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.path), framework="pt", device=str(device)) as f:
                meta = f.metadata() or {}
                if meta.get("format") != str(_FORMAT) or meta.get("signature") != \
                        self.signature:
                    return None
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            return tensors, json.loads(meta["state"])
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            warnings.warn(f"The training checkpoint {self.path.name} was damaged ({exc}); "
                          "the models train from the start.", MiauditWarning, stacklevel=3)
            self.remove()
            return None

    def remove(self) -> None:
        """Delete the checkpoint (its models are done)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
