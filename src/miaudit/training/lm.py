"""The tiny GPT-2 recipe: language models trained offline for audits and their references.

:func:`train_tokenizer` (byte-level BPE trained locally), :class:`LMRecipe`,
:func:`build_lm` (``GPT2LMHeadModel`` from a config, seeded), :func:`finetune_lm` and
:func:`save_lm`: the same recipe trains the audited model on the members and each reference
model on a random half, for LiRA-style attacks on text, all with one tokenizer trained on
texts set aside from the audit (``tokenizer_texts``). Optional (``pip install
'miaudit[lm]'``); nothing here touches a model hub. The trained models are queried through
:mod:`miaudit.targets.lm`, on the same ``[BOS] text [EOS]`` layout.

**Tokenizer.** A tokenizer trained on the members would carry membership into every
token-level score: a word seen only in members becomes one cheap token, while the same kind
of word in a non-member is spelt out in bytes. So the recipe's tokenizer is trained on texts
that take no part in the audit (:func:`miaudit.data.set_aside_texts`, a share of the
corpus chosen from the texts' contents and the seed, never from membership), and the target
and every reference LM share it. :func:`tokenizer_fingerprint` identifies a vocabulary.

**Fine-tuning.** Teams rarely train from scratch: they fine-tune a base model on their
data, in full or through a LoRA adapter (Hu et al., ICLR 2022). ``LMRecipe(finetune="full")``
or ``finetune="lora"`` reproduces that offline: a base model is first pretrained
(``base_epochs``) on the texts set aside from the audit (a public corpus: neither members nor
non-members), then fine-tuned on the members, every weight or only a LoRA adapter
(``peft``; ``lora_rank``, ``lora_alpha``); reference LMs are fine-tuned from the same base
the same way. The base is the natural reference model of the ``reference`` attack.

**Training blocks.** Documents are *padded*, not packed: each ``[BOS] text [EOS]`` is one
training sequence (a longer one is cut into blocks of ``block_size`` tokens that overlap by
one token, so every target is trained once), batches are right-padded, padding has label
-100 and attention mask 0. Documents never attend to each other, which keeps a member's
influence confined to its own sequence, and padding is cheap for short texts.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from miaudit.errors import ConfigError, DataError
from miaudit.targets.lm import (
    _check_texts,
    _context_size,
    _encode,
    _peft,
    _progress_bar,
    _quiet_transformers,
    _start_token,
    _transformers,
)
from miaudit.targets.score_cache import state_digest
from miaudit.training.cache import ModelCache
from miaudit.training.lm_cache import (
    lm_training_key,
    load_lm_state,
    store_lm_state,
)
from miaudit.training.recipes import _torch

__all__ = [
    "BYTE_ALPHABET",
    "EOS_TOKEN",
    "FINETUNE_METHODS",
    "PAD_TOKEN",
    "LMRecipe",
    "build_lm",
    "finetune_lm",
    "is_adapter",
    "lora_wrap",
    "pretrain_base",
    "save_lm",
    "tokenizer_fingerprint",
    "train_tokenizer",
]

#: Document separator of :func:`train_tokenizer`'s tokenizers, used as both BOS and EOS.
EOS_TOKEN = "<|endoftext|>"
#: Padding token of :func:`train_tokenizer`'s tokenizers (never a training target).
PAD_TOKEN = "<|pad|>"
#: Size of the byte-level alphabet: a byte-level BPE vocabulary holds at least these tokens.
BYTE_ALPHABET = 256
#: How :class:`LMRecipe` trains the audited model: from scratch on the members ("none"), or
#: a base pretrained on the set-aside texts, then fine-tuned on the members in full or
#: through a LoRA adapter.
FINETUNE_METHODS = ("none", "full", "lora")


def train_tokenizer(texts: list[str], *, vocab_size: int = 512, min_frequency: int = 2):
    """A byte-level BPE tokenizer trained on ``texts``, offline.

    Parameters
    ----------
    texts : list of str
    vocab_size : int, default 512
        Upper bound on the vocabulary, which holds the 256 bytes, ``<|endoftext|>`` and
        ``<|pad|>`` (so at least 258), then merges; a small corpus may give fewer merges.
    min_frequency : int, default 2
        Pairs seen fewer times are not merged.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        ``<|endoftext|>`` is both BOS and EOS (id 0), ``<|pad|>`` the padding token (id 1);
        no special tokens are added when encoding. ``save_pretrained`` and
        ``AutoTokenizer.from_pretrained(folder)`` round-trip it.
    """
    transformers = _transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = _check_texts(texts)
    minimum = BYTE_ALPHABET + 2
    if int(vocab_size) < minimum:
        raise ConfigError(f"'vocab_size' must be >= {minimum} (256 bytes and 2 special "
                          f"tokens), got {vocab_size}.")
    if int(min_frequency) < 1:
        raise ConfigError(f"'min_frequency' must be >= 1, got {min_frequency}.")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size), min_frequency=int(min_frequency),
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)


def tokenizer_fingerprint(tokenizer) -> str:
    """SHA-256 of a tokenizer's vocabulary: its (token, id) pairs in id order, as JSON.

    Two tokenizers with the same fingerprint map every token to the same id (for BPE, whose
    ids follow the merge order, they also merge alike).

    Examples
    --------
    >>> tok = train_tokenizer(["a cat", "a cat sat"], vocab_size=260)
    >>> len(tokenizer_fingerprint(tok))
    64
    """
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    text = json.dumps(vocab, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(b"miaudit-vocabulary-v1\x00" + text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class LMRecipe:
    """How to build and train a tiny GPT-2 (``transformers.GPT2LMHeadModel``).

    Attributes
    ----------
    n_layer, n_head, n_embd : int
        Transformer blocks, attention heads, width (a multiple of ``n_head``).
    n_positions : int
        Context length of the model.
    vocab_size : int
        Vocabulary size to train the tokenizer with (:func:`train_tokenizer`); the model's
        embedding has exactly ``len(tokenizer)`` rows, which must not exceed it.
    epochs, batch_size : int
        Passes over the texts; training sequences per step.
    lr, weight_decay : float
        AdamW learning rate (constant) and decoupled weight decay (on weight matrices and
        embeddings, not on biases and layer norms).
    block_size : int
        Longest training sequence (``<= n_positions``); longer documents are cut.
    dropout : float
        Residual, embedding and attention dropout (0: none, the default for a tiny model).
    seed : int
        Seed of the initial weights in :func:`build_lm` when it is not given one.
    tokenizer_texts : float or int
        Texts set aside from the audit to train the tokenizer on (they are neither members
        nor non-members): a share of the loaded texts when below 1 (default 0.1, rounded,
        at least one text), else a whole number of texts. With fine-tuning, the base model
        is pretrained on them too.
    finetune : {"none", "full", "lora"}
        "none" (default): the audited model is trained from scratch on the members.
        "full" / "lora": a base model is pretrained on the set-aside texts for
        ``base_epochs`` epochs, then fine-tuned on the members (every weight, or a LoRA
        adapter only) with ``epochs``, ``lr`` and ``batch_size``. Also how reference LMs
        are fine-tuned from a given base model.
    base_epochs, base_lr : int, float
        Pretraining epochs and learning rate of the base model (fine-tuning only; ``lr``
        is the fine-tuning's, which a LoRA wants larger).
    lora_rank, lora_alpha : int, float
        LoRA's rank ``r`` and scale ``alpha`` (the update is ``alpha / r * B A``), on every
        linear layer of the blocks (``peft``'s "all-linear", as QLoRA, Dettmers et al.
        2023; attention alone barely moves a tiny model).

    Examples
    --------
    >>> LMRecipe().describe()
    'gpt2 (2 layers, 2 heads, d=64, context 128, vocab <= 512; adamw lr=0.001, wd=0, 3 epochs, batch 16, block 128)'
    """  # noqa: E501

    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    n_positions: int = 128
    vocab_size: int = 512
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    block_size: int = 128
    dropout: float = 0.0
    seed: int = 0
    tokenizer_texts: float = 0.1
    finetune: str = "none"
    base_epochs: int = 3
    base_lr: float = 1e-3
    lora_rank: int = 8
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        problems = []
        if self.finetune not in FINETUNE_METHODS:
            problems.append(f"finetune must be one of {', '.join(FINETUNE_METHODS)}, got "
                            f"{self.finetune!r}")
        for key in ("base_epochs", "lora_rank"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key} must be a whole number >= 1, got {value!r}")
        if not (isinstance(self.base_lr, int | float) and math.isfinite(self.base_lr)
                and self.base_lr > 0):
            problems.append(f"base_lr must be a finite number > 0, got {self.base_lr!r}")
        if not (isinstance(self.lora_alpha, int | float) and math.isfinite(self.lora_alpha)
                and self.lora_alpha > 0):
            problems.append(f"lora_alpha must be a finite number > 0, got {self.lora_alpha!r}")
        for key in ("n_layer", "n_head", "n_embd", "n_positions", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_head >= 1 and self.n_embd % self.n_head:
            problems.append(f"n_embd must be a multiple of n_head, got {self.n_embd} and "
                            f"{self.n_head}")
        if self.vocab_size < BYTE_ALPHABET + 2:
            problems.append(f"vocab_size must be >= {BYTE_ALPHABET + 2}, got {self.vocab_size}")
        if not 2 <= self.block_size <= self.n_positions:
            problems.append(f"block_size must be between 2 and n_positions "
                            f"({self.n_positions}), got {self.block_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a finite number >= 0, got "
                            f"{self.weight_decay}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        share = self.tokenizer_texts
        if isinstance(share, bool) or not isinstance(share, int | float) or not (
                math.isfinite(share) and share > 0 and (share < 1 or share == int(share))):
            problems.append(f"tokenizer_texts must be a share in (0, 1) or a whole number "
                            f"of texts >= 1, got {share!r}")
        if problems:
            raise ConfigError("Invalid language-model recipe: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def tokenizer_count(self, n_texts: int) -> int:
        """How many of ``n_texts`` texts :attr:`tokenizer_texts` sets aside.

        Examples
        --------
        >>> LMRecipe().tokenizer_count(4400), LMRecipe(tokenizer_texts=250).tokenizer_count(900)
        (440, 250)
        """
        share = self.tokenizer_texts
        count = max(1, round(share * n_texts)) if share < 1 else int(share)
        if count > n_texts - 2:
            raise ConfigError(f"The recipe's tokenizer_texts={share!r} sets {count} of the "
                              f"{n_texts} texts aside to train the tokenizer, leaving fewer "
                              "than two for the audit; give more texts or a smaller "
                              "tokenizer_texts (a share such as 0.1, or a count).")
        return count

    def describe(self) -> str:
        drop = f", dropout {self.dropout:g}" if self.dropout else ""
        text = (
            f"gpt2 ({self.n_layer} layers, {self.n_head} heads, d={self.n_embd}, context "
            f"{self.n_positions}, vocab <= {self.vocab_size}{drop}; adamw lr={self.lr:g}, "
            f"wd={self.weight_decay:g}, {self.epochs} epochs, batch {self.batch_size}, "
            f"block {self.block_size})"
        )
        if self.finetune == "none":
            return text
        how = ("every weight" if self.finetune == "full" else
               f"a LoRA adapter, r={self.lora_rank}, alpha={self.lora_alpha:g}")
        return (f"{text}, fine-tuned ({how}) from a base pretrained {self.base_epochs} "
                f"epochs at lr={self.base_lr:g} on the set-aside texts")


def build_lm(recipe: LMRecipe, tokenizer, *, seed: int | None = None):
    """A freshly initialised ``GPT2LMHeadModel`` of ``recipe`` for ``tokenizer``.

    Built from a ``GPT2Config`` (nothing is downloaded); the initial weights come from
    ``torch.manual_seed(seed)`` (default ``recipe.seed``) without touching the global RNG.
    The vocabulary is ``len(tokenizer)``; BOS/EOS/padding ids are the tokenizer's.
    """
    torch = _torch()
    transformers = _transformers()
    n_vocab = len(tokenizer)
    if n_vocab > recipe.vocab_size:
        raise ConfigError(f"The tokenizer has {n_vocab} tokens, more than the recipe's "
                          f"vocab_size={recipe.vocab_size}; train the tokenizer with "
                          f"vocab_size={recipe.vocab_size} or raise the recipe's vocab_size.")
    start = _start_token(tokenizer)
    config = transformers.GPT2Config(
        vocab_size=n_vocab, n_positions=recipe.n_positions, n_embd=recipe.n_embd,
        n_layer=recipe.n_layer, n_head=recipe.n_head, resid_pdrop=recipe.dropout,
        embd_pdrop=recipe.dropout, attn_pdrop=recipe.dropout,
        bos_token_id=start, eos_token_id=getattr(tokenizer, "eos_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed if seed is None else int(seed))
        model = transformers.GPT2LMHeadModel(config)
    model.eval()
    return model


def _training_blocks(tokenizer, texts: list[str], block_size: int) -> list[list[int]]:
    """``[BOS] text [EOS]`` of each text, cut into blocks overlapping by one token."""
    eos = getattr(tokenizer, "eos_token_id", None)
    suffix = [] if eos is None else [int(eos)]
    blocks = []
    for ids in _encode(tokenizer, texts):
        seq = ids + suffix
        for begin in range(0, max(len(seq) - 1, 0), block_size - 1):
            blocks.append(seq[begin : begin + block_size])
    return blocks


def _optimizer(recipe: LMRecipe, model):
    torch = _torch()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, fused=True)


def finetune_lm(
    recipe: LMRecipe,
    tokenizer,
    texts: list[str],
    *,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    model=None,
    cache: ModelCache | None = None,
):
    """Train a causal LM on ``texts`` with the recipe's optimiser, epochs and batches.

    Each text becomes ``[BOS] text [EOS]`` (cut into ``block_size`` blocks overlapping by
    one token when longer); sequences are shuffled each epoch by a ``torch.Generator``
    seeded with ``seed + 1``, right-padded per batch (padding has label -100 and attention
    mask 0) and trained with the mean next-token cross-entropy over real tokens, AdamW at a
    constant learning rate. Deterministic for a seed on CPU.

    Parameters
    ----------
    recipe : LMRecipe
    tokenizer : transformers tokenizer
    texts : list of str
    seed : int
        Seeds the initial weights (when ``model`` is None), the shuffling and dropout.
    device : str, default "cpu"
    progress : bool, default False
        Show a progress bar (``rich``, on stderr).
    model : torch.nn.Module, optional
        A base causal LM to fine-tune; it is copied, so the given model is unchanged (a base
        model can be fine-tuned many times). With ``recipe.finetune == "lora"`` only a LoRA
        adapter on it is trained (:func:`lora_wrap`); otherwise every weight. Default:
        :func:`build_lm` with ``seed`` (training from scratch).
    cache : ModelCache, optional
        Reuse the weights stored for the same recipe, tokenizer, texts, seed, device and
        starting weights (:mod:`miaudit.training.lm_cache`), else train and store them.

    Returns
    -------
    torch.nn.Module
        The trained model on ``device``, in evaluation mode (a ``peft.PeftModel`` for LoRA:
        :func:`save_lm` writes its adapter).
    """
    torch = _torch()
    texts = _check_texts(texts)
    dev = torch.device(device)
    key = None if cache is None else lm_training_key(
        recipe=recipe.to_dict(), tokenizer=tokenizer_fingerprint(tokenizer), texts=texts,
        seed=seed, device=str(dev), start=None if model is None else state_digest(model))
    if model is None:
        model = build_lm(recipe, tokenizer, seed=seed)
    else:
        model = copy.deepcopy(model)
        if recipe.finetune == "lora":
            model = lora_wrap(model, recipe, seed=seed)
    if key is not None and (state := load_lm_state(cache, key)) is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        return model.to(dev).eval()
    model.to(dev)
    context = _context_size(model)
    if context is not None and recipe.block_size > context:
        raise ConfigError(f"The recipe's block_size={recipe.block_size} exceeds the model's "
                          f"context of {context} tokens.")
    blocks = _training_blocks(tokenizer, texts, recipe.block_size)
    if not blocks:
        raise DataError("No text to train the language model on: 'texts' is empty or every "
                        "text is empty.")
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    opt = _optimizer(recipe, model)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    n = len(blocks)
    steps = recipe.epochs * math.ceil(n / recipe.batch_size)
    rng_devices = [dev.index or 0] if dev.type == "cuda" else []
    model.train()
    with torch.random.fork_rng(devices=rng_devices), \
            _progress_bar(progress, "Training language model", steps) as bar:
        torch.manual_seed(int(seed) + 2)  # dropout
        for _ in range(recipe.epochs):
            order = torch.randperm(n, generator=gen).tolist()
            for start in range(0, n, recipe.batch_size):
                batch = [blocks[i] for i in order[start : start + recipe.batch_size]]
                width = max(len(b) for b in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, block in enumerate(batch):
                    row = torch.as_tensor(block)
                    ids[r, : len(block)] = row
                    labels[r, : len(block)] = row
                    mask[r, : len(block)] = 1
                ids, labels, mask = ids.to(dev), labels.to(dev), mask.to(dev)
                opt.zero_grad(set_to_none=True)
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                    labels[:, 1:].reshape(-1), ignore_index=-100)
                loss.backward()
                opt.step()
                if bar is not None:
                    bar.advance(bar.task_ids[0])
    model.eval()
    if key is not None:
        store_lm_state(cache, key, model, {"recipe": recipe.describe(), "seed": int(seed),
                                           "n_texts": len(texts)})
    return model


def pretrain_base(recipe: LMRecipe, tokenizer, texts: list[str], *, seed: int,
                  device: str = "cpu", progress: bool = False,
                  cache: ModelCache | None = None):
    """The base model of a fine-tuning recipe: trained from scratch on ``texts`` (the
    set-aside public corpus) for ``recipe.base_epochs`` epochs at ``recipe.base_lr``,
    every weight."""
    base = dataclasses.replace(recipe, epochs=recipe.base_epochs, lr=recipe.base_lr,
                               finetune="none")
    return finetune_lm(base, tokenizer, texts, seed=seed, device=device, progress=progress,
                       cache=cache)


def is_adapter(model) -> bool:
    """Whether ``model`` is a ``peft`` model (a base with an adapter)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def lora_wrap(model, recipe: LMRecipe, *, seed: int):
    """``model`` (changed in place) with a fresh LoRA adapter of the recipe's rank and scale
    on every linear layer of its blocks (not the output head); only the adapter trains.
    The adapter's random initial weights come from ``seed`` alone."""
    torch = _torch()
    peft = _peft()
    config = peft.LoraConfig(r=recipe.lora_rank, lora_alpha=recipe.lora_alpha,
                             target_modules="all-linear", lora_dropout=0.0, bias="none",
                             task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # GPT-2's Conv1D layers store weights transposed; peft says so, then copes.
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        torch.manual_seed(int(seed) + 3)
        try:
            return peft.get_peft_model(model, config)
        except ValueError as exc:
            raise ConfigError(f"Cannot put a LoRA adapter on this model: {exc}") from None


def save_lm(model, tokenizer, path: str | Path, *, base: str | Path | None = None) -> Path:
    """Write ``model`` (safetensors) and ``tokenizer`` to the folder ``path``.

    :func:`load_causal_lm` and ``from_pretrained(path, local_files_only=True)`` read it back.
    A LoRA model (:func:`finetune_lm` with ``finetune="lora"``) writes its adapter only
    (``adapter_config.json``, ``adapter_model.safetensors``), which names ``base`` (the
    base model's folder, required then) as its base model.

    Returns
    -------
    Path
        The folder.
    """
    _transformers()
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"Cannot save the language model to '{path}': it is a file, not a "
                        "folder.")
    if is_adapter(model):
        if base is None:
            raise ConfigError("A LoRA model is saved as an adapter that names its base model: "
                              "give base=FOLDER (where the base model was saved).")
        for config in model.peft_config.values():
            config.base_model_name_or_path = str(Path(base).expanduser().resolve())
    folder.mkdir(parents=True, exist_ok=True)
    options = inspect.signature(model.save_pretrained).parameters
    kwargs = {"safe_serialization": True} if "safe_serialization" in options else {}
    with _quiet_transformers():
        model.save_pretrained(str(folder), **kwargs)
        tokenizer.save_pretrained(str(folder))
    if not any(folder.glob("*.safetensors")):
        raise DataError(f"Saving the model to '{path}' wrote no safetensors weights.")
    return folder
