"""Language-model attacks on synthetic token statistics: directions, direct computations,
the registry and the errors."""

from __future__ import annotations

import math
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit.attacks.lm import (
    LM_ATTACKS,
    NEEDS,
    LMAttackInput,
    dc_pdd,
    lira_text,
    min_k,
    min_k_plus_plus,
    resolve_lm_attacks,
    zlib_attack,
)
from miaudit.errors import ConfigError, DataError, OutputError
from miaudit.signals.tokens import TokenScores

WORDS = ["The", "river", "Paris", "quietly", "ran", "Seven", "blue", "Apples", "over", "June"]


def _distribution(rng, vocab, scale):
    """An explicit next-token distribution: softmax of random logits; its log-probs, the
    mean and standard deviation of log p(v) under p."""
    logits = scale * rng.normal(size=vocab)
    logp = logits - logits.max()
    logp -= np.log(np.exp(logp).sum())
    p = np.exp(logp)
    mean = float(p @ logp)
    return p, logp, mean, float(np.sqrt(p @ (logp - mean) ** 2))


def _synthetic(n=120, seed=0, vocab=30):
    """Members' tokens are drawn from the model's distribution sharpened (p^3), non-members'
    from p itself. The reference model and the lowercased texts see every document like a
    non-member (the "base" token log-probs, slightly harder when lowercased)."""
    rng = np.random.default_rng(seed)
    is_member = np.arange(n) % 2 == 0
    rng.shuffle(is_member)
    texts, lps, means, stds, base, lower, ids, cond = [], [], [], [], [], [], [], []
    for i in range(n):
        t = int(rng.integers(15, 40))
        scale = rng.uniform(1.0, 2.0)  # document difficulty
        lp, mu, sd, lp_base = np.empty(t), np.empty(t), np.empty(t), np.empty(t)
        tokens = np.empty(t, dtype=np.int64)
        for j in range(t):
            p, logp, mu[j], sd[j] = _distribution(rng, vocab, scale)
            q = p ** 3 / (p ** 3).sum() if is_member[i] else p
            tokens[j] = rng.choice(vocab, p=q)
            lp[j] = logp[tokens[j]]
            lp_base[j] = logp[rng.choice(vocab, p=p)]
        texts.append(" ".join(rng.choice(WORDS, size=t + 1)))
        lps.append(lp)
        means.append(mu)
        stds.append(sd)
        base.append(lp_base)
        lower.append(1.1 * lp_base)
        ids.append(tokens)
        # after a non-member prefix a member reads like a non-member (drawn from p)
        cond.append(lp_base if is_member[i] else lp + rng.normal(0, 0.05, t))
    # a text's neighbours read like non-members: NLLs about the base's, with noise
    neighbours = np.array([-b.mean() + rng.normal(0, 0.05, 5) for b in base])
    # sampled continuations keep more of a member's true second half (SaMIA)
    truths = [list(rng.choice(WORDS, 8)) for _ in range(n)]
    samples = SimpleNamespace(
        true_text=[" ".join(t) for t in truths],
        sample_text=[[" ".join(w if rng.random() < (0.7 if m else 0.3) else str(rng.choice(WORDS))
                               for w in t) for _ in range(4)]
                     for t, m in zip(truths, is_member, strict=True)])
    inputs = LMAttackInput(texts, TokenScores(lps, means, stds, token_ids=ids),
                           lowercase=TokenScores(lower), reference=TokenScores(base),
                           token_frequency=np.full(vocab, 1.0 / vocab),
                           conditioned=TokenScores([np.minimum(c, 0.0) for c in cond]),
                           neighbours=np.maximum(neighbours, 0.0), samples=samples)
    return inputs, is_member


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


#: Options of the common tests: DC-PDD's default cap (0.01, for large vocabularies) caps
#: every token of this 30-token world; a cap above the weights lets the probabilities show.
OPTIONS = {"dc-pdd": {"a": 10.0}}


@pytest.mark.parametrize("name", list(LM_ATTACKS))
def test_every_attack_scores_members_higher(name, synthetic):
    inputs, is_member = synthetic
    score = LM_ATTACKS[name].score(inputs, **OPTIONS.get(name, {}))
    assert score.shape == (len(inputs),) and np.isfinite(score).all()
    assert roc_auc_score(is_member, score) > 0.8


@pytest.mark.parametrize("name", list(LM_ATTACKS))
def test_every_attack_is_deterministic_and_order_invariant(name, synthetic):
    inputs, _ = synthetic
    perm = np.random.default_rng(1).permutation(len(inputs))

    def take(ts):
        pick = (lambda xs: [xs[i] for i in perm]) if ts is not None else None
        return None if ts is None else TokenScores(
            pick(ts.logprobs), ts.mean and pick(ts.mean), ts.std and pick(ts.std),
            ts.token_ids and pick(ts.token_ids))

    permuted = LMAttackInput([inputs.texts[i] for i in perm], take(inputs.target),
                             take(inputs.lowercase), take(inputs.reference),
                             inputs.token_frequency, take(inputs.conditioned),
                             inputs.neighbours[perm],
                             SimpleNamespace(
                                 true_text=[inputs.samples.true_text[i] for i in perm],
                                 sample_text=[inputs.samples.sample_text[i] for i in perm]))
    attack, options = LM_ATTACKS[name], OPTIONS.get(name, {})
    np.testing.assert_array_equal(attack.score(inputs, **options),
                                  attack.score(inputs, **options))
    np.testing.assert_allclose(attack.score(permuted, **options),
                               attack.score(inputs, **options)[perm], rtol=1e-12)


def test_every_attack_is_documented():
    for attack in LM_ATTACKS.values():
        assert attack.needs <= set(NEEDS)
        assert "Higher = member" in attack.score.__doc__
        assert "References" in attack.score.__doc__ and attack.reference


def test_reference_and_lowercase_add_to_the_loss(synthetic):
    """The difficulty-calibrated attacks beat the plain loss when documents differ in
    difficulty (the reason they exist)."""
    inputs, is_member = synthetic
    loss_auc = roc_auc_score(is_member, LM_ATTACKS["lm-loss"].score(inputs))
    for name in ("reference", "lowercase"):
        assert roc_auc_score(is_member, LM_ATTACKS[name].score(inputs)) > loss_auc


def test_loss_reference_lowercase_formulas():
    ts = TokenScores([np.array([-1.0, -3.0]), np.array([-0.5])])
    inputs = LMAttackInput(["Ab cd", "Ef"], ts,
                           lowercase=TokenScores([np.array([-4.0]), np.array([-1.0, -1.0])]),
                           reference=TokenScores([np.array([-2.5]), np.array([-0.25])]))
    np.testing.assert_allclose(LM_ATTACKS["lm-loss"].score(inputs), [-2.0, -0.5])
    np.testing.assert_allclose(LM_ATTACKS["lowercase"].score(inputs), [-0.5, -0.5])
    np.testing.assert_allclose(LM_ATTACKS["reference"].score(inputs), [0.5, -0.25])


def _loop_lowest_mean(values, k):
    """Sort, keep max(1, floor(k T)) values, average (floor of k T taken on the decimal
    value, e.g. 0.29 * 100 = 29)."""
    out = []
    for v in values:
        count = max(1, math.floor(round(k * len(v), 6)))
        out.append(sum(sorted(v.tolist())[:count]) / count)
    return np.array(out)


@pytest.mark.parametrize("k", [0.2, 0.29, 0.5, 1.0, 0.01])
def test_min_k_plus_plus_matches_an_explicit_distribution(k):
    rng = np.random.default_rng(3)
    lps, means, stds, zs = [], [], [], []
    for t in (1, 4, 7, 100):
        lp, mu, sd, z = [], [], [], []
        for _ in range(t):
            p, logp, _, _ = _distribution(rng, 6, 2.0)
            token = rng.choice(6, p=p)
            m = sum(p[v] * logp[v] for v in range(6))
            s = math.sqrt(sum(p[v] * (logp[v] - m) ** 2 for v in range(6)))
            lp.append(logp[token])
            mu.append(m)
            sd.append(s)
            z.append((logp[token] - m) / s)
        lps.append(np.array(lp))
        means.append(np.array(mu))
        stds.append(np.array(sd))
        zs.append(np.array(z))
    inputs = LMAttackInput(["x"] * 4, TokenScores(lps, means, stds))
    np.testing.assert_allclose(min_k_plus_plus(inputs, k=k), _loop_lowest_mean(zs, k),
                               rtol=1e-10)
    np.testing.assert_allclose(min_k(inputs, k=k), _loop_lowest_mean(lps, k), rtol=1e-10)


def test_min_k_counts_tokens_as_documented():
    lp = np.array([-0.1, -5.0, -0.2, -3.0, -0.3, -1.0, -2.0, -0.4, -0.5, -0.6])
    inputs = LMAttackInput(["t", "u"], TokenScores([lp, lp[:3]]))
    # k = 0.2: 2 of 10 tokens; 3 * 0.2 = 0.6 -> at least one token.
    np.testing.assert_allclose(min_k(inputs), [-4.0, -5.0])
    np.testing.assert_allclose(min_k(inputs, k=1.0), [lp.mean(), lp[:3].mean()])


def test_min_k_plus_plus_with_zero_std():
    """sigma_t = 0 (uniform on the support): a token as likely as any gets z = 0; a token
    below the mean still gets a very negative (finite) z."""
    flat = np.log(np.full(4, 0.25))
    ts = TokenScores([np.array([flat[0], flat[0]]), np.array([-5.0])],
                     mean=[np.array([flat[0], flat[0]]), np.array([-1.0])],
                     std=[np.zeros(2), np.zeros(1)])
    score = min_k_plus_plus(LMAttackInput(["a", "b"], ts), k=1.0)
    assert score[0] == 0.0
    assert np.isfinite(score[1]) and score[1] < -1e6


def test_zlib_matches_an_independent_computation():
    texts = ["hello hello hello hello hello hello", "Zebra quartz jumps; vexed fog 42!"]
    ts = TokenScores([np.array([-2.0, -1.0]), np.array([-3.0])])
    expected = []
    for text, nll in zip(texts, [1.5, 3.0], strict=True):
        c = zlib.compressobj()
        bits = 8 * len(c.compress(text.encode("utf-8")) + c.flush())
        expected.append(-nll / bits)
    np.testing.assert_allclose(zlib_attack(LMAttackInput(texts, ts)), expected)


def test_zlib_discounts_repetitive_texts():
    """At equal NLL a repetitive text (few compressed bits) looks less like a member."""
    texts = ["abc " * 20, "the quick brown fox jumps over a lazy dog, 1234567890!"[:80]]
    ts = TokenScores([np.array([-2.0]), np.array([-2.0])])
    score = zlib_attack(LMAttackInput(texts, ts))
    assert score[0] < score[1]


# --- LiRA on text ----------------------------------------------------------------------

def _lira_game(n=400, k=16, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(3.0, 0.6, n)
    membership = np.zeros((k, n), bool)
    for i in range(n):  # random halves: every document IN for half the references
        membership[rng.permutation(k)[: k // 2], i] = True
    ref_nll = difficulty - 0.3 * membership + rng.normal(0, 0.1, (k, n))
    is_member = rng.random(n) < 0.5
    target_nll = difficulty - 0.3 * is_member + rng.normal(0, 0.1, n)
    return target_nll, ref_nll, membership, is_member


@pytest.mark.parametrize("online", [True, False])
def test_lira_text_scores_members_higher(online):
    target, ref, membership, is_member = _lira_game()
    score = lira_text(target, ref, membership, online=online)
    auc = roc_auc_score(is_member, score)
    assert auc > 0.8
    assert auc > roc_auc_score(is_member, -target) + 0.1  # difficulty is calibrated away


def _pooled_std(values, mask):
    groups = [values[mask[:, i], i] for i in range(values.shape[1])]
    ss = sum(((g - g.mean()) ** 2).sum() for g in groups if len(g))
    return math.sqrt(ss / sum(max(len(g) - 1, 0) for g in groups))


def test_lira_text_matches_scipy_for_one_record():
    target, ref, membership, _ = _lira_game(n=30, k=8, seed=2)
    phi, ref_phi = -target, -ref
    s_in, s_out = _pooled_std(ref_phi, membership), _pooled_std(ref_phi, ~membership)
    i = 7
    mu_in = ref_phi[membership[:, i], i].mean()
    mu_out = ref_phi[~membership[:, i], i].mean()
    online = stats.norm.logpdf(phi[i], mu_in, s_in) - stats.norm.logpdf(phi[i], mu_out, s_out)
    offline = stats.norm.logcdf(phi[i], mu_out, s_out)
    assert lira_text(target, ref, membership, online=True)[i] == pytest.approx(online)
    assert lira_text(target, ref, membership, online=False)[i] == pytest.approx(offline)


def test_lira_text_online_uses_in_and_out_references():
    target, ref, membership, _ = _lira_game(n=50, k=8, seed=3)
    base_on = lira_text(target, ref, membership, online=True)
    base_off = lira_text(target, ref, membership, online=False)
    moved_in = np.where(membership, ref + 0.5, ref)
    moved_out = np.where(membership, ref, ref + 0.5)
    assert not np.allclose(lira_text(target, moved_in, membership, online=True), base_on)
    np.testing.assert_allclose(lira_text(target, moved_in, membership, online=False), base_off)
    assert not np.allclose(lira_text(target, moved_out, membership, online=True), base_on)
    assert not np.allclose(lira_text(target, moved_out, membership, online=False), base_off)


def test_lira_text_falls_back_when_a_side_is_missing():
    target, ref, membership, _ = _lira_game(n=40, k=6, seed=4)
    membership[:, 0] = False  # document 0: OUT references only
    membership[:, 1] = True   # document 1: IN references only
    on = lira_text(target, ref, membership, online=True)
    off = lira_text(target, ref, membership, online=False)
    assert on[0] == off[0]
    phi, ref_phi = -target, -ref
    s_in = _pooled_std(ref_phi, membership)
    expected = stats.norm.logcdf(phi[1], ref_phi[:, 1].mean(), s_in)
    assert on[1] == pytest.approx(expected) and off[1] == pytest.approx(expected)
    assert np.isfinite(on).all() and np.isfinite(off).all()


def test_lira_text_rejects_bad_shapes():
    target, ref, membership, _ = _lira_game(n=10, k=4)
    with pytest.raises(DataError, match=r"shape \(K, 10\)"):
        lira_text(target, ref[:, :9], membership, online=True)
    with pytest.raises(DataError, match="same shape"):
        lira_text(target, ref, membership[:3], online=True)
    with pytest.raises(DataError, match="boolean"):
        lira_text(target, ref, membership.astype(int), online=True)
    with pytest.raises(DataError, match="finite"):
        lira_text(np.full(10, np.nan), ref, membership, online=False)
    with pytest.raises(DataError, match="K = 0"):
        lira_text(target, ref[:0], membership[:0], online=False)


# --- registry ---------------------------------------------------------------------------

def test_resolve_defaults_follow_what_was_extracted():
    names = lambda have: [a.name for a in resolve_lm_attacks(None, have=have)]  # noqa: E731
    assert names(set()) == ["lm-loss", "zlib", "min-k"]
    assert names({"lowercase", "distribution"}) == [
        "lm-loss", "zlib", "min-k", "min-k++", "lowercase"]
    assert names({"lowercase", "distribution", "reference", "frequency", "prefix",
                  "neighbours", "sampling"}) == list(LM_ATTACKS)


def test_resolve_explicit_names(synthetic):
    inputs, _ = synthetic
    got = resolve_lm_attacks([" Min-K++ ", "reference", "min-k++"], have=inputs.available)
    assert [a.name for a in got] == ["min-k++", "reference"]
    with pytest.raises(ConfigError, match=r"--reference-model DIR"):
        resolve_lm_attacks(["reference"], have={"lowercase"})
    with pytest.raises(ConfigError, match=r"lowercased texts.*runnable.*lm-loss"):
        resolve_lm_attacks(["lowercase"], have=set())
    with pytest.raises(ConfigError, match=r"Did you mean 'min-k\+\+'.*Known.*zlib"):
        resolve_lm_attacks(["mink++"], have=set())
    with pytest.raises(ConfigError, match="No language-model attack"):
        resolve_lm_attacks([], have=set())
    with pytest.raises(ConfigError, match="distributions"):
        resolve_lm_attacks(None, have={"distributions"})


def test_attacks_called_without_what_they_need_say_so():
    inputs = LMAttackInput(["a b"], TokenScores([np.array([-1.0])]))
    assert inputs.available == frozenset()
    for name, need in (("lowercase", "lowercased"), ("reference", "--reference-model"),
                       ("min-k++", "standard deviation"), ("dc-pdd", "token frequencies"),
                       ("recall", "prefix of non-member texts")):
        with pytest.raises(ConfigError, match=need):
            LM_ATTACKS[name].score(inputs)


# --- bad input --------------------------------------------------------------------------

def test_zero_token_documents_are_refused():
    ts = TokenScores([np.array([-1.0]), np.array([-2.0]), np.array([]), np.array([])])
    with pytest.raises(DataError, match=r"2 document\(s\).*target.*index 2"):
        LMAttackInput(["a b", "c d", "e", "f"], ts)
    ok = TokenScores([np.array([-1.0])] * 2)
    with pytest.raises(DataError, match=r"1 document\(s\).*lowercase.*index 1"):
        LMAttackInput(["A b", "C"], ok, lowercase=TokenScores([np.array([-1.0]), np.array([])]))


@pytest.mark.parametrize("k", [0, -0.1, 1.5, 20, np.nan, True, "0.2"])
def test_k_out_of_range_is_refused(k):
    inputs = LMAttackInput(["a b"], TokenScores([np.array([-1.0])], [np.array([-1.0])],
                                                [np.array([1.0])]))
    for fn in (min_k, min_k_plus_plus):
        with pytest.raises(ConfigError, match=r"k must be a fraction in \(0, 1\]"):
            fn(inputs, k=k)
    if k == 20:
        with pytest.raises(ConfigError, match=r"k=0\.2"):
            min_k(inputs, k=k)


def test_mismatched_lengths_are_refused():
    ts = TokenScores([np.array([-1.0])] * 3)
    with pytest.raises(DataError, match=r"target token scores cover 3 document\(s\) but there "
                                        r"are 2 text\(s\)"):
        LMAttackInput(["a b", "c d"], ts)
    with pytest.raises(DataError, match="reference token scores cover 2"):
        LMAttackInput(["a", "b", "c"], ts, reference=TokenScores([np.array([-1.0])] * 2))
    with pytest.raises(DataError, match="lowercase token scores cover 4"):
        LMAttackInput(["a", "b", "c"], ts, lowercase=TokenScores([np.array([-1.0])] * 4))
    with pytest.raises(DataError, match="empty"):
        LMAttackInput([], TokenScores([]))
    with pytest.raises(DataError, match="list of strings"):
        LMAttackInput("abc", TokenScores([np.array([-1.0])] * 3))


def test_bad_token_values_are_refused():
    with pytest.raises(OutputError, match=r"NaN or infinite target.*index 1"):
        LMAttackInput(["a", "b"], TokenScores([np.array([-1.0]), np.array([-1.0, np.nan])]))
    with pytest.raises(OutputError, match="not the NLL"):
        LMAttackInput(["a"], TokenScores([np.array([1.0, 2.0])]))
    with pytest.raises(OutputError, match="one value per predicted token"):
        LMAttackInput(["a"], TokenScores([np.array([-1.0, -2.0])], [np.array([-1.0])],
                                         [np.array([1.0])]))
    with pytest.raises(OutputError, match="only one of mean and std"):
        LMAttackInput(["a"], TokenScores([np.array([-1.0])], [np.array([-1.0])]))
    with pytest.raises(OutputError, match="negative target std"):
        LMAttackInput(["a"], TokenScores([np.array([-1.0])], [np.array([-1.0])],
                                         [np.array([-1.0])]))


# --- DC-PDD -------------------------------------------------------------------------------

def _dc_pdd_by_hand(ids, logprobs, frequency, a):
    """DC-PDD written out token by token: first occurrences only, p * log(1/f), capped."""
    out = []
    for doc_ids, lp in zip(ids, logprobs, strict=True):
        seen, alphas = set(), []
        for t, token in enumerate(doc_ids):
            if token in seen:
                continue
            seen.add(token)
            alphas.append(min(math.exp(lp[t]) * math.log(1.0 / frequency[token]), a))
        out.append(sum(alphas) / len(alphas))
    return np.array(out)


def _dc_pdd_world(n=200, vocab=50, seed=0):
    """Members' tokens are likely under the model whatever their corpus frequency; a
    non-member's rare tokens are not."""
    rng = np.random.default_rng(seed)
    frequency = rng.dirichlet(np.full(vocab, 0.3))
    frequency = (frequency + 1e-6) / (frequency + 1e-6).sum()
    members = np.arange(n) % 2 == 0
    ids, logprobs = [], []
    for m in members:
        doc = rng.choice(vocab, size=rng.integers(8, 20), p=frequency)
        p = (rng.uniform(0.5, 0.9, doc.size) if m
             else np.maximum(0.9 * frequency[doc] / frequency.max(), 1e-4))
        ids.append(doc)
        logprobs.append(np.log(p))
    return ids, logprobs, frequency, members


@pytest.mark.parametrize("a", [0.01, 0.5, 1e9])
def test_dc_pdd_matches_a_token_by_token_computation(a):
    ids, logprobs, frequency, _ = _dc_pdd_world()
    inputs = LMAttackInput([f"doc {i}" for i in range(len(ids))],
                           TokenScores(logprobs, token_ids=ids), token_frequency=frequency)
    assert "frequency" in inputs.available
    np.testing.assert_allclose(dc_pdd(inputs, a=a),
                               _dc_pdd_by_hand(ids, logprobs, frequency, a), rtol=1e-12)


def test_dc_pdd_scores_members_higher():
    ids, logprobs, frequency, members = _dc_pdd_world(seed=1)
    inputs = LMAttackInput([f"doc {i}" for i in range(len(ids))],
                           TokenScores(logprobs, token_ids=ids), token_frequency=frequency)
    assert roc_auc_score(members, LM_ATTACKS["dc-pdd"].score(inputs, a=1.0)) > 0.9


def test_dc_pdd_bad_input_is_refused():
    scores = TokenScores([np.array([-1.0, -2.0])], token_ids=[np.array([1, 3])])
    with pytest.raises(OutputError, match="frequencies in"):
        LMAttackInput(["a b"], scores, token_frequency=np.array([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(DataError, match="below the vocabulary size 2"):
        LMAttackInput(["a b"], scores, token_frequency=np.array([0.5, 0.5]))
    with pytest.raises(DataError, match="token_ids"):
        LMAttackInput(["a b"], TokenScores([np.array([-1.0, -2.0])]),
                      token_frequency=np.full(4, 0.25))
    inputs = LMAttackInput(["a b"], scores, token_frequency=np.full(4, 0.25))
    with pytest.raises(ConfigError, match="cap a must be a number > 0"):
        dc_pdd(inputs, a=0)


def test_corpus_token_frequency_is_laplace_smoothed_counts():
    from miaudit.targets.lm import corpus_token_frequency

    class Tokenizer:  # words -> ids, BOS 0
        bos_token_id = 0

        def __init__(self):
            self.vocab = {"<s>": 0, "a": 1, "b": 2, "c": 3}

        def __len__(self):
            return len(self.vocab)

        def __call__(self, texts, add_special_tokens, verbose):
            return {"input_ids": [[self.vocab[w] for w in t.split()] for t in texts]}

    f = corpus_token_frequency(Tokenizer(), ["a b a", "a"])
    counts = np.array([0, 3, 1, 0])  # the start token is not counted
    np.testing.assert_allclose(f, (1 + counts) / (counts.sum() + 4))


# --- ReCaLL -------------------------------------------------------------------------------

def test_recall_is_the_relative_drop_after_the_prefix():
    ll = [np.array([-1.0, -3.0]), np.array([-0.5])]
    after = [np.array([-2.0, -4.0]), np.array([-0.5])]
    inputs = LMAttackInput(["a b c", "d e"], TokenScores(ll), conditioned=TokenScores(after))
    # mean log-likelihoods -2 and -0.5; after the prefix -3 and -0.5
    np.testing.assert_allclose(LM_ATTACKS["recall"].score(inputs), [0.5, 0.0])
    with pytest.raises(DataError, match="conditioned token scores cover 1"):
        LMAttackInput(["a b c", "d e"], TokenScores(ll), conditioned=TokenScores(after[:1]))


def test_neighbour_attack_against_a_direct_loop():
    from miaudit.attacks.lm import neighbour

    rng = np.random.default_rng(4)
    logprobs = [-rng.exponential(size=rng.integers(1, 6)) for _ in range(30)]
    nll = rng.exponential(size=(30, 5))
    nll[rng.random((30, 5)) < 0.3] = np.nan
    nll[:, 0] = rng.exponential(size=30)  # every text keeps one neighbour
    x = LMAttackInput([f"t{i}" for i in range(30)], TokenScores(logprobs), neighbours=nll)
    expected = [np.mean([v for v in row if v == v]) + lp.mean()
                for row, lp in zip(nll, logprobs, strict=True)]
    np.testing.assert_allclose(neighbour(x), expected)
    assert "neighbours" in x.available
    bad = nll.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="row 3"):
        LMAttackInput([f"t{i}" for i in range(30)], TokenScores(logprobs), neighbours=bad)
    with pytest.raises(ConfigError, match="neighbour"):
        neighbour(LMAttackInput(["a"], TokenScores([np.array([-1.0])])))


def test_neighbour_texts_swap_one_token_each():
    pytest.importorskip("transformers")
    from miaudit.targets.neighbours import neighbour_texts
    from miaudit.training.lm import LMRecipe, build_lm, train_tokenizer

    texts = ["the river runs past the stone mill", "a lamp in the window", "x"]
    tok = train_tokenizer(texts * 3, vocab_size=280)
    model = build_lm(LMRecipe(n_layer=1, n_head=2, n_embd=16, n_positions=32, block_size=32,
                              vocab_size=280), tok, seed=0)
    out = neighbour_texts((model, tok), texts, n_neighbours=3)
    assert [len(group) for group in out] == [3, 3, 1]  # "x" has one token to swap
    for text, group in zip(texts, out, strict=True):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for swapped in group:
            new = tok(swapped, add_special_tokens=False)["input_ids"]
            assert swapped != text
            if len(new) == len(ids):  # the usual case: exactly one token differs
                assert sum(a != b for a, b in zip(ids, new, strict=True)) == 1
    assert out == neighbour_texts((model, tok), texts, n_neighbours=3)  # deterministic
    with pytest.raises(ConfigError, match="n_neighbours"):
        neighbour_texts((model, tok), texts, n_neighbours=0)
