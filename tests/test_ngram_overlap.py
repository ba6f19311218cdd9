"""Word n-gram overlap between member and non-member texts (miaudit.data.overlap): exact
counts on planted duplicates, an independent brute-force recomputation, and the warning
of a language-model audit whose non-members copy its members."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data.overlap import NEAR_DUPLICATE_SHARE, ngram_overlap

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]


def _brute_force(texts, members, n):
    """Share of each non-member's distinct n-grams found in some member, the slow way."""
    def grams(t):
        w = t.lower().split()
        return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}
    member_grams = [grams(t) for t, m in zip(texts, members, strict=True) if m]
    out = []
    for t, m in zip(texts, members, strict=True):
        if m:
            continue
        g = grams(t)
        out.append(np.nan if not g else
                   sum(any(x in mg for mg in member_grams) for x in g) / len(g))
    return np.array(out, dtype=float)


def test_planted_near_duplicates_are_counted():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 30)) for _ in range(10)]
    members = np.array([True] * 5 + [False] * 5)
    texts[5] = texts[0]                                 # an exact copy of a member
    texts[6] = texts[1] + " new words"    # a member with two words added
    o = ngram_overlap(texts, members, n=13)
    assert o.n_scored == 5
    assert o.share[0] == 1.0
    assert NEAR_DUPLICATE_SHARE <= o.share[1] < 1.0
    assert o.n_near_duplicates == 2
    assert "2 of 5 non-member texts" in o.warning()
    assert o.to_dict()["n_near_duplicates"] == 2


def test_disjoint_vocabularies_share_nothing_and_short_texts_are_not_scored():
    texts = ["a b c d e f", "g h i j k l", "one two", "p q r s t u"]
    o = ngram_overlap(texts, np.array([True, False, False, False]), n=3)
    assert o.share[0] == 0.0 and np.isnan(o.share[1]) and o.share[2] == 0.0
    assert o.n_scored == 2 and o.n_any == 0 and o.mean_share == 0.0
    assert o.warning() is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 texts but 1"):
        ngram_overlap(["a", "b"], np.array([True]))
    with pytest.raises(ValueError, match="at least 1"):
        ngram_overlap(["a"], np.array([True]), n=0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.lists(st.sampled_from(WORDS[:3]), min_size=0, max_size=12),
                          st.booleans()), min_size=1, max_size=12),
       st.integers(1, 4))
def test_agrees_with_a_brute_force_count(rows, n):
    texts = [" ".join(words) for words, _ in rows]
    members = np.array([m for _, m in rows])
    o = ngram_overlap(texts, members, n=n)
    np.testing.assert_allclose(o.share, _brute_force(texts, members, n), equal_nan=True)


def test_language_model_audit_reports_and_warns(tmp_path):
    pytest.importorskip("transformers")
    from miaudit.audits.lm import audit_lm

    rng = np.random.default_rng(3)
    members = np.arange(40) % 2 == 0
    texts = [" ".join(rng.choice(WORDS, 20)) + f" {i}" for i in range(40)]
    for i in (1, 3, 5, 7):      # four non-members copy the member before them, plus a word
        texts[i] = texts[i - 1] + " again"
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t, "member": bool(m)}) + "\n"
                            for t, m in zip(texts, members, strict=True)))
    tiny = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64, "block_size": 64,
            "vocab_size": 300, "epochs": 1, "batch_size": 8}
    with pytest.warns(UserWarning, match="near-duplicates of members"):
        result = audit_lm(data=path, member_column="member", recipe=tiny,
                          attacks=["lm-loss"], blind=False)
    overlap = result.summary()["data"]["ngram_overlap"]
    # a few texts train the tokenizer and leave the game; the copies left are counted
    in_game = set(result.scores["record_id"].astype(str))
    copies = sum(str(i) in in_game and str(i - 1) in in_game for i in (1, 3, 5, 7))
    assert overlap["n"] == 13 and overlap["n_near_duplicates"] == copies >= 1
    assert overlap["n_non_members_scored"] == int((~result.scores["is_member"]).sum())
