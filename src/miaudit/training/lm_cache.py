"""Trained language models in the model cache, so that a re-run trains nothing twice.

An LM audit trains its target (and, for a fine-tuning recipe, a base) and K reference LMs;
training is most of its time. Each trained model is stored as one entry of the
:class:`~miaudit.training.cache.ModelCache` (the same folder, checksums, atomic writes and
``miaudit cache prune`` as the classifiers' models), keyed by a SHA-256 over everything that
determines its weights: the recipe, the tokenizer's vocabulary, the exact training texts in
order, the seed, the device, the starting weights of a fine-tune (a digest of the base's
tensors) and :data:`LM_TRAINING_VERSION`. An entry holds the trained ``state_dict``
(safetensors) and no outputs: the scores are recomputed from the weights, which are
bit-identical, so a cached audit gives exactly the numbers of the first.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from miaudit.training.cache import CACHE_FORMAT, ModelCache

__all__ = ["LM_TRAINING_VERSION", "lm_training_key", "load_lm_state", "store_lm_state"]

#: Bump whenever :func:`miaudit.training.lm.finetune_lm` changes what a recipe, seed and
#: texts produce, so that stale entries are not reused.
LM_TRAINING_VERSION = 1


def lm_training_key(*, recipe: dict, tokenizer: str, texts: list[str], seed: int,
                    device: str, start: str | None) -> str:
    """The cache key (hex SHA-256) of one trained LM.

    ``tokenizer`` is the vocabulary's fingerprint
    (:func:`~miaudit.training.lm.tokenizer_fingerprint`), ``texts`` the training texts in
    order, ``start`` the :func:`~miaudit.targets.score_cache.state_digest` of the model
    fine-tuned (None: from scratch).
    """
    h = hashlib.sha256()
    spec = {"format": CACHE_FORMAT, "kind": "causal-lm", "training": LM_TRAINING_VERSION,
            "recipe": recipe, "tokenizer": tokenizer, "seed": int(seed),
            "device": str(device), "start": start, "n_texts": len(texts)}
    h.update(json.dumps(spec, sort_keys=True).encode())
    for text in texts:  # length-prefixed, so that no two lists of texts collide
        raw = text.encode("utf-8")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()


def load_lm_state(cache: ModelCache, key: str) -> dict[str, np.ndarray] | None:
    """The stored weights of ``key``, or None (none stored, or a damaged entry, which the
    cache sets aside)."""
    entry = cache.load(key)
    if entry is None or entry.meta.get("kind") != "causal-lm":
        return None
    return entry.weights


def store_lm_state(cache: ModelCache, key: str, model, meta: dict) -> None:
    """Store ``model``'s ``state_dict`` under ``key`` (no outputs: an empty logits array)."""
    weights = {name: t.detach().cpu().contiguous().numpy()
               for name, t in model.state_dict().items()}
    cache.store(key, weights=weights, logits=np.zeros((0, 0), dtype=np.float32),
                meta={"kind": "causal-lm", **meta})
