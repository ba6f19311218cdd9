"""Causal language models: token statistics, sliding windows, the tiny GPT-2 recipe, loading."""

from __future__ import annotations

import random
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from sklearn.metrics import roc_auc_score  # noqa: E402

from miaudit.errors import ConfigError, DataError, DependencyError  # noqa: E402
from miaudit.signals.tokens import TokenScores  # noqa: E402
from miaudit.targets.lm import (  # noqa: E402
    CausalLMTarget,
    TokenLogProbs,
    load_causal_lm,
    sliding_windows,
    token_scores,
)
from miaudit.training.lm import (  # noqa: E402
    LMRecipe,
    build_lm,
    finetune_lm,
    save_lm,
    tokenizer_fingerprint,
    train_tokenizer,
)

ADJ = ["red", "big", "small", "old", "young", "quiet", "loud", "happy", "sad", "green", "blue",
       "dark", "bright", "soft"]
NOUN = ["cat", "dog", "bird", "fish", "horse", "mouse", "lion", "tiger", "bear", "wolf", "fox",
        "owl", "frog", "duck"]
VERB = ["sees", "chases", "likes", "finds", "meets", "follows", "hears", "watches", "helps",
        "calls"]
PLACE = ["park", "garden", "house", "forest", "river", "city", "field", "market", "school",
         "barn"]

#: Small enough to train in about a second on one core, large enough to memorise 50 texts.
TINY = LMRecipe(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=300, epochs=30,
                batch_size=8, lr=3e-3, block_size=32)


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"the {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} a {rng.choice(ADJ)} "
            f"{rng.choice(NOUN)} in the {rng.choice(PLACE)}" for _ in range(n)]


@pytest.fixture(scope="module")
def texts():
    return sentences(100)


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer, texts):
    """Trained on the first 50 texts (the members)."""
    return finetune_lm(TINY, tokenizer, texts[:50], seed=0)


def n_ids(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def assert_scores_close(a: TokenScores, b: TokenScores, atol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for name in ("logprobs", "mean", "std"):
        xs, ys = getattr(a, name), getattr(b, name)
        assert (xs is None) == (ys is None)
        for x, y in zip(xs or [], ys or [], strict=True):
            assert x.shape == y.shape
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def test_members_get_higher_log_probability(model, tokenizer, texts):
    scores = token_scores(model, tokenizer, texts, batch_size=16)
    mean_lp = -scores.nll()
    member = np.r_[np.ones(50), np.zeros(50)]
    assert mean_lp[:50].mean() - mean_lp[50:].mean() > 0
    assert roc_auc_score(member, mean_lp) > 0.7


def test_every_token_is_predicted_after_the_bos(model, tokenizer, texts):
    scores = token_scores(model, tokenizer, [*texts[:3], ""], distribution=False)
    assert scores.mean is None and scores.std is None
    assert list(scores.n_tokens) == [n_ids(tokenizer, t) for t in texts[:3]] + [0]
    assert all(np.all(lp < 0) and lp.dtype == np.float64 for lp in scores.logprobs[:3])


def test_a_prefix_conditions_every_token_of_the_text(model, tokenizer, texts):
    """ReCaLL's conditioned scores: the text's own tokens after BOS + prefix, equal to one
    forward pass over the concatenated ids done by hand."""
    prefix = "a quiet river\n\n"  # short: BOS + prefix + text fit the 32-token context
    short = [" ".join(t.split()[:3]) for t in texts[:3]]
    scores = token_scores(model, tokenizer, short, prefix=prefix)
    plain = token_scores(model, tokenizer, short)
    assert list(scores.n_tokens) == list(plain.n_tokens)
    for i, text in enumerate(short):
        head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([[tokenizer.bos_token_id or tokenizer.eos_token_id, *head, *body]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        at = torch.arange(ids.shape[1] - len(body) - 1, ids.shape[1] - 1)
        expected = logp[at, ids[0, at + 1]].double().numpy()
        np.testing.assert_allclose(scores.logprobs[i], expected, atol=1e-5)
        np.testing.assert_array_equal(scores.token_ids[i], body)
        assert not np.allclose(scores.logprobs[i][0], plain.logprobs[i][0])


def test_tokenizer_without_bos_or_eos_scores_from_the_second_token(model, tokenizer, texts):
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    assert bare.bos_token_id is None and bare.eos_token_id is None
    scores = token_scores(model, bare, texts[:3])
    assert list(scores.n_tokens) == [n_ids(tokenizer, t) - 1 for t in texts[:3]]


def test_batched_equals_one_by_one(model, tokenizer, texts):
    # Varied lengths so that batches are padded, plus an empty and a one-word text.
    docs = [texts[0], texts[1] + " " + texts[2], "cat", "", texts[3][:20], texts[4]]
    one = token_scores(model, tokenizer, docs, batch_size=1)
    many = token_scores(model, tokenizer, docs, batch_size=4)
    assert_scores_close(one, many)
    assert list(one.n_tokens) == [n_ids(tokenizer, d) for d in docs]


def test_window_that_fits_equals_full_context(model, tokenizer, texts):
    fitting = [t for t in texts[:10] if n_ids(tokenizer, t) + 1 <= 28]
    assert fitting
    full = token_scores(model, tokenizer, fitting)
    windowed = token_scores(model, tokenizer, fitting, max_length=28, stride=5)
    assert_scores_close(full, windowed, atol=0)


def test_long_text_is_scored_once_per_token(model, tokenizer, texts):
    long = " ".join(texts[:4])  # about 95 tokens, over the 32-token context
    ids = [tokenizer.bos_token_id, *tokenizer(long, add_special_tokens=False)["input_ids"]]
    assert len(ids) > 2 * TINY.n_positions
    scores = token_scores(model, tokenizer, [long, texts[5]], max_length=16, stride=5)
    assert scores.n_tokens[0] == len(ids) - 1
    assert np.isfinite(scores.logprobs[0]).all()
    # Batching does not change which window scores a token.
    alone = token_scores(model, tokenizer, [long], max_length=16, stride=5, batch_size=1)
    assert_scores_close(alone, TokenScores(scores.logprobs[:1], scores.mean[:1],
                                           scores.std[:1]))
    # First window: the first 15 tokens from the full prefix; last window: the last tokens
    # from the 16 tokens that end the text.
    with torch.no_grad():
        head = torch.log_softmax(model(torch.tensor([ids[:16]])).logits[0].float(), -1)
        tail = torch.log_softmax(model(torch.tensor([ids[-16:]])).logits[0].float(), -1)
    head_lp = head[torch.arange(15), torch.tensor(ids[1:16])].double().numpy()
    np.testing.assert_allclose(scores.logprobs[0][:15], head_lp, atol=1e-5)
    np.testing.assert_allclose(scores.logprobs[0][-1], float(tail[-2, ids[-1]]), atol=1e-5)
    # Default window: the model's context, with half of it as stride.
    default = token_scores(model, tokenizer, [long])
    assert default.n_tokens[0] == len(ids) - 1


@pytest.mark.parametrize("window,stride", [(2, 1), (4, 2), (4, 3), (8, 1), (16, 5), (32, 16)])
def test_sliding_windows_cover_each_position_once(window, stride):
    for n in range(0, 70):
        hits = np.zeros(n, dtype=int)
        for begin, end, first in sliding_windows(n, window, stride):
            assert begin >= 0 and end <= n and end - begin <= window and first >= 1
            for t in range(begin + first, end):
                hits[t] += 1
                assert t - begin >= min(t, window - stride)  # context of the token
        assert hits[:1].sum() == 0 and (hits[1:] == 1).all()


def test_distribution_mean_and_std_match_the_full_softmax(model, tokenizer, texts):
    text = texts[7]
    scores = token_scores(model, tokenizer, [text])
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    t = 5  # predicting ids[t] from ids[:t]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, t - 1].double()
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    mean = float((p * logp).sum())
    std = float((p * (logp - mean) ** 2).sum().sqrt())
    assert scores.logprobs[0][t - 1] == pytest.approx(float(logp[ids[t]]), abs=1e-5)
    assert scores.mean[0][t - 1] == pytest.approx(mean, abs=1e-5)
    assert scores.std[0][t - 1] == pytest.approx(std, abs=1e-5)


def test_save_and_load_round_trip(model, tokenizer, texts, tmp_path):
    folder = save_lm(model, tokenizer, tmp_path / "lm")
    assert (folder / "model.safetensors").is_file()
    loaded, tok = load_causal_lm(folder)
    assert not loaded.training
    assert tok(texts[0], add_special_tokens=False)["input_ids"] == \
        tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 0, 1)
    before = token_scores(model, tokenizer, texts[:6])
    assert_scores_close(before, token_scores(loaded, tok, texts[:6]), atol=0)
    target = CausalLMTarget.load(folder, batch_size=2)
    assert isinstance(target, TokenLogProbs)
    assert_scores_close(before, target.token_scores(texts[:6]), atol=1e-6)


def test_load_errors_are_clear(model, tokenizer, tmp_path):
    folder = save_lm(model, tokenizer, tmp_path / "lm")
    with pytest.raises(DataError, match="does not exist") as missing:
        load_causal_lm(tmp_path / "nowhere")
    assert "Hub" not in str(missing.value)  # a path, not a model name
    for name in ("gpt2", "EleutherAI/pythia-70m"):  # a Hub name: say what to do, one line
        with pytest.raises(DataError, match="does not download models.*huggingface-cli "
                                            f"download {name} --local-dir DIR") as hub:
            load_causal_lm(name)
        assert "\n" not in str(hub.value)
    with pytest.raises(DataError, match="not a folder"):
        load_causal_lm(folder / "config.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no config\.json"):
        load_causal_lm(empty)
    shutil.copy(folder / "config.json", empty)
    with pytest.raises(DataError, match="no model weights"):
        load_causal_lm(empty)
    (empty / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(DataError, match="safetensors only"):
        load_causal_lm(empty)
    (empty / "pytorch_model.bin").unlink()
    shutil.copy(folder / "model.safetensors", empty)
    with pytest.raises(DataError, match="no tokenizer files"):
        load_causal_lm(empty)
    (empty / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="Cannot load the language model"):
        load_causal_lm(empty)


def test_missing_transformers_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(DependencyError, match=r"miaudit\[lm\]"):
        load_causal_lm(tmp_path)


def test_bad_settings_are_refused(model, tokenizer, texts):
    with pytest.raises(DataError, match="wrap it in a list"):
        token_scores(model, tokenizer, texts[0])
    with pytest.raises(ConfigError, match="exceeds the model's context"):
        token_scores(model, tokenizer, texts[:1], max_length=64)
    with pytest.raises(ConfigError, match="'stride'"):
        token_scores(model, tokenizer, texts[:1], max_length=8, stride=8)
    with pytest.raises(ConfigError, match="n_embd must be a multiple of n_head"):
        LMRecipe(n_embd=30, n_head=4)
    with pytest.raises(ConfigError, match="block_size"):
        LMRecipe(block_size=256)
    with pytest.raises(ConfigError, match="'vocab_size' must be >= 258"):
        train_tokenizer(texts, vocab_size=256)
    with pytest.raises(ConfigError, match="more than the recipe's vocab_size"):
        build_lm(LMRecipe(vocab_size=260), tokenizer)


def test_recipe_describes_itself():
    recipe = LMRecipe(seed=3)
    assert recipe.to_dict()["n_layer"] == 2 and recipe.to_dict()["seed"] == 3
    assert "2 layers" in recipe.describe() and "lr=0.001" in recipe.describe()


def test_recipe_sets_aside_a_share_or_a_count_for_the_tokenizer():
    assert LMRecipe().tokenizer_texts == 0.1
    assert LMRecipe().tokenizer_count(80) == 8 and LMRecipe().tokenizer_count(3) == 1
    assert LMRecipe(tokenizer_texts=5).tokenizer_count(80) == 5
    assert LMRecipe(tokenizer_texts=5.0).tokenizer_count(80) == 5
    for bad in (0, -1, 1.5, float("nan"), True, "0.1"):
        with pytest.raises(ConfigError, match="tokenizer_texts must be a share"):
            LMRecipe(tokenizer_texts=bad)
    with pytest.raises(ConfigError, match="leaving fewer than two for the audit"):
        LMRecipe(tokenizer_texts=9).tokenizer_count(10)


def test_tokenizer_fingerprint_names_the_vocabulary(tokenizer, texts):
    again = train_tokenizer(texts, vocab_size=300)
    other = train_tokenizer(texts[:50], vocab_size=300)
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(tokenizer)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)


def test_finetuning_is_deterministic_for_a_seed(tokenizer, texts):
    recipe = LMRecipe(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=300,
                      epochs=2, batch_size=8, block_size=32, dropout=0.1)
    runs = [finetune_lm(recipe, tokenizer, texts[:24], seed=s) for s in (5, 5, 6)]
    states = [m.state_dict() for m in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_continued_training_leaves_the_given_model_unchanged(model, tokenizer, texts):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = LMRecipe(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=300,
                      epochs=1, batch_size=8, block_size=32)
    tuned = finetune_lm(recipe, tokenizer, texts[50:60], seed=1, model=model)
    assert tuned is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in tuned.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(model, tokenizer, texts):
    import copy

    on_gpu = copy.deepcopy(model).to("cuda")
    cpu = token_scores(model, tokenizer, texts[:8])
    gpu = token_scores(on_gpu, tokenizer, texts[:8], device="cuda")
    assert_scores_close(cpu, gpu, atol=1e-3)
    tuned = finetune_lm(TINY, tokenizer, texts[:8], seed=0, device="cuda")
    assert next(tuned.parameters()).device.type == "cuda"
