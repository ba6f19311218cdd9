"""SaMIA (Kaneko et al. 2024): ROUGE-1 against a brute-force count, the sampler against the
softmax it samples (chi-square) and against greedy decoding, determinism and independence
of the text order and batch size, a memorising model against an untrained one, bad input."""

from __future__ import annotations

import types
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from miaudit.attacks.samia import rouge1, samia_from_texts, samia_scores, words
from miaudit.errors import ConfigError, DataError

WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")


def _texts(n: int, seed: int = 0, words: int = 12) -> list[str]:
    """Random word sequences: a continuation is unpredictable unless memorised."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) for _ in range(n)]


# --------------------------------------------------------------------------- ROUGE-1


def _brute_recall(candidate: list, reference: list) -> float:
    """Match candidate tokens one at a time, each to an unused equal reference token."""
    if not candidate or not reference:
        return 0.0
    unused = list(reference)
    matched = 0
    for token in candidate:
        if token in unused:
            unused.remove(token)
            matched += 1
    return matched / len(reference)


@given(st.lists(st.sampled_from("abcde"), max_size=12),
       st.lists(st.sampled_from("abcdef"), max_size=12))
def test_rouge1_equals_a_brute_force_matching(candidate, reference):
    got = rouge1(candidate, reference)
    assert got == pytest.approx(_brute_recall(candidate, reference))
    assert 0.0 <= got <= 1.0
    if candidate and reference:  # the matched count is symmetric: |r| R(c, r) = |c| R(r, c)
        assert got * len(reference) == pytest.approx(rouge1(reference, candidate)
                                                     * len(candidate))


def test_rouge1_examples_and_words():
    ref = ["the", "cat", "sat", "on", "the", "mat"]
    assert rouge1(ref, ref) == 1.0
    assert rouge1(["dog", "ran"], ref) == 0.0
    assert rouge1(["the", "the", "the", "the"], ref) == pytest.approx(2 / 6)  # clipped
    assert rouge1([], ref) == 0.0 and rouge1(ref, []) == 0.0
    assert words("The  Cat\n sat.") == ["the", "cat", "sat."]
    assert words("The Cat", lowercase=False) == ["The", "Cat"]


def test_scores_are_the_mean_over_samples_and_zlib_weights_each_sample():
    true = [" a b c d", " e f"]
    samples = [[" a b x y", " A B C D", ""], [" e e e", " g h"]]
    got = samia_from_texts(true, samples)
    assert got.tolist() == pytest.approx([(0.5 + 1.0 + 0.0) / 3, (0.5 + 0.0) / 2])
    case = samia_from_texts(true, samples, lowercase=False)
    assert case[0] == pytest.approx(0.5 / 3)  # "A B C D" no longer matches

    def bits(s: str) -> int:
        return 8 * len(zlib.compress(s.encode()))

    z = samia_from_texts(true, samples, zlib=True)
    assert z.tolist() == pytest.approx([(0.5 * bits("a b x y") + bits("a b c d")) / 3,
                                        0.5 * bits("e e e") / 2])
    ns = types.SimpleNamespace(true_text=true, sample_text=samples)
    assert samia_scores(ns, zlib=True).tolist() == z.tolist()


def test_bad_scoring_input_gives_one_clear_error():
    with pytest.raises(DataError, match="2 true continuations but 1 lists"):
        samia_from_texts(["a", "b"], [["a"]])
    with pytest.raises(DataError, match="Text 1 has no sampled continuation"):
        samia_from_texts(["a", "b"], [["a"], []])
    with pytest.raises(DataError, match="Text 0 has no sampled continuation"):
        samia_from_texts(["a"], ["a b"])  # a string, not a list of samples


# --------------------------------------------------------------------------- the sampler


def test_sampler_draws_from_the_tempered_top_k_softmax():
    torch = pytest.importorskip("torch")
    from miaudit.targets.sampling import _sampler

    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0, 1.5]])
    rows = 20000
    u = torch.as_tensor(np.random.default_rng(0).random((rows, 1)))
    for temperature, top_k in ((1.0, None), (0.7, 3), (2.0, 5)):
        tokens = _sampler(torch, u, temperature, top_k)(logits.expand(rows, -1), 0).numpy()
        scaled = logits[0].numpy().astype(np.float64) / temperature
        if top_k is not None:
            scaled = np.where(scaled >= np.sort(scaled)[-top_k], scaled, -np.inf)
        p = np.exp(scaled - scaled.max())
        p /= p.sum()
        counts = np.bincount(tokens, minlength=6)
        assert (counts[p == 0] == 0).all()  # nothing outside the top k
        keep = p > 0
        chi = stats.chisquare(counts[keep], rows * p[keep])
        assert chi.pvalue > 1e-3, (temperature, top_k, counts, p)
    greedy = _sampler(torch, u[:50], 1.0, 1)(logits.expand(50, -1), 0)
    assert (greedy == 0).all()


# --------------------------------------------------------------------------- language models


@pytest.fixture(scope="module")
def lm(memorised_lm_one_thread):
    return memorised_lm_one_thread


def _sample(target, texts, **kwargs):
    from miaudit.targets.sampling import sample_continuations

    return sample_continuations(target, texts, **kwargs)


def test_split_and_shapes(lm):
    from miaudit.targets.lm import _encode

    s = _sample(lm.target, lm.texts[:7], n_samples=3)
    assert len(s) == 7 and s.n_samples == 3 and s.n_tokens.tolist() == [12] * 7
    for i, text in enumerate(lm.texts[:7]):
        ids = _encode(lm.tokenizer, [text])[0][1:]
        assert np.concatenate([s.prompt_ids[i], s.true_ids[i]]).tolist() == ids
        assert len(s.prompt_ids[i]) == 6  # half of 12 whole-word tokens
        assert words(s.true_text[i]) == text.split()[6:]
        assert len(s.sample_ids[i]) == 3 and all(len(t) <= 6 for t in s.sample_ids[i])
        assert s.sample_text[i] == [lm.tokenizer.decode(t.tolist()) for t in s.sample_ids[i]]
    fixed = _sample(lm.target, lm.texts[:3], prefix_tokens=4, n_samples=2, max_new_tokens=3)
    assert [len(p) for p in fixed.prompt_ids] == [4] * 3
    assert all(len(t) == 3 for per in fixed.sample_ids for t in per)
    # a text longer than the context (16) is cut to it: 1 start + 15 tokens fed at most
    long = _sample(lm.target, [" ".join([lm.texts[0]] * 3)], n_samples=2)
    assert long.n_tokens.tolist() == [36]
    assert len(long.prompt_ids[0]) + len(long.true_ids[0]) == 16
    short = _sample(lm.target, ["river"], n_samples=2)  # prompted with the start token alone
    assert len(short.prompt_ids[0]) == 0 and len(short.true_ids[0]) == 1


def test_top_k_one_is_greedy_decoding(lm):
    from miaudit.targets.decoding import greedy_continuations
    from miaudit.targets.lm import _encode

    s = _sample(lm.target, lm.texts[:10], n_samples=2, top_k=1, seed=5)
    contexts = np.array([ids[:7] for ids in _encode(lm.tokenizer, lm.texts[:10])])
    greedy = greedy_continuations(lm.target.model, contexts, 6)
    eos = lm.tokenizer.eos_token_id
    for i in range(10):
        g = greedy[i].tolist()
        g = g[: g.index(eos)] if eos in g else g
        assert [t.tolist() for t in s.sample_ids[i]] == [g, g]


def test_deterministic_and_independent_of_order_and_batches(lm):
    texts = lm.texts[:20]
    a = _sample(lm.target, texts, n_samples=4, seed=3)
    b = _sample(lm.target, texts, n_samples=4, seed=3)
    assert a.sample_text == b.sample_text
    order = np.random.default_rng(1).permutation(20)
    c = _sample(lm.target, [texts[i] for i in order], n_samples=4, seed=3, batch_size=3)
    assert [c.sample_text[j] for j in np.argsort(order)] == a.sample_text
    one = _sample(lm.target, [texts[7]], n_samples=4, seed=3)  # alone in its batch
    assert one.sample_text[0] == a.sample_text[7]
    assert samia_scores(c)[np.argsort(order)].tolist() == samia_scores(a).tolist()
    other = _sample(lm.target, texts, n_samples=4, seed=4)
    assert other.sample_text != a.sample_text
    # the K samples of one text differ from each other (independent streams)
    assert sum(len(set(map(tuple, per))) > 1 for per in
               ([t.tolist() for t in row] for row in a.sample_ids)) >= 15


def test_memorised_members_score_higher_than_non_members(lm):
    from sklearn.metrics import roc_auc_score

    s = _sample(lm.target, lm.texts, n_samples=5)
    for zlib_variant in (False, True):
        auc = roc_auc_score(lm.member, samia_scores(s, zlib=zlib_variant))
        assert auc > 0.8, (zlib_variant, auc)
    scores = samia_scores(s)
    assert scores[lm.member].mean() > 0.6 > 0.4 > scores[~lm.member].mean()


def test_untrained_model_gives_chance_auc(lm):
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(lm.member, samia_scores(_sample(lm.untrained, lm.texts, n_samples=5,
                                                          seed=seed)))
            for seed in range(3)]
    assert all(0.2 < a < 0.8 for a in aucs), aucs
    assert abs(np.mean(aucs) - 0.5) < 0.15, aucs


def test_samples_stop_at_eos(lm):
    """A model that always predicts EOS gives empty samples, which score 0."""
    torch = pytest.importorskip("torch")
    eos, size = lm.tokenizer.eos_token_id, len(lm.tokenizer)

    class AlwaysEOS(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, use_cache=False):
            logits = torch.zeros(*input_ids.shape, size)
            logits[..., eos] = 50.0
            return types.SimpleNamespace(logits=logits)

    target = types.SimpleNamespace(model=AlwaysEOS(), tokenizer=lm.tokenizer)
    s = _sample(target, lm.texts[:3], n_samples=2)
    assert all(len(t) == 0 for per in s.sample_ids for t in per)
    assert s.sample_text == [["", ""]] * 3 and samia_scores(s).tolist() == [0.0] * 3


def test_bad_input_gives_one_clear_error(lm):
    t, texts = lm.target, lm.texts[:3]
    for kwargs, message in (
        ({"prefix_fraction": 0}, "'prefix_fraction' must be a number in \\(0, 1\\)"),
        ({"prefix_fraction": 1.5}, "prefix_fraction"),
        ({"prefix_fraction": 0.5, "prefix_tokens": 3}, "either 'prefix_fraction' or"),
        ({"prefix_tokens": 0}, "'prefix_tokens' must be a whole number >= 1, got 0"),
        ({"n_samples": 0}, "'n_samples' must be a whole number >= 1"),
        ({"n_samples": 2.5}, "'n_samples'"),
        ({"max_new_tokens": -1}, "'max_new_tokens' must be a whole number >= 1 or None"),
        ({"temperature": 0}, "'temperature' must be a finite number > 0"),
        ({"temperature": float("nan")}, "'temperature'"),
        ({"top_k": 0}, "'top_k'"),
        ({"seed": 1.5}, "'seed' must be a whole number"),
        ({"batch_size": 0}, "'batch_size'"),
    ):
        with pytest.raises(ConfigError, match=message):
            _sample(t, texts, **kwargs)
    with pytest.raises(ConfigError, match="needs a model and its tokenizer"):
        _sample(types.SimpleNamespace(token_scores=None), texts)
    with pytest.raises(DataError, match="'texts' is empty"):
        _sample(t, [])
    with pytest.raises(DataError, match="'texts' must be a list of strings"):
        _sample(t, "one text")
    with pytest.raises(DataError, match="Text 1 is empty"):
        _sample(t, [texts[0], "", texts[1]])
