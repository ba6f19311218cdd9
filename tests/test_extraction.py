"""The extraction test (prefix prompting, greedy decoding): decoding against a naive loop,
a memorising model against an untrained one, the measures against brute force, the
intervals and the test against scipy and by exact enumeration, bad input, the reports."""

from __future__ import annotations

import functools
import json
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from scipy import stats

from miaudit.audits.extraction import (
    ExtractionResult,
    compare_groups,
    extraction_test,
    extraction_verdict,
    match_run,
    token_edit_distance,
)
from miaudit.errors import (
    ConfigError,
    DataError,
    MembershipError,
    MiauditWarning,
    UndefinedMetricWarning,
)
from miaudit.metrics import evaluate
from miaudit.metrics.multiple_testing import holm
from miaudit.report.terminal import extraction_lines, print_summary
from miaudit.targets.decoding import greedy_continuations

WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")


def _texts(n: int, seed: int = 0, words: int = 12) -> list[str]:
    """Random word sequences: a continuation is unpredictable unless memorised."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) for _ in range(n)]


# --------------------------------------------------------------------------- measures


@functools.cache
def _levenshtein(a: tuple, b: tuple) -> int:
    """Brute force: the recursive definition."""
    if not a or not b:
        return len(a) + len(b)
    return min(_levenshtein(a[1:], b) + 1, _levenshtein(a, b[1:]) + 1,
               _levenshtein(a[1:], b[1:]) + (a[0] != b[0]))


@given(st.integers(0, 6), st.integers(0, 6), st.integers(1, 4), st.data())
def test_edit_distance_matches_the_recursive_definition(la, lb, n, data):
    tokens = st.integers(0, 3)
    a = np.array([data.draw(st.lists(tokens, min_size=la, max_size=la)) for _ in range(n)],
                 dtype=np.int64).reshape(n, la)
    b = np.array([data.draw(st.lists(tokens, min_size=lb, max_size=lb)) for _ in range(n)],
                 dtype=np.int64).reshape(n, lb)
    got = token_edit_distance(a, b)
    assert got.tolist() == [_levenshtein(tuple(x), tuple(y)) for x, y in zip(a, b, strict=True)]
    assert got.tolist() == token_edit_distance(b, a).tolist()  # symmetric


def test_edit_distance_and_matching_run_examples():
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[1, 2, 3, 4], [1, 2, 9, 4], [2, 3, 4, 9], [1, 2, 3, 4]])
    assert token_edit_distance(a, b).tolist() == [0, 1, 2, 4]  # substitution; shift by one
    assert match_run(a, b).tolist() == [4, 2, 0, 0]


# --------------------------------------------------------------------------- statistics


def test_group_intervals_are_scipy_clopper_pearson_and_p_value_is_hypergeometric():
    for km, nm, kn, nn in ((0, 10, 0, 12), (3, 10, 1, 12), (10, 10, 0, 5), (7, 40, 9, 31)):
        r = compare_groups(km, nm, kn, nn, alpha=0.1)
        for key, (k, n) in (("members", (km, nm)), ("non_members", (kn, nn))):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
            assert r[key]["ci"] == pytest.approx([ci.low, ci.high], abs=1e-9)
            assert r[key]["fraction"] == k / n
        # one-sided Fisher = P[X >= km], X hypergeometric given the margins
        p = stats.hypergeom.sf(km - 1, nm + nn, km + kn, nm)
        assert r["p_value"] == pytest.approx(min(1.0, p), rel=1e-9)
        assert r["difference"] == pytest.approx(km / nm - kn / nn)
    empty = compare_groups(3, 10, 0, 0)
    assert empty["non_members"] == {"count": 0, "fraction": None, "ci": None}
    assert empty["p_value"] is None and empty["difference_ci"] is None


@pytest.mark.parametrize(("nm", "nn"), [(15, 25), (40, 40)])
def test_intervals_cover_at_least_the_nominal_rate(nm, nn):
    """Exact coverage by enumerating every pair of counts, weighted by their binomial
    probabilities: the group interval and the difference interval (95%) never cover less."""
    km, kn = np.arange(nm + 1), np.arange(nn + 1)
    table = {(a, b): compare_groups(int(a), nm, int(b), nn) for a in km for b in kn}
    for pm, pn in ((0.0, 0.0), (0.02, 0.0), (0.1, 0.1), (0.5, 0.2), (0.9, 0.05), (0.3, 0.6)):
        wm, wn = stats.binom.pmf(km, nm, pm), stats.binom.pmf(kn, nn, pn)
        group = diff = 0.0
        for (a, b), r in table.items():
            w = wm[a] * wn[b]
            lo, hi = r["members"]["ci"]
            group += wm[a] * (lo <= pm <= hi) / len(kn)
            lo, hi = r["difference_ci"]
            diff += w * (lo <= pm - pn + 1e-12 and pm - pn - 1e-12 <= hi)
        assert group >= 0.95 - 1e-9, (pm, group)
        assert diff >= 0.95 - 1e-9, (pm, pn, diff)


def test_holm_step_down():
    assert holm({"a": 0.02, "b": 0.04}, 0.05) == {"a": True, "b": True}
    assert holm({"a": 0.03, "b": 0.04}, 0.05) == {"a": False, "b": False}
    assert holm({"a": 0.01, "b": 0.2}, 0.05) == {"a": True, "b": False}


def _verdict_of(exact: np.ndarray, near: np.ndarray, member: np.ndarray) -> dict:
    def cmp(hit):
        return compare_groups(int(hit[member].sum()), int(member.sum()),
                              int(hit[~member].sum()), int((~member).sum()))

    return extraction_verdict(cmp(exact), cmp(near), alpha=0.05, prefix_tokens=32,
                              suffix_tokens=32)


def test_null_says_no_extraction_in_at_least_95_percent_of_runs():
    """Membership assigned at random, extractability the same in both groups (texts
    extractable by generalisation at 10%, near-exactly at 25%): the verdict says
    "none" in >= 95% of 1,000 runs; with members far more extractable it says so."""
    rng = np.random.default_rng(0)
    n, runs, false = 120, 1000, 0
    for _ in range(runs):
        u = rng.random(n)
        exact, near = u < 0.1, u < 0.25
        member = rng.permutation(n) < n // 2
        false += _verdict_of(exact, near, member)["level"] != "none"
    assert false / runs <= 0.05, false / runs
    member = np.arange(n) < n // 2
    exact = np.where(member, rng.random(n) < 0.5, rng.random(n) < 0.05)
    v = _verdict_of(exact, exact, member)
    assert v["level"] == "extractable" and v["extractable"]
    near_only = member & (np.arange(n) % 2 == 0)
    assert _verdict_of(np.zeros(n, bool), near_only, member)["level"] == "near-extractable"


# --------------------------------------------------------------------------- language models


@pytest.fixture(scope="module")
def lm(memorised_lm_one_thread):
    return memorised_lm_one_thread


def _naive(model, context: list[int], steps: int) -> list[int]:
    """One text at a time, the whole sequence run again at every step, argmax appended."""
    import torch

    seq = list(context)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            seq.append(int(logits.argmax()))
    return seq[len(context):]


def test_batched_cached_decoding_equals_a_naive_loop(lm):
    from miaudit.targets.lm import _encode

    contexts = np.array([ids[:5] for ids in _encode(lm.tokenizer, lm.texts[:11])])
    model = lm.target.model
    got = greedy_continuations(model, contexts, 8, batch_size=4)  # 4 + 4 + 3
    assert got.shape == (11, 8)
    assert got.tolist() == [_naive(model, list(c), 8) for c in contexts]


def test_decoding_without_a_cache_equals_a_naive_loop():
    """A plain module whose output has no key-value cache is run again at every step."""
    torch = pytest.importorskip("torch")

    class Bigram(torch.nn.Module):
        def __init__(self):
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            self.table = torch.nn.Parameter(torch.randn(20, 20, generator=gen))

        def forward(self, input_ids, attention_mask=None, use_cache=False):
            mixed = self.table[input_ids] + 0.3 * self.table[input_ids].cumsum(1)
            return types.SimpleNamespace(logits=mixed)

    model = Bigram()
    contexts = np.random.default_rng(0).integers(0, 20, size=(7, 3))
    got = greedy_continuations(model, contexts, 6, batch_size=3)
    assert got.tolist() == [_naive(model, list(c), 6) for c in contexts]


def test_memorised_members_are_extractable(lm):
    r = extraction_test(lm.target, lm.texts, lm.member, prefix_tokens=4, suffix_tokens=8)
    d = r.to_dict()
    json.dumps(d)  # plain JSON types
    m, nm = d["groups"]["members"], d["groups"]["non_members"]
    # all 12 members reproduced exactly when written; random words defeat generalisation
    assert m["n_evaluated"] == 12 and nm["n_evaluated"] == 48
    assert m["exact_fraction"] >= 0.75 and nm["exact_fraction"] <= 0.05
    assert m["exact_ci"][0] > nm["exact_ci"][1]
    assert m["near_exact"] >= m["exact"] and m["mean_match_tokens"] > 6
    assert d["difference"]["exact_p_value"] < 1e-4
    assert d["difference"]["exact_ci"][0] > 0
    assert d["verdict"]["level"] == "extractable" and d["verdict"]["extractable"] is True
    # the per-text figures agree with the true tokens
    assert (r.exact == (r.generated == r.true).all(axis=1)).all()
    assert (r.match_tokens[r.exact] == 8).all()
    # deterministic, batch size does not matter
    again = extraction_test(lm.target, lm.texts, lm.member, prefix_tokens=4, suffix_tokens=8,
                            batch_size=64)
    assert again.to_dict() == d and (again.generated == r.generated).all()


def test_untrained_model_extracts_nothing(lm):
    d = extraction_test(lm.untrained, lm.texts, lm.member, prefix_tokens=4,
                        suffix_tokens=8).to_dict()
    for g in d["groups"].values():
        assert g["exact_fraction"] == 0 and g["near_exact_fraction"] == 0
    assert d["difference"]["exact_p_value"] == 1.0
    assert d["verdict"]["level"] == "none" and d["verdict"]["extractable"] is False


def test_too_short_texts_are_skipped_and_counted(lm):
    texts = [*lm.texts[:20], "river stone", "lamp"]
    member = np.r_[lm.member[:20], True, False]
    r = extraction_test(lm.target, texts, member, prefix_tokens=4, suffix_tokens=8)
    d = r.to_dict()
    assert d["n_too_short"] == 2 and d["n_evaluated"] == 20
    assert d["groups"]["members"]["n_too_short"] == 1
    assert d["groups"]["non_members"]["n_too_short"] == 1
    table = r.table()
    assert len(table) == 22 and table["extraction_evaluated"].tolist() == [True] * 20 + [False] * 2
    assert table["extraction_exact"].isna().tolist() == [False] * 20 + [True] * 2
    assert table["extraction_n_tokens"].tolist()[-2:] == [2, 1]
    assert any("2 of 22 texts shorter than 12 tokens" in line for line in extraction_lines(d))


def test_table_round_trips_through_parquet(lm, tmp_path):
    r = extraction_test(lm.target, lm.texts[:15], lm.member[:15], prefix_tokens=4,
                        suffix_tokens=8)
    table = pd.concat([pd.DataFrame({"is_member": lm.member[:15]}), r.table()], axis=1)
    table.to_parquet(tmp_path / "scores.parquet")
    back = pd.read_parquet(tmp_path / "scores.parquet")
    pd.testing.assert_frame_equal(back, table)
    assert back["extraction_exact"].sum() == r.exact.sum()


def test_sampling_depends_on_content_not_order(lm):
    kwargs = {"prefix_tokens": 4, "suffix_tokens": 8, "max_texts": 20, "seed": 3}
    r = extraction_test(lm.target, lm.texts, lm.member, **kwargs)
    order = np.random.default_rng(0).permutation(60)
    s = extraction_test(lm.target, [lm.texts[i] for i in order], lm.member[order], **kwargs)
    assert r.evaluated.sum() == s.evaluated.sum() == 20
    assert r.to_dict()["n_not_sampled"] == 40
    chosen = {t for t, e in zip(lm.texts, r.evaluated, strict=True) if e}
    assert chosen == {lm.texts[i] for i, e in zip(order, s.evaluated, strict=True) if e}
    assert r.to_dict()["groups"] == s.to_dict()["groups"]
    other = extraction_test(lm.target, lm.texts, lm.member, **{**kwargs, "seed": 4})
    assert set(np.flatnonzero(other.evaluated)) != set(np.flatnonzero(r.evaluated))


def test_bad_input_gives_one_clear_error(lm):
    t, texts, member = lm.target, lm.texts[:10], lm.member[:10]
    with pytest.raises(ConfigError, match="'prefix_tokens' must be a whole number >= 1, got 0"):
        extraction_test(t, texts, member, prefix_tokens=0)
    with pytest.raises(ConfigError, match="--extraction-suffix"):
        extraction_test(t, texts, member, suffix_tokens=-2)
    with pytest.raises(ConfigError, match="near_threshold"):
        extraction_test(t, texts, member, near_threshold=1.5)
    with pytest.raises(MembershipError, match="10 texts but is_member has shape"):
        extraction_test(t, texts, member[:9])
    with pytest.raises(MembershipError, match="booleans"):
        extraction_test(t, texts, np.full(10, 0.5))
    with pytest.raises(DataError, match=r"longest text has 12 tokens \(median 12\).*"
                                        "--extraction-prefix"):
        extraction_test(t, texts, member, prefix_tokens=10, suffix_tokens=10)
    with pytest.raises(DataError, match="'texts' must be a list of strings"):
        extraction_test(t, "one text", [True])
    with pytest.raises(ConfigError, match="needs a model and its tokenizer"):
        extraction_test(types.SimpleNamespace(token_scores=None), texts, member)
    long = [" ".join([lm.texts[0]] * 3)]
    with pytest.raises(ConfigError, match="model's context is 16"):
        extraction_test(t, long, [True], prefix_tokens=12, suffix_tokens=12)


def test_one_empty_group_is_not_measurable(lm):
    with pytest.warns(UndefinedMetricWarning, match="no non-members to test"):
        d = extraction_test(lm.target, lm.texts[:5], np.ones(5, bool), prefix_tokens=4,
                            suffix_tokens=8).to_dict()
    assert d["groups"]["non_members"]["exact_fraction"] is None
    assert d["difference"]["exact_p_value"] is None
    assert d["verdict"]["level"] == "not measurable" and d["verdict"]["extractable"] is None
    assert any("non-members: exact 0/0 n/a" in line for line in extraction_lines(d))


# --------------------------------------------------------------------------- reports


def _entry() -> dict:
    """A summary entry from hand-made per-text figures (no model needed)."""
    n, s = 100, 8
    member = np.arange(n) < 50
    distance = np.where(member, np.arange(n) % 5, 3 + np.arange(n) % 3)  # 10 members exact
    true = np.zeros((n, s), np.int64)
    result = ExtractionResult(
        prefix_tokens=4, suffix_tokens=s, near_threshold=0.125, alpha=0.05, seed=0,
        max_texts=None, is_member=member, n_tokens=np.full(n, 12), evaluated=np.ones(n, bool),
        generated=true, true=true, edit_distance=distance, match_tokens=s - distance)
    return result.to_dict()


def _lm_summary() -> tuple[dict, pd.DataFrame]:
    rng = np.random.default_rng(1)
    n = 100
    member = np.arange(n) < n // 2
    score = rng.normal(size=n) + member
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        entry = {**evaluate(score, member).to_dict(), "description": "loss",
                 "reference": "Yeom et al. 2018", "needs": []}
    summary = {
        "task": "language model",
        "data": {"name": "notes.jsonl", "n_records": n},
        "target": {"model": "gpt2 recipe", "description": "tiny gpt2", "n_members": n // 2,
                   "n_non_members": n // 2, "member_mean_nll": 3.1,
                   "non_member_mean_nll": 3.6},
        "exposure": "token log-probabilities", "attacks": {"lm-loss": entry},
        "settings": {"seed": 0, "alpha": 0.05, "fprs": [0.01]}, "warnings": [],
        "extraction": _entry(),
    }
    table = pd.DataFrame({"target": 0, "record_id": [f"doc-{i}" for i in range(n)],
                          "fingerprint": [f"{i:064x}" for i in range(n)],
                          "is_member": member, "lm-loss": score})
    return summary, table


def test_terminal_lines_show_fractions_intervals_and_verdict():
    d = _entry()
    assert d["groups"]["members"]["exact"] == 10 and d["groups"]["members"]["near_exact"] == 20
    assert d["groups"]["non_members"]["exact"] == 0
    lines = extraction_lines(d)
    lo, hi = stats.binomtest(10, 50).proportion_ci(method="exact")
    assert lines[0].startswith("extraction: greedy continuation of each text's first 4 tokens")
    assert f"members: exact 10/50 20.0% [{100 * lo:.1f}, {100 * hi:.1f}]" in lines[1]
    assert "near-exact 20/50 40.0%" in lines[1]
    assert lines[2].startswith("  non-members: exact 0/50 0.0% [0.0, 7.1]")
    assert lines[-1].startswith("  verdict: extractable. Training texts are extractable")
    console = Console(record=True, width=200)
    summary, _ = _lm_summary()
    print_summary(summary, console=console)
    assert "verdict: extractable. Training texts" in console.export_text()


def test_markdown_and_html_reports_show_the_extraction_table():
    pytest.importorskip("jinja2")
    from miaudit.report.html import render_html_from
    from miaudit.report.markdown import render_markdown_from

    summary, scores = _lm_summary()
    md = render_markdown_from(summary, scores)
    assert "### Extraction (prefix prompting)" in md
    # brackets backslash-escaped like every bracket of the Markdown report
    assert r"| members | 50 | 20.0% \[10.0%, 33.7%\] | 40.0% \[26.4%, 54.8%\] | 6.0 |" in md
    assert "Verdict: extractable." in md
    html = render_html_from(summary, scores)
    assert 'id="extraction-table"' in html and 'data-figure="extraction_exact_members"' in html
    assert "Verdict: extractable." in html
    del summary["extraction"]
    assert "Extraction (prefix prompting)" not in render_markdown_from(summary, scores)
