"""Trained language models kept in the model cache: a re-run trains nothing and gives the
same numbers; anything that changes the weights changes the key; damaged entries retrain.
Also: the passes that read only the texts' own log-probabilities skip the distribution."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("transformers")

import torch

import miaudit.targets.lm as targets_lm
import miaudit.training.lm as training_lm
from miaudit.audits.lm import audit_lm
from miaudit.errors import MiauditWarning
from miaudit.targets.score_cache import TokenScoreCache, state_digest
from miaudit.training.cache import ModelCache, cache_usage, prune_cache
from miaudit.training.lm import LMRecipe, finetune_lm, train_tokenizer
from miaudit.training.lm_cache import lm_training_key

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "block_size": 64,
        "vocab_size": 300, "epochs": 3, "batch_size": 8, "lr": 3e-3}
WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle")


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(5, 9))) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(_texts(40, 1), vocab_size=300)


def _no_training(monkeypatch):
    """Make any training step fail: what follows must come from the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was trained although it was cached")
    monkeypatch.setattr(training_lm, "_optimizer", refuse)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(bool((sa[k] == sb[k]).all()) for k in sa)


@pytest.mark.parametrize("finetune", ["none", "full", "lora"])
def test_a_cached_model_comes_back_bit_identical_without_training(tmp_path, tokenizer,
                                                                  monkeypatch, finetune):
    recipe = LMRecipe(**TINY, finetune=finetune)
    cache = ModelCache(tmp_path)
    base = None if finetune == "none" else finetune_lm(
        LMRecipe(**TINY), tokenizer, _texts(20, 2), seed=5)
    base_before = None if base is None else state_digest(base)
    first = finetune_lm(recipe, tokenizer, _texts(30, 3), seed=0, model=base, cache=cache)
    assert cache_usage(tmp_path).counts["entries"] == 1
    _no_training(monkeypatch)
    again = finetune_lm(recipe, tokenizer, _texts(30, 3), seed=0, model=base, cache=cache)
    assert _same_weights(first, again)
    assert not again.training  # returned in evaluation mode, as after training
    if base is not None:
        assert state_digest(base) == base_before  # the base is copied, never changed
    if finetune == "lora":  # the adapter structure is rebuilt, not merged away
        assert training_lm.is_adapter(again)


def test_anything_that_changes_the_weights_changes_the_key(tokenizer):
    texts = _texts(10, 4)
    recipe = LMRecipe(**TINY).to_dict()
    key = {"recipe": recipe, "tokenizer": "v", "texts": texts, "seed": 0, "device": "cpu",
           "start": None}
    ref = lm_training_key(**key)
    assert lm_training_key(**key) == ref  # deterministic
    changed = [{"recipe": {**recipe, "epochs": 4}}, {"tokenizer": "w"},
               {"texts": texts[::-1]}, {"texts": texts[:-1]}, {"seed": 1},
               {"device": "cuda:0"}, {"start": "0" * 64},
               # the texts' boundaries count, not only their concatenation
               {"texts": ["ab", "c", *texts[2:]]}]
    keys = {lm_training_key(**{**key, "texts": ["a", "bc", *texts[2:]]})}
    for change in changed:
        keys.add(lm_training_key(**{**key, **change}))
    assert ref not in keys and len(keys) == len(changed) + 1


def test_a_damaged_entry_is_set_aside_and_the_model_trained_again(tmp_path, tokenizer):
    recipe = LMRecipe(**TINY)
    cache = ModelCache(tmp_path)
    first = finetune_lm(recipe, tokenizer, _texts(20, 5), seed=0, cache=cache)
    (entry,) = [p for p in tmp_path.glob("*/*") if (p / "meta.json").exists()]
    weights = entry / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.warns(MiauditWarning, match="damaged.*trained again"):
        again = finetune_lm(recipe, tokenizer, _texts(20, 5), seed=0, cache=cache)
    assert _same_weights(first, again)  # retrained, deterministically
    usage = cache_usage(tmp_path)
    assert usage.counts["damaged"] == 1 and usage.counts["entries"] == 1


def test_an_audit_rerun_trains_nothing_and_gives_the_same_numbers(tmp_path, monkeypatch):
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": _texts(60, 6)}).to_csv(path, index=False)
    settings = {"data": path, "recipe": {**TINY, "finetune": "full", "base_epochs": 2},
                "references": 2, "canaries": 1, "seed": 0, "cache_dir": tmp_path / "cache"}
    first = audit_lm(**settings)
    # base, target and two references
    assert cache_usage(tmp_path / "cache").counts["entries"] == 4
    _no_training(monkeypatch)
    stored = []
    real_store = TokenScoreCache.store
    monkeypatch.setattr(TokenScoreCache, "store",
                        lambda self, key, scores: stored.append(key) or real_store(
                            self, key, scores))
    again = audit_lm(**settings)
    assert stored == []  # every token score came from the cache too
    pd.testing.assert_frame_equal(first.scores, again.scores)
    a, b = first.summary(), again.summary()
    assert {n: m["auc"] for n, m in a["attacks"].items()} == {
        n: m["auc"] for n, m in b["attacks"].items()}
    assert a["canaries"] == b["canaries"]


def test_without_the_cache_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("MIAUDIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": _texts(30, 7)}).to_csv(path, index=False)
    audit_lm(data=path, recipe=TINY, attacks=["lm-loss"], seed=0, cache=False)
    assert not (tmp_path / "cache").exists()
    audit_lm(data=path, recipe=TINY, attacks=["lm-loss"], seed=0)  # default: $MIAUDIT_CACHE
    assert cache_usage(tmp_path / "cache").counts["entries"] == 1


def test_only_the_targets_own_pass_computes_the_distribution(tmp_path, monkeypatch):
    calls = []
    real = targets_lm.token_scores

    def spy(*args, distribution=True, **kwargs):
        calls.append(distribution)
        return real(*args, distribution=distribution, **kwargs)

    monkeypatch.setattr(targets_lm, "token_scores", spy)
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": _texts(40, 8)}).to_csv(path, index=False)
    result = audit_lm(data=path, recipe={**TINY, "finetune": "full", "base_epochs": 1},
                      attacks=["min-k++", "lowercase", "recall", "reference"], seed=0,
                      cache=False)
    assert set(result.summary()["attacks"]) == {"min-k++", "lowercase", "recall",
                                                "reference"}
    # the target's pass (Min-K%++ reads its distribution), then lowercase, the reference
    # (the base) and ReCaLL's conditioned pass, which read only the texts' log-probabilities
    assert calls == [True, False, False, False]


# ------------------------------------------------------------------ token scores on disk


@pytest.fixture(scope="module")
def small_model(tokenizer):
    return finetune_lm(LMRecipe(**TINY), tokenizer, _texts(20, 9), seed=1)


def _equal(a, b) -> bool:
    """Every field of two TokenScores equal exactly (both None, or the same arrays)."""
    for x, y in ((a.logprobs, b.logprobs), (a.mean, b.mean), (a.std, b.std),
                 (a.token_ids, b.token_ids)):
        if (x is None) != (y is None):
            return False
        if x is not None and (len(x) != len(y) or not all(
                np.array_equal(p, q) and p.dtype == q.dtype
                for p, q in zip(x, y, strict=True))):
            return False
    return True


@pytest.mark.parametrize("distribution", [True, False])
@pytest.mark.parametrize("prefix", [None, "harbor lamp"])
def test_cached_token_scores_equal_fresh_ones_and_skip_the_model(tmp_path, tokenizer,
                                                                 small_model, distribution,
                                                                 prefix):
    texts = [*_texts(12, 10), "", "x"]  # an empty text and a one-byte one too
    # a window of 16 tokens: the longer texts are scored with sliding windows
    settings = {"distribution": distribution, "max_length": 16, "stride": 8}
    fresh = targets_lm.CausalLMTarget(small_model, tokenizer, **settings).token_scores(
        texts, prefix=prefix)
    cached = targets_lm.CausalLMTarget(small_model, tokenizer, **settings,
                                       cache=TokenScoreCache(tmp_path))
    first = cached.token_scores(texts, prefix=prefix)
    assert _equal(first, fresh)
    assert len(list(tmp_path.rglob("*.npz"))) == 1

    class Refuse(torch.nn.Module):  # the same weights, but calling it fails
        def __init__(self, model):
            super().__init__()
            self.inner = model

        def state_dict(self, *args, **kwargs):
            return self.inner.state_dict(*args, **kwargs)

        def forward(self, *args, **kwargs):
            raise AssertionError("the model was run although its scores were stored")

        @property
        def config(self):
            return self.inner.config

    again = dataclasses.replace(cached, model=Refuse(small_model)).token_scores(
        texts, prefix=prefix)
    assert _equal(again, fresh)


def test_anything_that_changes_the_scores_misses_the_cache(tmp_path, tokenizer, small_model):
    cache = TokenScoreCache(tmp_path)
    target = targets_lm.CausalLMTarget(small_model, tokenizer, cache=cache)
    texts = _texts(6, 11)
    target.token_scores(texts)
    other = copy.deepcopy(small_model)
    with torch.no_grad():
        next(other.parameters())[0, 0] += 1e-3
    calls = [lambda: target.token_scores(texts[:-1]),
             lambda: target.token_scores(texts[::-1]),
             lambda: target.token_scores(texts, prefix="lamp"),
             lambda: dataclasses.replace(target, distribution=False).token_scores(texts),
             lambda: dataclasses.replace(target, max_length=16).token_scores(texts),
             lambda: dataclasses.replace(target, batch_size=3).token_scores(texts),
             lambda: dataclasses.replace(target, model=other).token_scores(texts)]
    for n, call in enumerate(calls, start=2):
        call()
        assert len(list(tmp_path.rglob("*.npz"))) == n
    target.token_scores(texts)  # a hit: nothing new
    assert len(list(tmp_path.rglob("*.npz"))) == len(calls) + 1


def test_a_damaged_score_file_is_scored_again_and_replaced(tmp_path, tokenizer, small_model):
    target = targets_lm.CausalLMTarget(small_model, tokenizer, cache=TokenScoreCache(tmp_path))
    texts = _texts(5, 12)
    fresh = target.token_scores(texts)
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(b"not an npz file")
    assert _equal(target.token_scores(texts), fresh)
    assert _equal(target.token_scores(texts), fresh)  # the file was rewritten
    assert path.read_bytes()[:2] == b"PK"


def test_run_lm_uses_the_cache_folder_it_is_given_or_none(tmp_path):
    from typer.testing import CliRunner

    from miaudit.cli import app

    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": _texts(30, 13)}).to_csv(path, index=False)
    recipe = [x for k, v in TINY.items() for x in ("-p", f"{k}={v}")]
    common = ["run-lm", "--data", str(path), *recipe, "--attacks", "lm-loss", "--overwrite"]
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "a"), "--cache-dir",
                                   str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    usage = cache_usage(tmp_path / "cache")
    assert usage.counts["entries"] == 1 and usage.counts["scores"] == 1  # model, scores
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "b"), "--cache-dir",
                                   str(tmp_path / "none"), "--no-cache"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "none").exists()


def test_token_scores_are_counted_and_pruned_with_the_cache(tmp_path, tokenizer, small_model):
    target = targets_lm.CausalLMTarget(small_model, tokenizer, cache=TokenScoreCache(tmp_path))
    target.token_scores(_texts(4, 14))
    (path,) = tmp_path.rglob("*.npz")
    (path.parent / f".{path.stem[:12]}.tmp-x.npz").write_bytes(b"killed mid-write")
    usage = cache_usage(tmp_path)
    assert usage.counts["scores"] == 1 and usage.counts["temporary"] == 1
    assert usage.counts["other"] == 0
    now = path.stat().st_mtime
    assert prune_cache(tmp_path, older_than_days=1, now=now + 3600).counts["scores"] == 0
    removed = prune_cache(tmp_path, older_than_days=1, now=now + 2 * 86400)
    assert removed.counts["scores"] == 1 and removed.counts["temporary"] == 1
    assert not list(tmp_path.rglob("*.npz"))
