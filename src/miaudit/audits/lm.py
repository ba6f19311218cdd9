"""Auditing a causal language model: :func:`audit_lm`.

The language-model counterpart of :func:`~miaudit.audits.audit`: load texts, train
the tiny recipe on a seeded half (with canaries, if asked) or take the user's model and
membership, extract per-token log-probabilities, run the language-model attacks, measure
them, and check the evaluation itself with a model-free blind baseline.

The recipe's tokenizer is trained on texts set aside from the audit
(:func:`~miaudit.data.set_aside_texts`): never on the members, whose rare words would
otherwise become single tokens and carry membership into every token-level score, and
never on the audited non-members. The target and every reference LM share it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit._version import __version__
from miaudit.attacks.blind import blind_baseline, blind_warning
from miaudit.attacks.lm import LM_ATTACKS, LMAttackInput, lira_text, resolve_lm_attacks
from miaudit.audits.verdict import audit_verdict
from miaudit.data import TextDataset, load_texts, set_aside_texts, split_texts
from miaudit.data.overlap import ngram_overlap
from miaudit.defaults import DEFAULT_FPRS, default_cache_dir
from miaudit.errors import (
    ConfigError,
    DataError,
    MembershipError,
    MiauditWarning,
    reissue_once,
    summary_warnings,
)
from miaudit.game import membership_design
from miaudit.metrics import evaluate
from miaudit.results.result import AuditResult
from miaudit.signals.tokens import TokenScores
from miaudit.targets.lm import (
    ADAPTER_CONFIG,
    CausalLMTarget,
    _context_size,
    adapter_base,
    corpus_token_frequency,
)
from miaudit.targets.sampling import sample_continuations
from miaudit.targets.score_cache import TokenScoreCache, state_digest
from miaudit.training.cache import ModelCache

#: Repetition counts given to the canaries in turn, and what a canary looks like.
CANARY_REPETITIONS = (1, 2, 4, 8, 16)
CANARY_TEMPLATE = "my PIN is {}"
CANARY_DIGITS = 6
#: The text-level LiRA attacks (reference LMs fine-tuned on random halves).
LIRA_ATTACKS = {
    "lira-online": "LiRA on -NLL with reference LMs trained with and without each text",
    "lira-offline": "LiRA on -NLL against reference LMs trained without each text",
}


def audit_lm(
    *,
    data: TextDataset | str | Path,
    text_column: str | int | Sequence | None = None,
    id_column: str | int | None = None,
    member_column: str | int | None = None,
    n_records: int | None = None,
    model: object | str | Path | None = None,
    base_model: object | str | Path | None = None,
    reference_model: object | str | Path | None = None,
    recipe: object | dict | None = None,
    references: int = 0,
    attacks: Sequence[str] | None = None,
    k: float = 0.2,
    dc_pdd_cap: float = 0.01,
    neighbours: int = 10,
    canaries: int = 0,
    extraction: bool = False,
    extraction_prefix: int = 32,
    extraction_suffix: int = 32,
    seed: int = 0,
    fprs: Sequence[float] = DEFAULT_FPRS,
    alpha: float = 0.05,
    prior: float = 0.5,
    delta: float = 1e-5,
    blind: bool = True,
    device: str = "cpu",
    batch_size: int = 8,
    max_length: int | None = None,
    stride: int | None = None,
    progress: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> AuditResult:
    """Audit a causal language model for membership-inference leakage.

    Two ways to name the target:

    * ``model=None`` (default): train the tiny GPT-2 recipe
      (:class:`~miaudit.training.lm.LMRecipe`, overridable with ``recipe``) from scratch on a
      seeded random half of the texts (or the members ``member_column`` marks), with a
      byte-level BPE tokenizer trained on texts set aside from the audit first (the
      recipe's ``tokenizer_texts``, default 10% of the loaded texts, chosen from their
      contents and ``seed`` alone; neither members nor non-members); everything offline
      on CPU.
      ``canaries=N`` inserts N secret canaries ("my PIN is 4 8 1 9 3 7") with repetition
      counts 1, 2, 4, 8, 16 into the training texts and reports each one's exposure.
      With ``recipe={"finetune": "full"}`` or ``"lora"``, a base model is pretrained on the
      set-aside texts first and the target is fine-tuned from it on the members (every
      weight, or a LoRA adapter), as teams fine-tune a released model on their own data.
    * ``model=DIR`` (a local ``save_pretrained`` folder, or a PEFT/LoRA adapter folder,
      loaded on its base) or any object with ``token_scores(texts) -> TokenScores``: an
      existing model; ``member_column`` must say which texts it was trained on.

    A fine-tuned target's base model (the recipe's, ``base_model``, or the one an adapter
    folder names) is the reference model of the ``reference`` attack unless
    ``reference_model`` is given, and the reference LMs of text LiRA are fine-tuned from it
    the same way (a LoRA adapter of the target's rank, or every weight).

    Parameters
    ----------
    data : TextDataset, str or Path
        A ``.jsonl``, ``.csv``, ``.tsv`` or ``.txt`` file (see
        :func:`~miaudit.data.text.load_texts`), or loaded texts. With the recipe, the
        tokenizer's share is set aside from these (``n_records`` counts both).
    base_model : str, Path or object, optional
        The model ``model`` was fine-tuned from (a local folder, or a
        :class:`~miaudit.targets.lm.CausalLMTarget`); default: the base an adapter folder
        names, else none.
    reference_model : str, Path or object, optional
        A second local model for the ``reference`` attack (Carlini et al. 2021); default:
        the base model, if any.
    references : int, default 0
        Reference LMs of the recipe, each trained on a seeded random half of the audited
        texts, for the text LiRA attacks, with the target's tokenizer (the one the recipe
        trained, or a model folder's): fine-tuned from the base model when there is one,
        else trained from scratch.
    attacks : list of str, optional
        Names from ``lm-loss, zlib, lowercase, reference, min-k, min-k++`` and, with
        references, ``lira-online, lira-offline``; default: all that the inputs allow.
    k : float, default 0.2
        The fraction of lowest-scoring tokens of Min-K% and Min-K%++.
    dc_pdd_cap : float, default 0.01
        DC-PDD's cap ``a`` on one token's weight (the authors' value for large models; not
        tuned: there is nothing to tune it on without reading the audited membership).
    extraction : bool, default False
        Also run the extraction test (:func:`~miaudit.audits.extraction.extraction_test`):
        prompt with each text's first ``extraction_prefix`` tokens, decode
        ``extraction_suffix`` tokens greedily, and compare how often members and
        non-members come back exactly or nearly (``summary["extraction"]``; per-text
        columns ``extraction_*`` in ``scores.parquet``). Texts shorter than prefix + suffix
        are skipped; when none is long enough, a warning says so and the audit goes on.
    neighbours : int, default 10
        Neighbour texts per text of the ``neighbour`` attack (Mattern et al. 2023):
        one-token swaps proposed by the base or reference model if there is one, else by
        the target (:func:`~miaudit.targets.neighbours.neighbour_texts`).
    blind : bool, default True
        Fit the model-free blind baseline (Duan et al. 2024; Das et al. 2024); the summary
        warns loudly when it comes close to the attacks.
    cache : bool, default True
        Keep every LM this audit trains (target, base, references) in the model cache
        (``cache_dir``, default ``$MIAUDIT_CACHE`` or ``~/.cache/miaudit``), and reuse the
        stored weights on a re-run with the same recipe, tokenizer, texts and seed
        (:mod:`miaudit.training.lm_cache`); keep the token scores of every local model
        there too (:mod:`miaudit.targets.score_cache`), so a re-run scores nothing twice.
        Same numbers either way.

    Returns
    -------
    AuditResult
        ``summary.json`` with the same layout as a classification audit (plus
        ``blind_baseline``, ``canaries`` and ``target.tokenizer``: what the tokenizer was
        trained on, how many texts, their fingerprint and the vocabulary's),
        ``scores.parquet`` with one row per audited text.
    """
    started = time.perf_counter()
    _check_settings(references=references, canaries=canaries, k=k, dc_pdd_cap=dc_pdd_cap,
                    extraction_prefix=extraction_prefix, extraction_suffix=extraction_suffix,
                    neighbours=neighbours)
    querying = {"device": device, "progress": progress, "batch_size": batch_size,
                "max_length": max_length, "stride": stride}
    trained = None if not cache else ModelCache(
        default_cache_dir() if cache_dir is None else cache_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = data if isinstance(data, TextDataset) else load_texts(
            data, text_column=text_column, id_column=id_column, member_column=member_column,
            n_records=n_records, seed=seed)
        game = _lm_game(loaded, model, base_model, recipe, references, canaries, seed,
                        querying, trained)
        game.target, game.base = _scores_cached(game.target, trained), _scores_cached(
            game.base, trained)
        overlap = ngram_overlap(game.texts, game.is_member)
        if message := overlap.warning():
            warnings.warn(message, MiauditWarning, stacklevel=2)
        ref_target = game.base if reference_model is None else _scores_cached(
            _as_lm_target(reference_model, **querying), trained)
        if ref_target is not None:
            game.info["reference_model"] = (
                "the base model" if reference_model is None else _name(reference_model))
        if extraction and getattr(game.target, "model", None) is None:
            raise ConfigError("The extraction test decodes text: it needs a local model "
                              "(a folder, or a CausalLMTarget), not a scoring object.")
        chosen, lira = _choose(attacks, reference=ref_target is not None,
                               references=references,
                               aside=game.tokenizer_ds is not None,
                               local=_is_local(game.target),
                               samples=callable(getattr(game.target, "sample_continuations",
                                                        None)),
                               distribution=getattr(game.target, "distribution", True)
                               is not False)
        if references and game.tokenizer is None:
            raise ConfigError("Reference LMs are trained with the target's tokenizer: give "
                              "a model folder, or let the tool train the target.")
        options = {"min-k": {"k": k}, "min-k++": {"k": k}, "dc-pdd": {"a": dc_pdd_cap}}
        run = _lm_scores(game, ref_target, chosen, lira, options, references, seed, querying,
                         n_neighbours=neighbours, cache=trained)
        measure = {"fprs": tuple(fprs), "alpha": alpha, "prior": prior, "delta": delta,
                   "seed": seed}
        metrics = {name: evaluate(s, game.is_member, **measure)
                   for name, s in run.scores.items()}
        blind_entry = _blind_entry(game, metrics, seed) if blind else None
        canary_info = (_canary_exposures(game.target, game.canaries, seed)
                       if game.canaries else None)
        extracted = (_extraction(game, extraction_prefix, extraction_suffix, alpha, seed)
                     if extraction else None)
    reissue_once(caught)
    _describe_target(game, run, references)
    entries = _lm_entries(metrics, options)
    exposure = _exposure(run)
    if "neighbour" in entries:
        entries["neighbour"]["options"] = {"n_neighbours": neighbours,
                                           "proposer": run.proposer}
        if run.proposer != "the target":  # the swaps come from a second model
            entries["neighbour"]["knowledge"] = ["queries", "references"]
    summary = {
        "miaudit_version": __version__,
        "task": "language model",
        "data": {"name": loaded.name, "n_records": len(loaded),
                 "fingerprint": loaded.fingerprint, "source": loaded.source,
                 **{k_: v for k_, v in loaded.info.items() if k_ not in ("n_texts",)},
                 "n_records_in_game": len(game.texts),
                 "n_tokenizer_records": 0 if game.tokenizer_ds is None
                 else len(game.tokenizer_ds),
                 "ngram_overlap": overlap.to_dict()},
        "target": game.info,
        "exposure": exposure,
        "verdict": _lm_verdict(entries, run.scores, game.is_member, fprs, alpha, exposure),
        "attacks": entries,
        "blind_baseline": blind_entry,
        "settings": {"seed": seed, "alpha": alpha, "prior": prior, "delta": delta,
                     "fprs": [float(f) for f in fprs], "k": k, "dc_pdd_cap": dc_pdd_cap,
                     "neighbours": neighbours,
                     "references": references, "canaries": canaries,
                     "extraction": bool(extraction), "extraction_prefix": extraction_prefix,
                     "extraction_suffix": extraction_suffix, **{key: querying[key] for key in (
                         "device", "batch_size", "max_length", "stride")}},
        "warnings": summary_warnings(caught),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    artifacts = {}
    if canary_info is not None:
        summary["canaries"], artifacts = canary_info
    table = _lm_table(game, run)
    if extracted is not None:
        summary["extraction"] = extracted.to_dict()
        table = pd.concat([table, extracted.table()], axis=1)
    return AuditResult(summary=summary, scores=table, metrics=metrics,
                       signals=_lm_signals(game, run), artifacts=artifacts)


def _check_settings(*, references, canaries, k, dc_pdd_cap, **whole: object) -> None:
    """:func:`audit_lm`'s numeric settings checked before anything runs; ``whole``: those
    that must be whole numbers >= 1."""
    if references < 0 or canaries < 0:
        raise ConfigError("references and canaries must be >= 0.")
    if not 0 < k <= 1:
        raise ConfigError(f"k must lie in (0, 1], got {k}.")
    for name, value in whole.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}.")
    if (isinstance(dc_pdd_cap, bool) or not isinstance(dc_pdd_cap, int | float)
            or not math.isfinite(dc_pdd_cap) or dc_pdd_cap <= 0):
        raise ConfigError(f"dc_pdd_cap must be a number > 0, got {dc_pdd_cap!r}.")


#: What a verdict of no leakage does and does not say about a language model.
NEAR_CHANCE_NOTE = (
    "No attack told members from non-members here. For a fine-tuned or small model this is "
    "evidence of little leakage at this sample size; for a large pretrained model, "
    "membership attacks on single pretraining texts are known to be near chance even where "
    "the model memorised (Duan et al. 2024), so this does not show the absence of "
    "memorisation: see the canaries, the extraction test, or dataset inference.")


def _lm_verdict(entries: dict, scores: dict, is_member: np.ndarray, fprs, alpha: float,
                exposure: str) -> dict:
    """The audit's verdict, with :data:`NEAR_CHANCE_NOTE` when it finds no leakage."""
    verdict = audit_verdict(entries, scores, is_member, exposure=exposure,
                            fprs=[str(float(f)) for f in fprs], alpha=alpha)
    if verdict.get("level") == "none":
        verdict["note"] = NEAR_CHANCE_NOTE
    return verdict


def _extraction(game: _LMGame, prefix: int, suffix: int, alpha: float, seed: int):
    """The extraction test on the audited texts, or None (with a warning) when no text is
    long enough: the audit's other figures are kept."""
    from miaudit.audits.extraction import extraction_test

    try:
        return extraction_test(game.target, game.texts, game.is_member, prefix_tokens=prefix,
                               suffix_tokens=suffix, alpha=alpha, seed=seed)
    except DataError as exc:
        warnings.warn(f"The extraction test did not run: {exc}", MiauditWarning, stacklevel=3)
        return None


@dataclass
class _LMGame:
    """The audited texts and the target: trained here (with its tokenizer, trained on
    texts set aside, and canaries) or loaded."""

    ds: TextDataset
    texts: list[str]
    is_member: np.ndarray
    target: object
    tokenizer: object | None
    recipe: object | None
    info: dict
    tokenizer_ds: TextDataset | None = None
    canaries: list = field(default_factory=list)
    base: object | None = None


@dataclass
class _LMRun:
    """Every attack's score per text, and the NLLs LiRA used."""

    scores: dict[str, np.ndarray]
    token_scores: TokenScores
    target_nll: np.ndarray
    ref_nll: np.ndarray | None = None
    ref_membership: np.ndarray | None = None
    proposer: str | None = None


def _lm_game(ds: TextDataset, model, base_model, recipe, references: int, canaries: int,
             seed: int, querying: dict, cache: ModelCache | None = None) -> _LMGame:
    """Train the target on the members (``model`` None) or load the given one."""
    lm = _lm_module()
    if model is None:
        if base_model is not None:
            raise ConfigError("A base model goes with a given model (--model); to fine-tune "
                              "the recipe, set -p finetune=full or -p finetune=lora.")
        recipe_obj = _recipe(lm, recipe)
        aside = set_aside_texts(ds, recipe_obj.tokenizer_count(len(ds)), seed=seed)
        tokenizer_ds, ds = ds.subset(aside), ds.subset(~aside)
        is_member = _membership(ds, True, seed)
        texts = list(ds.texts)
        target, tokenizer, base, canary_set = _train_target(
            lm, recipe_obj, tokenizer_ds.texts, texts, is_member, canaries, seed, cache=cache,
            **querying)
        info = {"model": "gpt2 recipe", "recipe": recipe_obj.to_dict(),
                "description": recipe_obj.describe(), "seed": seed,
                "tokenizer": _tokenizer_info(lm, tokenizer, tokenizer_ds, seed)}
        if base is not None:
            info["base_model"] = (f"gpt2 recipe pretrained {recipe_obj.base_epochs} epochs on "
                                  f"the {len(tokenizer_ds)} set-aside texts")
        return _LMGame(ds, texts, is_member, target, tokenizer, recipe_obj, info,
                       tokenizer_ds, canary_set, base)
    if canaries:
        raise ConfigError("Canaries are inserted into training text: they need the "
                          "tool to train the model (leave --model out).")
    is_member = _membership(ds, False, seed)
    adapter = _adapter_info(model)
    if base_model is None and adapter is not None:
        base_model = adapter_base(model)
    target = _as_lm_target(model, base=base_model, **querying)
    base = None if base_model is None else _as_lm_target(base_model, **querying)
    tokenizer = getattr(target, "tokenizer", None)
    info = {"model": _name(model), "seed": None,
            "tokenizer": _tokenizer_info(lm, tokenizer, None, None)}
    if adapter is not None:
        info["adapter"] = adapter
    if base is not None:
        info["base_model"] = _name(base_model)
    return _LMGame(ds, list(ds.texts), is_member, target, tokenizer,
                   _reference_recipe(lm, recipe, base, adapter) if references else None,
                   info, base=base)


def _name(model) -> str:
    """How summary.json names a model: its folder, its endpoint, or its type."""
    if isinstance(model, str | Path):
        return str(model)
    return getattr(model, "endpoint", None) or type(model).__name__


def _adapter_info(model) -> dict | None:
    """What an adapter folder's config says of the adapter (None for a whole model)."""
    if not isinstance(model, str | Path):
        return None
    path = Path(model).expanduser() / ADAPTER_CONFIG
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read the adapter's {ADAPTER_CONFIG} in '{model}': {exc}") \
            from None
    return {key: config.get(key) for key in ("peft_type", "r", "lora_alpha", "target_modules")
            if config.get(key) is not None}


def _reference_recipe(lm, recipe, base, adapter: dict | None):
    """The recipe that trains the reference LMs of a given model: fine-tuned from its base
    as the target was (a LoRA adapter of the same rank and scale, or every weight) unless
    the recipe says otherwise, in blocks no longer than the base's context; from scratch
    without a base."""
    given = recipe if isinstance(recipe, dict) else {}  # what the user set explicitly
    recipe_obj = _recipe(lm, recipe)
    if base is None:
        if recipe_obj.finetune != "none":
            raise ConfigError(f"finetune={recipe_obj.finetune!r} fine-tunes reference LMs "
                              "from the target's base model: give it (--base-model DIR).")
        return recipe_obj
    if not callable(getattr(base, "model", None)):
        raise ConfigError("Reference LMs are fine-tuned from the base model: give it as a "
                          "local folder (or a CausalLMTarget), not a scoring object.")
    if isinstance(recipe, lm.LMRecipe):
        return recipe_obj
    context = _context_size(base.model)
    if "block_size" not in given and context is not None and context < recipe_obj.block_size:
        recipe_obj = dataclasses.replace(recipe_obj, block_size=context)
    if "finetune" in given:
        return recipe_obj
    if adapter and adapter.get("peft_type") == "LORA":
        return dataclasses.replace(recipe_obj, finetune="lora",
                                   lora_rank=int(adapter.get("r", recipe_obj.lora_rank)),
                                   lora_alpha=float(adapter.get("lora_alpha",
                                                                recipe_obj.lora_alpha)))
    return dataclasses.replace(recipe_obj, finetune="full")


#: Non-member texts put before each text by ReCaLL (Xie et al. use a few "shots").
RECALL_SHOTS = 3


def recall_prefix(aside: TextDataset, seed: int) -> str:
    """ReCaLL's prefix: :data:`RECALL_SHOTS` of the texts set aside for the tokenizer
    (non-members, never audited), drawn by seed, one per paragraph."""
    texts = list(aside.texts)
    pick = np.random.default_rng([seed, 23]).permutation(len(texts))[:RECALL_SHOTS]
    return "\n\n".join(texts[i] for i in sorted(pick)) + "\n\n"


def _lm_scores(game: _LMGame, ref_target, chosen: list, lira: list[str], options: dict,
               references: int, seed: int, querying: dict, n_neighbours: int = 10,
               cache: ModelCache | None = None) -> _LMRun:
    """The chosen attacks' scores, and text LiRA's against reference LMs trained here."""
    texts = game.texts
    need = {n for a in chosen for n in a.needs}
    if need == {"sampling"} and not lira and not _is_local(game.target):
        # SaMIA alone through an API reads sampled text only: no token log-probability is
        # asked for (a text-only endpoint has none), so no NLL is reported
        from miaudit.attacks.samia import samia_scores

        samples = sample_continuations(game.target, texts, seed=seed)
        none = TokenScores(logprobs=[np.empty(0) for _ in texts])
        return _LMRun({a.name: samia_scores(samples, zlib=a.name == "samia-zlib")
                       for a in chosen}, none, none.nll())
    scores_target = game.target.token_scores(texts)
    proposer = None
    if "neighbours" in need:
        local_ref = _is_local(ref_target)
        proposer = ("the base model" if local_ref and ref_target is game.base else
                    "the reference model" if local_ref else "the target")
        neighbour_nll = _neighbour_nll(game.target, ref_target if local_ref else game.target,
                                       texts, n_neighbours)
    nll_only = _nll_only(game.target)  # only Min-K%++ reads the distribution, the target's
    inputs = LMAttackInput(
        texts, scores_target,
        lowercase=nll_only.token_scores([t.lower() for t in texts])
        if "lowercase" in need else None,
        reference=_nll_only(ref_target).token_scores(texts) if ref_target is not None
        else None,
        token_frequency=corpus_token_frequency(game.tokenizer, list(game.tokenizer_ds.texts))
        if "frequency" in need else None,
        conditioned=nll_only.token_scores(texts, prefix=recall_prefix(game.tokenizer_ds, seed))
        if "prefix" in need else None,
        neighbours=neighbour_nll if proposer else None,
        samples=sample_continuations(game.target, texts, seed=seed)
        if "sampling" in need else None)
    scores = {a.name: np.asarray(a.score(inputs, **options.get(a.name, {})), dtype=float)
              for a in chosen}
    run = _LMRun(scores, scores_target, scores_target.nll(), proposer=proposer)
    if references:
        run.ref_nll, run.ref_membership = _reference_nlls(
            _lm_module(), game.recipe, game.tokenizer, texts, references, seed,
            base=None if game.base is None or game.recipe.finetune == "none"
            else game.base.model, cache=cache, **querying)
        for name in lira:
            scores[name] = lira_text(run.target_nll, run.ref_nll, run.ref_membership,
                                     online=name == "lira-online")
    return run


def _blind_entry(game: _LMGame, metrics: dict, seed: int) -> dict:
    """The blind baseline (a model-free classifier of members vs non-members) beside the
    best attack, warned about when it comes close."""
    result = blind_baseline(game.texts, game.is_member, seed=seed)
    best = max(m.auc for m in metrics.values())
    message = blind_warning(result.auc, best, blind_auc_ci=result.auc_ci)
    if message:
        warnings.warn(message, MiauditWarning, stacklevel=3)
    return {"auc": float(result.auc),
            "auc_ci": [float(result.auc_ci[0]), float(result.auc_ci[1])],
            "best_attack_auc": float(best), "features": result.features, "warning": message}


def _describe_target(game: _LMGame, run: _LMRun, references: int) -> None:
    """Add the members' and non-members' counts and mean NLLs to the target's entry."""
    m, nll = game.is_member, run.target_nll
    game.info.update({"n_members": int(m.sum()), "n_non_members": int((~m).sum())})
    if not np.isnan(nll).all():  # SaMIA alone through an API reads no log-probability
        game.info.update({"member_mean_nll": float(np.nanmean(nll[m])),
                          "non_member_mean_nll": float(np.nanmean(nll[~m]))})
    if references:
        game.info["references"] = references
    if callable(getattr(game.target, "stats", None)):  # an API: what was sent, no secret
        game.info["api"] = game.target.stats()


def _lm_entries(metrics: dict, options: dict) -> dict:
    """The ``attacks`` entries of summary.json."""
    entries = {}
    for name, m in metrics.items():
        a = LM_ATTACKS.get(name)
        entries[name] = {**m.to_dict(),
                         "description": a.description if a else LIRA_ATTACKS[name],
                         "reference": a.reference if a else "Carlini et al., S&P 2022",
                         "needs": sorted(a.needs) if a else ["references"],
                         "knowledge": sorted(a.knowledge) if a else ["references"]}
        if name in options:
            entries[name]["options"] = options[name]
    return entries


def _exposure(run: _LMRun) -> str:
    """What the audit read from the model: its token log-probabilities, or (SaMIA alone
    through an API) only the text it generated."""
    return ("text (sampled continuations)" if run.token_scores.n_tokens.sum() == 0
            and not np.isfinite(run.target_nll).any() else "token log-probabilities")


def _lm_table(game: _LMGame, run: _LMRun) -> pd.DataFrame:
    """scores.parquet: one row per audited text."""
    return pd.DataFrame({
        "exposure": _exposure(run),
        "target": np.zeros(len(game.texts), dtype=np.int64),
        "record_id": game.ds.ids.astype(str), "fingerprint": game.ds.fingerprints,
        "is_member": game.is_member, "n_tokens": run.token_scores.n_tokens, **run.scores})


def _lm_signals(game: _LMGame, run: _LMRun) -> dict[str, np.ndarray]:
    """signals.npz: membership, NLLs (the target's and the references'), record IDs."""
    signals = {"membership": game.is_member[None, :], "nll": run.target_nll[None, :],
               "n_tokens": run.token_scores.n_tokens, "record_ids": game.ds.ids.astype(str)}
    if run.ref_nll is not None:
        signals["reference_nll"] = run.ref_nll
        signals["reference_membership"] = run.ref_membership
    if game.tokenizer_ds is not None:
        signals["tokenizer_record_ids"] = game.tokenizer_ds.ids.astype(str)
    return signals


def _lm_module():
    """The tiny GPT-2 recipe's module (torch and transformers load here, on first use)."""
    from miaudit.training import lm

    return lm


def _recipe(lm, recipe):
    if recipe is None:
        return lm.LMRecipe()
    if isinstance(recipe, lm.LMRecipe):
        return recipe
    if isinstance(recipe, dict):
        try:
            return lm.LMRecipe(**recipe)
        except TypeError as exc:
            raise ConfigError(f"Unknown language-model recipe parameter: {exc}.") from None
    raise ConfigError(f"recipe must be an LMRecipe or a dict, got {type(recipe).__name__}.")


def _membership(ds: TextDataset, train_mode: bool, seed: int) -> np.ndarray:
    if ds.is_member is not None:
        is_member = np.asarray(ds.is_member, dtype=bool)
    elif train_mode:
        is_member = split_texts(ds, seed=seed)
    else:
        raise MembershipError("Auditing a given model needs to know which texts it was "
                              "trained on: give --member-column (true/false per text).")
    n_mem = int(is_member.sum())
    if n_mem == 0 or n_mem == len(is_member):
        side = "members" if n_mem == 0 else "non-members"
        raise MembershipError(f"There are no {side}: an audit needs both.")
    return is_member


def _as_lm_target(model, *, device: str, progress: bool, batch_size: int,
                  max_length: int | None, stride: int | None, base=None):
    """A local model folder (or adapter folder, on ``base``) loaded as a target, or an
    object with ``token_scores``."""
    if isinstance(model, str | Path):
        if base is not None and not isinstance(base, str | Path):
            base = None  # an adapter's base must be a folder; the adapter names its own
        return CausalLMTarget.load(model, device=device, batch_size=batch_size,
                                   max_length=max_length, stride=stride, progress=progress,
                                   base=base)
    if callable(getattr(model, "token_scores", None)):
        return model
    raise ConfigError(f"Cannot audit an object of type {type(model).__name__} as a language "
                      "model: give a local model folder or an object with "
                      "token_scores(texts) -> TokenScores.")


def _is_local(target) -> bool:
    """Whether the target is a local model (it scores texts after a prefix, for ReCaLL,
    and proposes neighbour texts)."""
    return isinstance(target, CausalLMTarget)


def _scores_cached(target, cache: ModelCache | None):
    """A local ``target`` that keeps its token scores in ``cache``'s folder (any other
    target, or no cache: as it is)."""
    if cache is None or not isinstance(target, CausalLMTarget):
        return target
    return dataclasses.replace(target, cache=TokenScoreCache(
        cache.root, model=state_digest(target.model)))  # the audit never changes its models


def _nll_only(target):
    """``target`` without the next-token distribution's statistics, for a pass that reads
    only the texts' own log-probabilities (a dataclass target with a ``distribution``
    switch, as :class:`~miaudit.targets.lm.CausalLMTarget`; any other as it is)."""
    if dataclasses.is_dataclass(target) and any(
            f.name == "distribution" for f in dataclasses.fields(target)):
        return dataclasses.replace(target, distribution=False)
    return target


def _neighbour_nll(target, proposer, texts: list[str], n: int) -> np.ndarray:
    """The target's NLL on up to ``n`` neighbours of each text (NaN where fewer), the
    swaps proposed by ``proposer``."""
    from miaudit.targets.neighbours import neighbour_texts

    swaps = neighbour_texts(proposer, texts, n_neighbours=n)
    flat = [t for group in swaps for t in group]
    nll = dataclasses.replace(_nll_only(target), progress=False).token_scores(flat).nll()
    out = np.full((len(texts), n), np.nan)
    at = 0
    for i, group in enumerate(swaps):
        out[i, : len(group)] = nll[at : at + len(group)]
        at += len(group)
    return out


def _choose(names, *, reference: bool, references: int, aside: bool, local: bool,
            distribution: bool = True, samples: bool = False):
    """The attacks to run: those asked for, or every one the inputs allow. ``aside``:
    texts set aside for the tokenizer exist (corpus frequencies; with ``local``, a local
    target that scores texts after a prefix, the non-member prefix of ReCaLL). A
    ``local`` target also scores neighbour texts, and samples continuations (SaMIA, 10
    generations per text: only when asked for by name). ``distribution``: the target gives
    the next-token distribution's statistics (an API that returns only the prompt's token
    log-probabilities does not). ``samples``: the target samples continuations itself (an
    API: SaMIA, only when asked for by name)."""
    asked = [str(n).strip().lower() for n in names or []]
    sampling = (local or samples) and any(n.startswith("samia") for n in asked)
    have = ({"lowercase"} | ({"distribution"} if distribution else set())
            | ({"reference"} if reference else set())
            | ({"frequency"} if aside else set()) | ({"prefix"} if aside and local else set())
            | ({"neighbours"} if local else set()) | ({"sampling"} if sampling else set()))
    if names is None:
        lira = list(LIRA_ATTACKS) if references else []
        return resolve_lm_attacks(None, have=have), lira
    names = [n.strip().lower() for n in names]
    lira = [n for n in names if n in LIRA_ATTACKS]
    if lira and not references:
        raise ConfigError(f"The attack {lira[0]!r} needs reference LMs: add --references K "
                          "(for example --references 4).")
    rest = [n for n in names if n not in LIRA_ATTACKS]
    return (resolve_lm_attacks(rest, have=have) if rest else []), lira


def _train_target(lm, recipe, tokenizer_texts, texts, is_member, canaries, seed, device,
                  progress, batch_size, max_length, stride, cache=None):
    """The tokenizer, trained on ``tokenizer_texts`` (set aside from the audit: no member,
    no audited non-member, no canary), then the target, trained on the members: from
    scratch, or fine-tuned from a base pretrained on ``tokenizer_texts``."""
    from miaudit.signals.canary import insert_canaries, make_canaries
    tokenizer = lm.train_tokenizer(list(tokenizer_texts), vocab_size=recipe.vocab_size)
    members = [t for t, m in zip(texts, is_member, strict=True) if m]
    canary_set = []
    if canaries:
        canary_set = make_canaries(CANARY_TEMPLATE, n_digits=CANARY_DIGITS, count=canaries,
                                   repetitions=CANARY_REPETITIONS, seed=seed)
        members = insert_canaries(members, canary_set, seed=seed)
    settings = {"batch_size": batch_size, "max_length": max_length, "stride": stride,
                "device": device}
    base = None
    if recipe.finetune != "none":
        base = CausalLMTarget(lm.pretrain_base(recipe, tokenizer, list(tokenizer_texts),
                                               seed=seed + 50, device=device,
                                               progress=progress, cache=cache),
                              tokenizer, **settings)
    model = lm.finetune_lm(recipe, tokenizer, members, seed=seed, device=device,
                           progress=progress, model=None if base is None else base.model,
                           cache=cache)
    target = CausalLMTarget(model, tokenizer, progress=progress, **settings)
    return target, tokenizer, base, canary_set


def _tokenizer_info(lm, tokenizer, trained_on: TextDataset | None, seed: int | None
                    ) -> dict:
    """What ``summary.json`` says of the tokenizer: where it comes from and its vocabulary."""
    if trained_on is not None:
        info = {"trained_on": "texts set aside from the audit (neither members nor "
                              "non-members), chosen from their contents and the seed",
                "n_texts": len(trained_on), "seed": seed,
                "records_fingerprint": trained_on.fingerprint}
    elif tokenizer is not None:
        info = {"trained_on": "unknown: the given model's own tokenizer"}
    else:
        return {"trained_on": "unknown: the model object has no tokenizer attribute"}
    if callable(getattr(tokenizer, "get_vocab", None)):
        info.update(vocab_size=len(tokenizer.get_vocab()),
                    vocabulary_fingerprint=lm.tokenizer_fingerprint(tokenizer))
    return info


def _reference_nlls(lm, recipe, tokenizer, texts, k, seed, device, progress, batch_size,
                    max_length, stride, base=None, cache=None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """K reference LMs, each trained on a seeded random half of all the texts (the
    attacker's own; fine-tuned from ``base`` when given), and their per-text NLL. The
    halves come in complementary pairs (:func:`~miaudit.game.membership_design`), so with
    K >= 2 every text has references trained with and without it."""
    membership = membership_design(len(texts), k, seed=seed + 7)
    nll = np.empty((k, len(texts)))
    for j in range(k):
        train = [t for t, m in zip(texts, membership[j], strict=True) if m]
        model = lm.finetune_lm(recipe, tokenizer, train, seed=seed + 100 + j, device=device,
                               progress=progress, model=base, cache=cache)
        ref = CausalLMTarget(model, tokenizer, batch_size=batch_size, max_length=max_length,
                             stride=stride, distribution=False, device=device,
                             cache=None if cache is None else TokenScoreCache(cache.root))
        nll[j] = ref.token_scores(texts).nll()
    return nll, membership


def _canary_exposures(target, canary_set, seed):
    from miaudit.signals.canary import canary_exposure, exposure_table, plot_exposure

    if isinstance(target, CausalLMTarget):  # many small random batches: not worth storing
        target = dataclasses.replace(target, cache=None)

    def total_nll(batch: list[str]) -> np.ndarray:
        scores: TokenScores = target.token_scores(batch)
        return np.array([-lp.sum() for lp in scores.logprobs])

    results = [canary_exposure(total_nll, c, template=CANARY_TEMPLATE, n_digits=CANARY_DIGITS,
                               seed=seed + i)
               for i, c in enumerate(canary_set)]
    table = exposure_table(results)
    artifacts = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "canary_exposure.png"
            plot_exposure(results, path)
            artifacts["canary_exposure.png"] = path.read_bytes()
    except ImportError:  # plotting is optional
        pass
    rows = [{k_: (v.item() if isinstance(v, np.generic) else v) for k_, v in row.items()}
            for row in table.to_dict("records")]
    return rows, artifacts


