"""Sampled continuations of each text's beginning, for attacks that read generated text only.

:func:`sample_continuations` prompts a causal LM with the first part of every text and
draws ``K`` continuations by temperature sampling: the queries of SaMIA (Kaneko et al.
2024; :mod:`miaudit.attacks.samia`), which needs no log-probability, only the text an API
would return.

Choices
-------
**Split.** Texts are tokenised as :func:`miaudit.targets.lm.token_scores` does (the start
token, then the text's own tokens). The prompt is the start token and the first ``P``
tokens of the text, ``P = floor(prefix_fraction * n)`` (the paper prompts with the first
half of the *words*; on a tokenizer whose tokens are whole words the two agree) or a fixed
``prefix_tokens``; ``P`` is kept between 1 and ``n - 1`` so that every text has a prompt
and a continuation (a one-token text is prompted with the start token alone). The true
continuation is the other ``n - P`` tokens. A text longer than the model's context is cut
to the context first (the model never saw more of it: training cuts documents alike).

**Length.** Each sample has as many tokens as the text's true continuation (or
``max_new_tokens``), and stops early at the tokenizer's EOS token, which is dropped. The
authors sample until EOS or 1,024 tokens; a fixed length makes samples of members and
non-members comparable and keeps the cost known.

**Sampling.** Temperature sampling, optionally restricted to the ``top_k`` highest logits
(the authors use temperature 1 and top-k 50 with 50k-token vocabularies). Each draw
inverts the cumulative distribution at a uniform number from the sample's own stream:
``numpy.random.default_rng([h, k])`` with ``h`` a 64-bit hash of the text keyed by
``seed`` and ``k`` the sample's index. So a text's samples depend on its content, the
seed and the settings, not on the other texts, their order or the batch size (up to
floating-point differences between batch shapes, which may flip a draw that falls
within rounding of a boundary; on CPU none was seen).

**Through an API.** A target with its own ``sample_continuations`` method and no local
model (:class:`~miaudit.targets.openai.OpenAICompletionsTarget`) samples itself: the
client has no tokenizer, so it splits each text by whitespace-separated *words* (the
paper's unit) instead of tokens, and cuts every sample to the true continuation's word
count instead of its token count (see :mod:`miaudit.targets.openai`). On a tokenizer whose
tokens are whole words the two splits agree.

**Batches.** Texts are grouped by prompt length, so that batches need no padding, and
ordered by hash within a group: the batches, hence the draws, are the same for any order
of the texts. Decoding uses the key-value cache (the loop of
:func:`miaudit.targets.decoding.greedy_continuations`).

References
----------
Kaneko, Ma, Wata & Okazaki (2024), "Sampling-based Pseudo-Likelihood for Membership
Inference Attacks", arXiv:2404.11262.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, DataError
from miaudit.targets.decoding import decode_batch, text_hashes

__all__ = ["Samples", "sample_continuations"]


@dataclass(frozen=True, eq=False)
class Samples:
    """Sampled continuations of ``N`` texts (:func:`sample_continuations`).

    Attributes
    ----------
    prompt_ids : list of int64 ndarray, or None
        The text's first ``P_i`` tokens given as the prompt (after the start token, which
        is not included); ``None`` when sampled through an API (no tokenizer).
    true_ids : list of int64 ndarray, or None
        The text's true continuation, ``n_i - P_i`` tokens (``None`` through an API).
    sample_ids : list of list of int64 ndarray, or None
        ``K`` sampled continuations per text, each cut at the first EOS (so possibly
        shorter than asked, or empty); ``None`` through an API.
    true_text : list of str
        ``true_ids`` decoded (special tokens skipped).
    sample_text : list of list of str
        ``sample_ids`` decoded.
    n_tokens : int64 ndarray (N,)
        Tokens of each text before any cut to the model's context (words, through an API).
    settings : dict
        ``prefix_fraction``, ``prefix_tokens``, ``n_samples``, ``max_new_tokens``,
        ``temperature``, ``top_k``, ``seed`` and ``split`` (``"tokens"``, or ``"words"``
        through an API).
    """

    prompt_ids: list[np.ndarray] | None
    true_ids: list[np.ndarray] | None
    sample_ids: list[list[np.ndarray]] | None
    true_text: list[str]
    sample_text: list[list[str]]
    n_tokens: np.ndarray
    settings: dict

    def __len__(self) -> int:
        return len(self.true_text)

    @property
    def n_samples(self) -> int:
        """``K``, the samples per text."""
        return int(self.settings["n_samples"])


# --------------------------------------------------------------------------- settings


def _whole(value, name: str, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        extra = " or None" if optional else ""
        raise ConfigError(f"'{name}' must be a whole number >= 1{extra}, got {value!r}.")
    return int(value)


def _prefix_settings(prefix_fraction, prefix_tokens) -> tuple[float | None, int | None]:
    if prefix_tokens is not None:
        if prefix_fraction is not None:
            raise ConfigError("Give either 'prefix_fraction' or 'prefix_tokens', not both "
                              f"(got {prefix_fraction!r} and {prefix_tokens!r}).")
        return None, _whole(prefix_tokens, "prefix_tokens")
    fraction = 0.5 if prefix_fraction is None else prefix_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or \
            not 0 < fraction < 1:
        raise ConfigError(f"'prefix_fraction' must be a number in (0, 1) (0.5 = prompt with "
                          f"the first half of each text), got {prefix_fraction!r}.")
    return float(fraction), None


def _temperature(value) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"'temperature' must be a finite number > 0 (1 = the model's own "
                          f"distribution), got {value!r}.")
    return float(value)


def _split(n: int, fraction: float | None, fixed: int | None) -> int:
    """``P``: the prompt's text tokens, between 1 and ``n - 1`` (0 for a one-token text)."""
    p = fixed if fixed is not None else math.floor(fraction * n + 1e-9)
    return max(min(p, n - 1), 1 if n >= 2 else 0)


# --------------------------------------------------------------------------- sampling


def _sampler(torch, uniforms, temperature: float, top_k: int | None):
    """``choose(logits, step)`` for the decoding loop: the token at which the cumulative
    distribution of ``softmax(logits / temperature)`` (top-k restricted) first exceeds
    ``uniforms[:, step]`` times its total (inverse-CDF sampling; float64 sums)."""

    def choose(logits, step: int):
        scaled = logits / temperature
        if top_k is not None and top_k < scaled.shape[-1]:
            kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        cdf = torch.softmax(scaled.double(), dim=-1).cumsum(dim=-1)
        at = (uniforms[:, step] * cdf[:, -1]).unsqueeze(1)
        token = torch.searchsorted(cdf, at, right=True)[:, 0]
        return token.clamp_(max=scaled.shape[-1] - 1)

    return choose


def _uniforms(hashes: np.ndarray, n_samples: int, steps: np.ndarray, width: int) -> np.ndarray:
    """The uniform numbers of every (text, sample) row, ``(len(hashes) * K, width)``: row
    ``(i, k)`` holds the first ``steps[i]`` numbers of its stream, then 0.5 (padding)."""
    out = np.full((len(hashes) * n_samples, width), 0.5)
    for i, (h, s) in enumerate(zip(hashes, steps, strict=True)):
        for k in range(n_samples):
            out[i * n_samples + k, :s] = np.random.default_rng([int(h), k]).random(int(s))
    return out


def sample_continuations(
    target,
    texts: list[str],
    *,
    prefix_fraction: float | None = None,
    prefix_tokens: int | None = None,
    n_samples: int = 10,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> Samples:
    """``K`` sampled continuations of the beginning of every text (see the module notes).

    Parameters
    ----------
    target : CausalLMTarget or OpenAICompletionsTarget
        Anything with ``.model`` (a causal LM called as ``model(input_ids=,
        attention_mask=, use_cache=)``), ``.tokenizer`` and optionally ``.device``,
        ``.batch_size`` and ``.progress``; or, without ``.model``, a target with its own
        ``sample_continuations`` (an API: split by words, ``prefix_tokens`` and
        ``batch_size`` not taken, ``temperature=0`` allowed; see the module notes).
    texts : list of str
    prefix_fraction : float, optional
        Share of each text's tokens in the prompt, in (0, 1); default 0.5 (the paper's
        half) unless ``prefix_tokens`` is given.
    prefix_tokens : int, optional
        A fixed prompt of this many tokens instead (at most ``n - 1`` for a text of ``n``).
    n_samples : int, default 10
        ``K`` (the paper's default).
    max_new_tokens : int, optional
        Tokens per sample; default the length of each text's true continuation. Cut to
        what the model's context holds.
    temperature : float, default 1.0
        Softmax temperature (> 0).
    top_k : int, optional
        Sample among the ``top_k`` highest logits only (ties at the k-th value kept);
        default the whole vocabulary. ``top_k=1`` is greedy decoding.
    seed : int, default 0
        Keys the per-text random streams.
    batch_size : int, optional
        Texts decoded at once (each as ``K`` rows); default the target's ``batch_size``
        (else 8).

    Returns
    -------
    Samples
        Per text: prompt and true continuation ids, ``K`` sampled continuations (ids and
        decoded text). Deterministic for a seed; a text's samples do not depend on the
        other texts or their order.

    Raises
    ------
    ConfigError
        Bad settings, or a target without model and tokenizer.
    DataError
        No texts, a text that is not a string, an empty text, or a one-token text with a
        tokenizer that has no start token (nothing to prompt with).

    Examples
    --------
    >>> s = sample_continuations(target, ["a b c d"], n_samples=3)  # doctest: +SKIP
    >>> s.true_text[0], len(s.sample_text[0])  # doctest: +SKIP
    (' c d', 3)
    """
    from miaudit.targets.lm import _check_texts

    fraction, fixed = _prefix_settings(prefix_fraction, prefix_tokens)
    own = getattr(target, "sample_continuations", None)
    if callable(own) and not callable(getattr(target, "model", None)):  # an API (its
        # .model is the served model's name) samples itself
        if fixed is not None:
            raise ConfigError("Over an API the prompt is split by words, not tokens: give "
                              "'prefix_fraction' instead of 'prefix_tokens'.")
        return own(texts, prefix_fraction=fraction, n_samples=n_samples,
                   max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   seed=seed)
    n_samples = _whole(n_samples, "n_samples")
    max_new_tokens = _whole(max_new_tokens, "max_new_tokens", optional=True)
    temperature = _temperature(temperature)
    top_k = _whole(top_k, "top_k", optional=True)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"'seed' must be a whole number, got {seed!r}.")
    model, tokenizer = getattr(target, "model", None), getattr(target, "tokenizer", None)
    if model is None or tokenizer is None:
        raise ConfigError(f"Sampling continuations needs a model and its tokenizer (a "
                          f"CausalLMTarget); got a {type(target).__name__} without them.")
    batch_size = _whole(getattr(target, "batch_size", 8) if batch_size is None
                        else batch_size, "batch_size")
    texts = _check_texts(texts)
    if not texts:
        raise DataError("No texts to sample continuations of: 'texts' is empty.")

    n_tokens, prompts, trues, steps = _split_texts(model, tokenizer, texts, fraction, fixed,
                                                   max_new_tokens)
    hashes = text_hashes(texts, int(seed))
    drawn = _draw(target, prompts, steps, hashes, n_samples=n_samples,
                  temperature=temperature, top_k=top_k, batch_size=batch_size)

    def decode(rows: list[np.ndarray]) -> list[str]:
        return list(tokenizer.batch_decode([r.tolist() for r in rows],
                                           skip_special_tokens=True))

    flat = decode([t for per_text in drawn for t in per_text])
    skip = _skip(tokenizer)
    settings = {"prefix_fraction": fraction, "prefix_tokens": fixed, "n_samples": n_samples,
                "max_new_tokens": max_new_tokens, "temperature": temperature,
                "top_k": top_k, "seed": int(seed), "split": "tokens"}
    return Samples(
        prompt_ids=[np.asarray(p[skip:], dtype=np.int64) for p in prompts],
        true_ids=[np.asarray(t, dtype=np.int64) for t in trues],
        sample_ids=drawn,
        true_text=decode([np.asarray(t, dtype=np.int64) for t in trues]),
        sample_text=[flat[i * n_samples : (i + 1) * n_samples] for i in range(len(texts))],
        n_tokens=n_tokens, settings=settings)


def _skip(tokenizer) -> int:
    """1 when the tokenizer has a start token put before every text, else 0."""
    from miaudit.targets.lm import _start_token

    return 0 if _start_token(tokenizer) is None else 1


def _split_texts(model, tokenizer, texts: list[str], fraction: float | None,
                 fixed: int | None, max_new_tokens: int | None):
    """Each text's token count, prompt ids (start token included), true continuation ids
    and tokens to sample, within the model's context."""
    from miaudit.targets.lm import _context_size, _encode

    skip = _skip(tokenizer)
    sequences = _encode(tokenizer, texts)
    n_tokens = np.array([len(s) - skip for s in sequences], dtype=np.int64)
    context = _context_size(model)
    if context is not None:
        sequences = [s[: context + 1] for s in sequences]  # feeds at most `context` ids
    prompts, trues, steps = [], [], []
    for i, seq in enumerate(sequences):
        n = len(seq) - skip
        p = _split(n, fraction, fixed)
        if n == 0 or skip + p == 0:
            what = "is empty" if n == 0 else "has one token and the tokenizer no start token"
            raise DataError(f"Text {i} {what}: there is nothing to prompt with and "
                            "continue; drop it or give longer texts.")
        prompts.append(seq[: skip + p])
        trues.append(seq[skip + p:])
        s = len(trues[-1]) if max_new_tokens is None else max_new_tokens
        steps.append(s if context is None else min(s, context - (skip + p) + 1))
    return n_tokens, prompts, trues, np.array(steps, dtype=np.int64)


def _batches(prompts: list[list[int]], hashes: np.ndarray, batch_size: int) -> list[list[int]]:
    """Text indices in batches of at most ``batch_size`` with one prompt length each,
    ordered by (length, hash): the same batches for any order of the texts."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), int(hashes[i]), i))
    batches: list[list[int]] = [[]]
    for i in order:
        current = batches[-1]
        if current and (len(current) == batch_size or
                        len(prompts[current[0]]) != len(prompts[i])):
            batches.append([])
        batches[-1].append(i)
    return batches


def _draw(target, prompts, steps: np.ndarray, hashes: np.ndarray, *, n_samples: int,
          temperature: float, top_k: int | None, batch_size: int) -> list[list[np.ndarray]]:
    """The ``K`` sampled continuations of every prompt, each cut at the first EOS."""
    from miaudit.targets.lm import _device_of, _progress_bar
    from miaudit.training.recipes import _torch

    torch = _torch()
    model, tokenizer = target.model, target.tokenizer
    dev = _device_of(model, getattr(target, "device", "cpu"))
    eos = getattr(tokenizer, "eos_token_id", None)
    drawn: list[list[np.ndarray]] = [[] for _ in prompts]
    was_training = bool(getattr(model, "training", False))
    model.eval()
    progress = bool(getattr(target, "progress", False))
    try:
        with torch.no_grad(), _progress_bar(progress, "Sampling", len(prompts)) as bar:
            for batch in _batches(prompts, hashes, batch_size):
                width = int(steps[batch].max())
                u = torch.as_tensor(_uniforms(hashes[batch], n_samples, steps[batch], width),
                                    device=dev)
                ids = torch.as_tensor(np.repeat(np.array([prompts[i] for i in batch]),
                                                n_samples, axis=0), device=dev)
                out = decode_batch(torch, model, ids, width,
                                    _sampler(torch, u, temperature, top_k))
                for row, i in enumerate(np.repeat(batch, n_samples)):
                    tokens = out[row, : steps[i]].astype(np.int64)
                    if eos is not None and (tokens == eos).any():
                        tokens = tokens[: int(np.argmax(tokens == eos))]
                    drawn[i].append(tokens)
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(batch))
    finally:
        if was_training:
            model.train()
    return drawn
