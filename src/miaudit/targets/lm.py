"""Causal language models as audit targets: per-token statistics, adapters, local folders.

Optional (``pip install 'miaudit[lm]'``; nothing here touches a model hub):

* **Extraction.** :func:`token_scores` runs a causal LM (any ``transformers`` model with a
  ``.logits`` output, or any module called as ``model(input_ids=..., attention_mask=...)``)
  over texts and returns a :class:`~miaudit.signals.tokens.TokenScores`: the
  log-probability of every token given the ones before it and, for Min-K%++, the mean and
  standard deviation of ``log p(v | x_<t)`` over the vocabulary under ``p``.
* **Adapters.** Anything with ``token_scores(texts) -> TokenScores`` can be audited
  (:class:`TokenLogProbs`); :class:`CausalLMTarget` wraps a ``(model, tokenizer)`` pair and
  the extraction settings, and :func:`load_causal_lm` reads a local folder written by
  ``save_pretrained`` (safetensors weights only, ``local_files_only=True``).

The tiny GPT-2 recipe that trains audited and reference LMs offline is
:mod:`miaudit.training.lm`.

Choices
-------
**First token.** Texts are tokenised without the tokenizer's special tokens, then the
tokenizer's BOS token (or, when it has none, its EOS token, which is GPT-2's document
separator ``<|endoftext|>``) is prepended, so *every* token of the text is predicted: a
text of ``n`` tokens gives ``n`` log-probabilities. A tokenizer with neither token gives
the first token as context only (``n - 1`` log-probabilities). :func:`finetune_lm` trains
on the same layout (``[BOS] text [EOS]``), so the model learns to predict first tokens.
The EOS is a training target only; it is not scored.

**Long texts.** A sequence longer than the window (the model's ``n_positions`` or
``max_position_embeddings``, or ``max_length``; counted with the BOS) is scored with the
strided sliding window of the usual strided-perplexity computation: windows of ``W``
tokens start every ``stride`` tokens, and each window scores only the tokens that no
earlier window scored, so every token is predicted exactly once, from the window where it
has the most context (at least ``W - stride`` tokens). The last window is moved back to end
at the last token, so it is full (more context than a short tail window would give).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from miaudit.errors import ConfigError, DataError, DependencyError
from miaudit.signals.tokens import TokenScores
from miaudit.targets.score_cache import TokenScoreCache, state_digest
from miaudit.training.recipes import _torch

__all__ = [
    "ADAPTER_CONFIG",
    "CausalLMTarget",
    "TokenLogProbs",
    "adapter_base",
    "load_causal_lm",
    "sliding_windows",
    "token_scores",
]

#: Log-probability rows processed at once per (rows x vocabulary) float32 tensor when
#: computing the distribution statistics, to bound memory for large vocabularies.
_MAX_ELEMENTS = 1 << 25


def _transformers():
    try:
        import transformers
    except ImportError:
        raise DependencyError(
            "Language models need the transformers and tokenizers packages: "
            "pip install 'miaudit[lm]'."
        ) from None
    return transformers


def _peft():
    try:
        import peft
    except ImportError:
        raise DependencyError("LoRA fine-tuning and adapter folders need the peft package: "
                              "pip install 'miaudit[lm]'.") from None
    return peft


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars (saving and loading shards) for a moment."""
    logging = _transformers().utils.logging
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class TokenLogProbs(Protocol):
    """Anything a language-model audit can query: token statistics for a list of texts."""

    def token_scores(self, texts: list[str]) -> TokenScores: ...


# --------------------------------------------------------------------------- extraction


def sliding_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows that score a sequence of ``n_tokens`` tokens, each token once.

    Parameters
    ----------
    n_tokens : int
        Length of the sequence (with its BOS, if any). Positions ``1 .. n_tokens - 1`` are
        predicted; position 0 is context only.
    window : int
        Tokens per window, ``>= 2``.
    stride : int
        Start-to-start distance of consecutive windows, ``1 <= stride < window``.

    Returns
    -------
    list of (begin, end, first)
        Window ``[begin, end)`` of the sequence, scoring positions ``begin + first .. end - 1``
        (``first >= 1``: the window's first ``first`` tokens are context only). Windows start
        every ``stride`` tokens; the last is moved back to end at ``n_tokens`` so it is full.
        Every position ``t >= 1`` is scored exactly once, with at least
        ``min(t, window - stride)`` tokens of context.

    Examples
    --------
    >>> sliding_windows(5, 8, 4)
    [(0, 5, 1)]
    >>> sliding_windows(10, 4, 2)
    [(0, 4, 1), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    >>> sliding_windows(9, 4, 3)
    [(0, 4, 1), (3, 7, 1), (5, 9, 2)]
    """
    if n_tokens < 2:
        return []
    if n_tokens <= window:
        return [(0, n_tokens, 1)]
    out = [(0, window, 1)]
    covered = window
    while covered < n_tokens:
        begin = min(out[-1][0] + stride, n_tokens - window)
        end = begin + window
        out.append((begin, end, covered - begin))
        covered = end
    return out


def _check_texts(texts: object, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise DataError(f"'{name}' must be a list of strings, got one string "
                        f"({texts[:40]!r}...); wrap it in a list.")
    try:
        out = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise DataError(f"'{name}' must be a list of strings, got "
                        f"{type(texts).__name__}.") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise DataError(f"'{name}' must hold strings only; text {i} is "
                            f"{type(t).__name__} ({t!r:.40}).")
    return out


def _start_token(tokenizer) -> int | None:
    """The id prepended to every text: BOS, else EOS, else none."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos if bos is not None else getattr(tokenizer, "eos_token_id", None)


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens), with the start token prepended."""
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    start = _start_token(tokenizer)
    prefix = [] if start is None else [int(start)]
    return [prefix + [int(t) for t in seq] for seq in ids]


def _context_size(model) -> int | None:
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _window_settings(model, max_length: int | None, stride: int | None) -> tuple[int, int]:
    context = _context_size(model)
    if max_length is not None:
        if int(max_length) < 2:
            raise ConfigError(f"'max_length' must be >= 2 tokens, got {max_length}.")
        if context is not None and max_length > context:
            raise ConfigError(f"'max_length'={max_length} exceeds the model's context of "
                              f"{context} tokens; pass max_length <= {context} or leave it "
                              "unset.")
        window = int(max_length)
    elif context is not None:
        window = context
    else:
        window = 2**62  # no known limit: whole texts in one window
    if stride is None:
        stride = max(1, window // 2)
    elif not 1 <= int(stride) < window:
        raise ConfigError(f"'stride' must be between 1 and the window minus one "
                          f"({window - 1}), got {stride}: a stride of a whole window "
                          "would leave each window's first token unscored.")
    return window, int(stride)


def _device_of(model, device: str):
    torch = _torch()
    dev = torch.device(device)
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if param is not None:
        at = param.device
        if at.type != dev.type or (dev.index is not None and at.index != dev.index):
            raise ConfigError(f"The model is on {at} but device={device!r}; move it with "
                              f"model.to({device!r}) or pass device={str(at)!r}.")
    return dev


def _progress_bar(enabled: bool, description: str, total: int):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(description), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    bar.add_task(description, total=total)
    return bar


def _distribution_stats(logp, out_mean: list, out_std: list) -> None:
    """Append mean and std of ``log p(v)`` under ``p`` for each row of ``logp (P, V)``."""
    torch = _torch()
    p = logp.exp()
    zero = logp.new_zeros(())
    mean = torch.where(p > 0, p * logp, zero).sum(-1)
    centred = torch.where(p > 0, p * (logp - mean[:, None]).square(), zero)
    out_mean.append(mean)
    out_std.append(centred.sum(-1).clamp_min(0).sqrt())


def token_scores(
    model,
    tokenizer,
    texts: list[str],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    stride: int | None = None,
    distribution: bool = True,
    device: str = "cpu",
    progress: bool = False,
    prefix: str | None = None,
    cache: TokenScoreCache | None = None,
) -> TokenScores:
    """Per-token log-probabilities of a causal language model on ``texts``.

    Each text is tokenised without special tokens and the tokenizer's BOS (else EOS) token
    is prepended, so every token of the text is predicted (see the module notes). Windows
    of all texts are sorted by length into batches, right-padded with an attention mask,
    run under ``torch.no_grad()`` in evaluation mode, and put back in the input order;
    log-probabilities are ``torch.log_softmax`` of the logits in float32.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM on ``device``, called as ``model(input_ids=, attention_mask=,
        use_cache=False)`` and returning ``.logits`` of shape ``(B, T, V)``.
    tokenizer : transformers tokenizer
        Called as ``tokenizer(texts, add_special_tokens=False)``.
    texts : list of str
    batch_size : int, default 8
        Windows per forward pass.
    max_length : int, optional
        Window length in tokens (with the BOS); at most the model's context
        (``config.n_positions`` / ``max_position_embeddings``), which is the default.
    stride : int, optional
        Distance between window starts for texts longer than the window; default half the
        window. Each token is scored once, with at least ``window - stride`` tokens of
        context (:func:`sliding_windows`).
    distribution : bool, default True
        Also return the mean and standard deviation of ``log p(v | x_<t)`` over the
        vocabulary under ``p`` (for Min-K%++).
    device : str, default "cpu"
        Where the inputs go; must be where the model is.
    progress : bool, default False
        Show a progress bar (``rich``, on stderr).
    prefix : str, optional
        Text put before every text (after the start token): only the text's own tokens are
        returned, each predicted with the prefix as context (ReCaLL), the first one too.
    cache : TokenScoreCache, optional
        Return the scores stored for the same weights, token ids and settings, else compute
        and store them (:mod:`miaudit.targets.score_cache`): equal either way.

    Returns
    -------
    TokenScores
        ``logprobs[i]`` of shape ``(n_i,)`` with ``n_i`` the number of tokens of text ``i``
        (``n_i - 1`` for a tokenizer with neither BOS nor EOS); higher means the model finds
        the token more likely. ``mean``/``std`` alike, or ``None`` without ``distribution``.
    """
    torch = _torch()
    texts = _check_texts(texts)
    if int(batch_size) < 1:
        raise ConfigError(f"'batch_size' must be >= 1, got {batch_size}.")
    window, stride = _window_settings(model, max_length, stride)
    dev = _device_of(model, device)
    sequences = _encode(tokenizer, texts)
    n_text = None
    if prefix:
        skip = 0 if _start_token(tokenizer) is None else 1
        head = _encode(tokenizer, [prefix])[0]
        n_text = [len(ids) - skip for ids in sequences]
        sequences = [head + ids[skip:] for ids in sequences]
    key = None
    if cache is not None:
        key = cache.key(model=cache.model or state_digest(model), sequences=sequences,
                        settings={"window": window, "stride": stride,
                                  "batch_size": int(batch_size),
                                  "distribution": bool(distribution), "device": str(dev),
                                  "n_text": n_text})
        if (stored := cache.load(key)) is not None:
            return stored
    rows = [(doc, begin, end, first)
            for doc, ids in enumerate(sequences)
            for begin, end, first in sliding_windows(len(ids), window, stride)]
    rows.sort(key=lambda r: r[1] - r[2])  # longest windows first (stable: ties keep order)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)

    logprobs = [np.zeros(max(len(ids) - 1, 0)) for ids in sequences]
    means = [np.zeros(len(lp)) for lp in logprobs] if distribution else None
    stds = [np.zeros(len(lp)) for lp in logprobs] if distribution else None

    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad(), _progress_bar(progress, "Scoring tokens", len(rows)) as bar:
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                width = max(end - begin for _, begin, end, _ in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                b_idx, pos = [], []
                for b, (doc, begin, end, first) in enumerate(batch):
                    ids[b, : end - begin] = torch.as_tensor(sequences[doc][begin:end])
                    mask[b, : end - begin] = 1
                    b_idx += [b] * (end - begin - first)
                    pos += range(first - 1, end - begin - 1)  # logits predicting first..
                ids, mask = ids.to(dev), mask.to(dev)
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                b_t = torch.as_tensor(b_idx, device=dev)
                p_t = torch.as_tensor(pos, device=dev)
                selected = logits[b_t, p_t]
                targets = ids[b_t, p_t + 1]
                chunk = max(1, _MAX_ELEMENTS // max(1, selected.shape[-1]))
                lp_parts: list = []
                mean_parts: list = []
                std_parts: list = []
                for c in range(0, len(selected), chunk):
                    logp = torch.log_softmax(selected[c : c + chunk].float(), dim=-1)
                    lp_parts.append(logp.gather(1, targets[c : c + chunk, None])[:, 0])
                    if distribution:
                        _distribution_stats(logp, mean_parts, std_parts)
                lp = torch.cat(lp_parts).double().cpu().numpy()
                if distribution:
                    mean = torch.cat(mean_parts).double().cpu().numpy()
                    std = torch.cat(std_parts).double().cpu().numpy()
                offset = 0
                for doc, begin, end, first in batch:
                    n = end - begin - first
                    at = slice(begin + first - 1, end - 1)  # position t is output t - 1
                    logprobs[doc][at] = lp[offset : offset + n]
                    if distribution:
                        means[doc][at] = mean[offset : offset + n]  # type: ignore[index]
                        stds[doc][at] = std[offset : offset + n]  # type: ignore[index]
                    offset += n
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(batch))
    finally:
        if was_training:
            model.train()
    token_ids = [np.asarray(ids[1:], dtype=np.int64) if len(ids) > 1
                 else np.zeros(0, dtype=np.int64) for ids in sequences]
    if n_text is not None:  # the text's own tokens only

        def tail(arrays):
            return None if arrays is None else [a[len(a) - n:] for a, n in
                                                zip(arrays, n_text, strict=True)]
        logprobs, means, stds, token_ids = (tail(logprobs), tail(means), tail(stds),
                                            tail(token_ids))
    scores = TokenScores(logprobs=logprobs, mean=means, std=stds, token_ids=token_ids)
    if key is not None:
        cache.store(key, scores)  # type: ignore[union-attr]
    return scores


def corpus_token_frequency(tokenizer, texts: list[str]) -> np.ndarray:
    """Each token's frequency in ``texts`` (tokenised as :func:`token_scores` does, the
    start token left out), Laplace-smoothed over the tokenizer's vocabulary: ``(1 +
    count) / (total + V)``, shape ``(V,)`` (DC-PDD's reference distribution, Zhang et al.
    2024)."""
    start = _start_token(tokenizer)
    counts = np.zeros(len(tokenizer), dtype=np.float64)
    for ids in _encode(tokenizer, list(texts)):
        np.add.at(counts, np.asarray(ids[0 if start is None else 1:], dtype=np.int64), 1.0)
    return (1.0 + counts) / (counts.sum() + counts.size)


# --------------------------------------------------------------------------- adapters


@dataclass
class CausalLMTarget:
    """A ``(model, tokenizer)`` pair with its extraction settings, queried through
    :meth:`token_scores` (see :func:`token_scores` for the settings)."""

    model: object
    tokenizer: object
    batch_size: int = 8
    max_length: int | None = None
    stride: int | None = None
    distribution: bool = True
    device: str = "cpu"
    progress: bool = False
    cache: TokenScoreCache | None = None

    def token_scores(self, texts: list[str], *, prefix: str | None = None) -> TokenScores:
        return token_scores(self.model, self.tokenizer, texts, batch_size=self.batch_size,
                            max_length=self.max_length, stride=self.stride,
                            distribution=self.distribution, device=self.device,
                            progress=self.progress, prefix=prefix, cache=self.cache)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", base: str | Path | None = None,
             **settings) -> CausalLMTarget:
        """The model and tokenizer of a local folder (:func:`load_causal_lm`)."""
        model, tokenizer = load_causal_lm(path, device=device, base=base)
        return cls(model, tokenizer, device=device, **settings)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json",
                    "tokenizer.model")


def load_causal_lm(path: str | Path, *, device: str = "cpu", base: str | Path | None = None):
    """A causal LM and its tokenizer from a local folder written by ``save_pretrained``.

    Only local files are read (``local_files_only=True``) and only safetensors weights are
    loaded (never pickled ``pytorch_model.bin``).

    Parameters
    ----------
    path : str or Path
        The folder: ``config.json``, ``model.safetensors`` (or a sharded
        ``model.safetensors.index.json``), and tokenizer files (``tokenizer.json`` or
        ``tokenizer_config.json`` with its vocabulary). Or a PEFT adapter folder
        (``adapter_config.json``, ``adapter_model.safetensors``; LoRA and the other
        ``peft`` methods): loaded on its base model and merged into it, with the adapter
        folder's tokenizer if it has one, else the base's.
    device : str, default "cpu"
    base : str or Path, optional
        The base model's local folder, for an adapter folder; default: the base its
        ``adapter_config.json`` names (:func:`adapter_base`).

    Returns
    -------
    (model, tokenizer)
        The model in evaluation mode on ``device``.

    Raises
    ------
    DataError
        The folder or one of its files is missing, or transformers cannot read them.
    DependencyError
        transformers is not installed.
    """
    transformers = _transformers()
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"The language-model folder '{path}' does not exist."
                        f"{_missing_folder_hint(str(path))}")
    if not folder.is_dir():
        raise DataError(f"The language-model path '{path}' is not a folder; pass the folder "
                        "written by save_pretrained (or miaudit's save_lm).")
    if (folder / ADAPTER_CONFIG).is_file():
        return _load_adapter(folder, base, device)
    if not (folder / "config.json").is_file():
        raise DataError(f"The language-model folder '{path}' has no config.json; pass the "
                        "folder written by save_pretrained (or miaudit's save_lm).")
    if not any(folder.glob("*.safetensors")):
        pickled = [p.name for p in folder.glob("*.bin")]
        if pickled:
            raise DataError(f"The language-model folder '{path}' has only pickled weights "
                            f"({', '.join(sorted(pickled))}); miaudit loads safetensors only. "
                            "Re-save the model with save_pretrained(folder) (safetensors).")
        raise DataError(f"The language-model folder '{path}' has no model weights "
                        "(model.safetensors).")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise DataError(f"The language-model folder '{path}' has no tokenizer files "
                        f"({' or '.join(_TOKENIZER_FILES[:2])}); save the tokenizer with "
                        "tokenizer.save_pretrained(folder).")
    try:
        with _quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(folder), local_files_only=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"Cannot load the language model in '{path}': {first_line}") from exc
    model.to(device)
    model.eval()
    return model, tokenizer


#: The file that makes a folder a PEFT adapter rather than a whole model.
ADAPTER_CONFIG = "adapter_config.json"


def _missing_folder_hint(text: str) -> str:
    """The one-line hint for a missing folder whose name looks like a Hub model name."""
    folder = Path(text)
    hub_like = not folder.is_absolute() and not text.startswith(".") and (
        text.count("/") <= 1 and "\\" not in text)
    return (" miaudit works offline and does not download models: if this is a Hugging "
            "Face Hub name, download it first (for example huggingface-cli download "
            f"{text} --local-dir DIR) and give the folder." if hub_like else "")


def adapter_base(path: str | Path) -> Path | None:
    """The base-model folder a PEFT adapter folder names, or None for a whole model.

    A relative name is read from the adapter folder first, then from the working folder.

    Raises
    ------
    DataError
        The adapter names no base, or a base that is not a local folder (a Hub name, for
        instance: miaudit works offline).
    """
    folder = Path(path).expanduser()
    config_file = folder / ADAPTER_CONFIG
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        name = config.get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"Cannot read the adapter's {ADAPTER_CONFIG} in '{path}': {exc}") \
            from None
    if not name:
        raise DataError(f"The adapter in '{path}' names no base model; give the base model's "
                        "folder (--base-model DIR).")
    for candidate in (folder / name, Path(name).expanduser()):
        if candidate.is_dir():
            return candidate
    raise DataError(f"The adapter in '{path}' was trained on the base model '{name}', which is "
                    f"not a local folder.{_missing_folder_hint(name)} Then give it with "
                    "--base-model DIR.")


def _load_adapter(folder: Path, base: str | Path | None, device: str):
    """A PEFT adapter folder loaded on its base model and merged into it."""
    if not (folder / "adapter_model.safetensors").is_file():
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        raise DataError(f"The adapter folder '{folder}' has no adapter_model.safetensors"
                        + (f" (only pickled {', '.join(pickled)}, which miaudit never loads)"
                           if pickled else "") + "; save it with save_pretrained(folder).")
    peft = _peft()
    base_folder = Path(base).expanduser() if base is not None else adapter_base(folder)
    model, tokenizer = load_causal_lm(base_folder, device=device)
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        tokenizer = _transformers().AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True)
    try:
        with _quiet_transformers(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            adapted = peft.PeftModel.from_pretrained(model, str(folder), is_trainable=False)
            model = adapted.merge_and_unload()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"Cannot load the adapter in '{folder}' on the base model "
                        f"'{base_folder}': {first_line}") from exc
    model.to(device)
    model.eval()
    return model, tokenizer
