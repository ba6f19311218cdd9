"""Neighbour texts for the neighbourhood attack (Mattern et al., ACL Findings 2023).

A neighbour of a text is the text with one word swapped for one a language model finds
likely in its place: close in meaning and fluency, so a model that generalises gives it
about the text's own loss, while a model that memorised the text finds the text itself
much likelier. Mattern et al. propose the swaps with a masked LM (BERT); here a causal LM
(the base or reference model, else the audited model itself) proposes them from the left
context: at each token position ``t`` of the text, its most likely token other than
``x_t`` given ``x_<t``. The ``n`` neighbours of a text swap, one each, the ``n`` positions
whose proposal is likeliest (the most fluent swaps; ties go to the earlier position).
Deterministic: no sampling.

Texts longer than the proposer's context get proposals in their first window only.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import ConfigError
from miaudit.targets.lm import _check_texts, _context_size, _device_of, _encode, _start_token
from miaudit.training.recipes import _torch

__all__ = ["neighbour_texts"]


def _proposals(model, sequences: list[list[int]], batch_size: int, device: str
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sequence: the likeliest token other than the actual one at every position
    ``1 .. n-1`` (within the model's context) and its log-probability."""
    torch = _torch()
    context = _context_size(model) or max(len(s) for s in sequences)
    dev = _device_of(model, device)
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * len(
        sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rows = [sequences[i][:context] for i in batch]
            width = max(len(r) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, row in enumerate(rows):
                ids[b, : len(row)] = torch.as_tensor(row)
                mask[b, : len(row)] = 1
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                           use_cache=False).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            top = logp.topk(2, dim=-1)
            for b, i in enumerate(batch):
                n = len(rows[b]) - 1
                actual = ids[b, 1 : n + 1].to(top.indices.device)
                first_is_actual = top.indices[b, :n, 0] == actual
                pick = first_is_actual.long()
                alt = top.indices[b, :n].gather(1, pick[:, None])[:, 0]
                alt_lp = top.values[b, :n].gather(1, pick[:, None])[:, 0]
                out[i] = (alt.cpu().numpy().astype(np.int64), alt_lp.cpu().double().numpy())
    return out


def neighbour_texts(proposer, texts: list[str], *, n_neighbours: int = 10,
                    batch_size: int = 8, device: str | None = None) -> list[list[str]]:
    """Up to ``n_neighbours`` one-token swaps of each text (see the module notes).

    Parameters
    ----------
    proposer : CausalLMTarget or (model, tokenizer)
        The causal LM that proposes the swaps.
    texts : list of str
    n_neighbours : int, default 10
        Neighbours per text; a text of fewer tokens gets one per token.

    Returns
    -------
    list of list of str
        ``out[i]``: the neighbours of ``texts[i]``, likeliest swap first; each differs from
        the text in one token (decoded back to text, so its tokenisation may differ).
    """
    if isinstance(n_neighbours, bool) or not isinstance(n_neighbours, int) or n_neighbours < 1:
        raise ConfigError(f"n_neighbours must be a whole number >= 1, got {n_neighbours!r}.")
    if isinstance(proposer, tuple):
        model, tokenizer = proposer
    else:
        model, tokenizer = proposer.model, proposer.tokenizer
        device = device or getattr(proposer, "device", "cpu")
    texts = _check_texts(texts)
    skip = 0 if _start_token(tokenizer) is None else 1
    sequences = _encode(tokenizer, texts)
    proposals = _proposals(model, sequences, int(batch_size), device or "cpu")
    out = []
    for ids, (alt, alt_lp) in zip(sequences, proposals, strict=True):
        # proposal p is for position p + 1 of the sequence (never the start token)
        neighbours = []
        for p in np.argsort(-alt_lp, kind="stable")[:n_neighbours]:
            swapped = list(ids)
            swapped[p + 1] = int(alt[p])
            neighbours.append(tokenizer.decode(swapped[skip:],
                                               clean_up_tokenization_spaces=False))
        out.append(neighbours)
    return out
