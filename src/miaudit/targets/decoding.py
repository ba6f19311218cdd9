"""Decoding with a causal LM: greedy continuations (the extraction test) and the shared
one-batch loop that samplers plug into (:mod:`miaudit.targets.sampling`).

Every context of a batch has the same length, so nothing is padded: the batch runs once,
then grows one chosen token at a time with the model's key-value cache (or, for a module
that returns none, by running the whole sequence again). Deterministic for greedy choice.
"""

from __future__ import annotations

import hashlib

import numpy as np

from miaudit.targets.lm import _device_of, _progress_bar
from miaudit.training.recipes import _torch

__all__ = ["decode_batch", "greedy_continuations", "text_hashes"]


def greedy_continuations(model, contexts: np.ndarray, steps: int, *, batch_size: int = 8,
                         device: str = "cpu", progress: bool = False) -> np.ndarray:
    """The ``steps`` tokens a causal LM decodes greedily after each context.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(input_ids=, attention_mask=, use_cache=)`` (and
        ``past_key_values=`` when its output has them), returning ``.logits (B, T, V)``.
    contexts : int ndarray (n, L)
        Token ids, all of one length (no padding).
    steps : int
        Tokens to decode.
    batch_size : int, default 8
    device : str, default "cpu"
        Where the model is.
    progress : bool, default False

    Returns
    -------
    int64 ndarray (n, steps)
        At each step the argmax of the next-token logits (lowest id on ties), fed back.
    """
    torch = _torch()
    dev = _device_of(model, device)
    contexts = np.asarray(contexts, dtype=np.int64)
    out = np.zeros((len(contexts), steps), dtype=np.int64)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad(), _progress_bar(progress, "Decoding", len(contexts)) as bar:
            for start in range(0, len(contexts), batch_size):
                ids = torch.as_tensor(contexts[start : start + batch_size], device=dev)
                out[start : start + len(ids)] = decode_batch(torch, model, ids, steps)
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(ids))
    finally:
        if was_training:
            model.train()
    return out


def _cache_of(result) -> tuple[str, object]:
    """The key-value cache of a model output and its keyword: ``cache`` (transformers >=
    5.2x) or ``past_key_values`` (earlier); ``(name, None)`` when the output has none."""
    for key in ("cache", "past_key_values"):
        value = getattr(result, key, None)
        if value is not None:
            return key, value
    return "past_key_values", None


def _argmax(logits, step: int):
    """Greedy choice: the highest logit of each row (lowest id on ties)."""
    return logits.argmax(dim=-1)


def decode_batch(torch, model, ids, steps: int, choose=_argmax) -> np.ndarray:
    """Decoding of one unpadded batch, with the key-value cache when there is one.

    ``choose(logits, step)`` turns the float next-token logits ``(B, V)`` of step ``step``
    into the chosen ids ``(B,)``: greedy by default; :mod:`miaudit.targets.sampling`
    passes a seeded sampler. Returns the chosen ids, ``(B, steps)``.
    """
    mask = torch.ones_like(ids)
    result = model(input_ids=ids, attention_mask=mask, use_cache=True)
    key, past = _cache_of(result)
    chosen = []
    for step in range(steps):
        token = choose(result.logits[:, -1].float(), step)
        chosen.append(token)
        if step == steps - 1:
            break
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.ones_like(ids)
        if past is not None:
            result = model(input_ids=token[:, None], attention_mask=mask, use_cache=True,
                           **{key: past})
            past = getattr(result, key)
        else:
            result = model(input_ids=ids, attention_mask=mask, use_cache=False)
    return torch.stack(chosen, dim=1).cpu().numpy()


def text_hashes(texts: list[str], seed: int) -> np.ndarray:
    """A 64-bit hash of each text's content keyed by ``seed`` (equal texts hash alike)."""
    key = int(seed).to_bytes(8, "little", signed=True)
    return np.array([int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8,
                                                    key=key).digest(), "little")
                     for t in texts], dtype=np.uint64)
