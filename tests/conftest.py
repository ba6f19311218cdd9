"""Shared fixtures: paths to the benchmark data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The default suite draws the same examples on every run (a red CI run is a real change,
# never a lucky draw); HYPOTHESIS_PROFILE=explore draws new ones, ten times as many, to
# look for inputs that escape (add each one found as an @example).
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory):
    """The CLI caches models under $MIAUDIT_CACHE: keep the tests' models out of ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIAUDIT_CACHE", str(tmp_path_factory.mktemp("model-cache")))
    # and the runs they record out of the user's registry
    mp.setenv("MIAUDIT_REGISTRY", f"sqlite:///{tmp_path_factory.mktemp('registry')}/r.db")
    yield
    mp.undo()


@pytest.fixture
def shared_file():
    """A function giving the path of a file in ../shared/data; the test skips when absent."""

    def find(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.skip(f"../shared/data/{name} not found: shared benchmark data absent")
        return path

    return find


#: The tiny GPT-2 that memorises its members, shared by the extraction and SaMIA tests.
MEMORISED_LM = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 16,
                "vocab_size": 400, "epochs": 60, "batch_size": 4, "lr": 3e-3,
                "block_size": 16}
_WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
          "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle",
          "meadow")


@pytest.fixture(scope="session")
def memorised_lm():
    """60 texts of 12 random words (a continuation is unpredictable unless memorised), a
    tokenizer with whole-word tokens, a tiny GPT-2 trained 60 epochs on the first 12
    (members) and an untrained one; torch on one thread while it trains (tiny models run
    fastest so, and far faster on a loaded machine)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import types

    import numpy as np

    from miaudit.targets.lm import CausalLMTarget
    from miaudit.training.lm import LMRecipe, build_lm, finetune_lm, train_tokenizer

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(_WORDS, size=12)) for _ in range(60)]
    member = np.arange(60) < 12
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenizer = train_tokenizer(texts, vocab_size=400)
        recipe = LMRecipe(**MEMORISED_LM)
        model = finetune_lm(recipe, tokenizer,
                            [t for t, m in zip(texts, member, strict=True) if m], seed=0)
    finally:
        torch.set_num_threads(threads)
    return types.SimpleNamespace(
        texts=texts, member=member, tokenizer=tokenizer, recipe=recipe,
        target=CausalLMTarget(model, tokenizer, batch_size=5),
        untrained=CausalLMTarget(build_lm(recipe, tokenizer, seed=1), tokenizer))


@pytest.fixture(scope="module")
def memorised_lm_one_thread(memorised_lm):
    """:func:`memorised_lm`, queried on one torch thread in the module that asks for it
    (tiny models run fastest so, and far faster on a loaded machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield memorised_lm
    torch.set_num_threads(threads)
