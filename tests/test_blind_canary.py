"""Blind baseline (model-free member / non-member classifier) and canary exposure."""

from __future__ import annotations

import hashlib
import math
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from miaudit.attacks.blind import META_FEATURES, blind_baseline, blind_warning
from miaudit.errors import ConfigError, DependencyError, MembershipError, OutputError
from miaudit.signals.canary import (
    Canary,
    ExposureResult,
    canary_exposure,
    exposure_table,
    insert_canaries,
    make_canaries,
    plot_exposure,
)

SUBJECTS = ["The council", "A local team", "The company", "Researchers", "The museum",
            "Farmers", "The new mayor", "Our neighbours", "The school", "Two engineers"]
VERBS = ["announced", "discussed", "rejected", "celebrated", "reviewed", "postponed",
         "presented", "questioned"]
OBJECTS = ["a plan for the river park", "the budget", "a prize for young artists",
           "the results of the survey", "a deal with the port", "the winter festival",
           "new rules for cyclists", "a study of bees", "the repairs to the bridge"]
PLACES = ["in the north", "downtown", "near the station", "on Friday", "last week",
          "after a long meeting", "at the town hall"]


def _sentences(n: int, rng: np.random.Generator, years: tuple[int, ...] | None = None):
    out = []
    for _ in range(n):
        words = [SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))],
                 OBJECTS[rng.integers(len(OBJECTS))], PLACES[rng.integers(len(PLACES))]]
        text = " ".join(words)
        if years is not None:
            text += f" in {years[rng.integers(len(years))]}"
        out.append(text + f", report {rng.integers(10_000)}.")
    return out


# --------------------------------------------------------------------------- blind baseline


def test_blind_baseline_near_chance_without_shift():
    # Over 40 such splits the AUC averaged 0.49 (sd 0.04) and the 95% interval held 0.5 in
    # 38; three splits are checked here.
    aucs = []
    for split_seed in (3, 4, 5):
        rng = np.random.default_rng(split_seed)
        texts = _sentences(300, rng)
        member = rng.permutation(300) < 150
        res = blind_baseline(texts, member, seed=0)
        assert res.scores.shape == (300,) and np.isfinite(res.scores).all()
        lo, hi = res.auc_ci
        assert lo <= 0.5 <= hi
        assert blind_warning(res.auc, 0.75, blind_auc_ci=res.auc_ci) is None
        aucs.append(res.auc)
    assert abs(np.mean(aucs) - 0.5) < 0.06


def test_blind_baseline_detects_temporal_shift():
    rng = np.random.default_rng(1)
    members = _sentences(100, rng, years=(2019, 2020))
    non_members = _sentences(100, rng, years=(2023, 2024))
    texts = members + non_members
    member = np.arange(200) < 100
    res = blind_baseline(texts, member, seed=0)
    assert res.auc > 0.9 and res.auc_ci[0] > 0.55
    assert float(np.mean(res.scores[member])) > float(np.mean(res.scores[~member]))
    top = " ".join(name for name, _ in res.top_member_terms)
    assert "20" in top  # the years drive it
    message = blind_warning(res.auc, 0.8, blind_auc_ci=res.auc_ci)
    assert message is not None
    assert "differ in distribution" in message and "Das et al. 2024" in message
    assert "Duan et al. 2024" in message
    assert blind_warning(res.auc, None, blind_auc_ci=res.auc_ci) is not None
    assert res.features["meta"] == list(META_FEATURES)


def test_blind_scores_are_cross_fitted():
    rng = np.random.default_rng(2)
    texts = _sentences(120, rng, years=(2019, 2024))
    member = np.array(["2019" in t for t in texts])
    base = blind_baseline(texts, member, folds=4, seed=3)
    for i in (0, 57):
        flipped = member.copy()
        flipped[i] = ~flipped[i]
        res = blind_baseline(texts, flipped, folds=4, seed=3)
        assert res.scores[i] == base.scores[i]  # own label never used
        assert not np.array_equal(res.scores, base.scores)  # others' labels are used


def test_blind_baseline_deterministic_and_validated():
    rng = np.random.default_rng(4)
    texts = _sentences(40, rng)
    member = np.arange(40) % 2 == 0
    a = blind_baseline(texts, member, seed=1)
    b = blind_baseline(texts, member.astype(int), seed=1)
    assert np.array_equal(a.scores, b.scores)
    with pytest.raises(MembershipError, match="at least 2 members"):
        blind_baseline(texts, np.arange(40) == 0)
    with pytest.raises(MembershipError, match="one entry per text"):
        blind_baseline(texts, member[:-1])
    with pytest.raises(ConfigError, match="folds"):
        blind_baseline(texts, member, folds=1)


def test_blind_warning_rules():
    assert blind_warning(0.50, 0.80) is None
    close = blind_warning(0.50, 0.53)  # attack no better than the blind baseline
    assert close is not None and "no membership signal beyond" in close
    assert "differ in distribution" not in close
    above = blind_warning(0.70, 0.60)
    assert above is not None and "differ in distribution" in above
    assert blind_warning(0.58, 0.90, blind_auc_ci=(0.56, 0.60)) is not None
    assert blind_warning(0.58, 0.90, blind_auc_ci=(0.50, 0.66)) is None
    assert blind_warning(0.70, 0.74, margin=0.02) is None
    with pytest.raises(ConfigError, match="blind_auc"):
        blind_warning(1.5, 0.5)


# --------------------------------------------------------------------------- canaries


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _memorising_nll(canary: Canary, noise: float = 0.0):
    """NLL grows with the edit distance from the canary's secret (plus hash noise)."""

    def nll_fn(texts: list[str]) -> np.ndarray:
        return np.array([_edit_distance(t, canary.text) + noise * _hash_normal(t)
                         for t in texts])

    return nll_fn


def _hash_normal(text: str) -> float:
    u = (int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) + 0.5) / 16**12
    return float(stats.norm.ppf(u))


def _random_nll(texts: list[str]) -> np.ndarray:
    return np.array([3.0 + _hash_normal(t) for t in texts])


def test_make_canaries_format_and_repetitions():
    cs = make_canaries(n_digits=6, count=7, seed=0)
    assert [c.repetitions for c in cs] == [1, 2, 4, 8, 16, 1, 2]
    assert len({c.secret for c in cs}) == 7
    for c in cs:
        digits = c.secret.split(" ")
        assert len(digits) == 6 and all(len(d) == 1 and d.isdigit() for d in digits)
        assert c.text == f"my PIN is {c.secret}"
    assert make_canaries(count=7, seed=0) == cs
    assert make_canaries(count=7, seed=1) != cs
    with pytest.raises(ConfigError, match="exactly one"):
        make_canaries("no slot", count=1)
    with pytest.raises(ConfigError, match="count"):
        make_canaries(n_digits=1, count=11)


def test_insert_canaries_exact_repetitions():
    texts = [f"doc {i}" for i in range(50)]
    cs = make_canaries("secret code {}", n_digits=4, count=5, seed=2)
    out = insert_canaries(texts, cs, seed=0)
    assert len(out) == 50 + sum(c.repetitions for c in cs)
    for c in cs:
        assert out.count(c.text) == c.repetitions
    assert [t for t in out if t.startswith("doc ")] == texts
    assert insert_canaries(texts, cs, seed=0) == out
    assert insert_canaries(texts, cs, seed=1) != out


def test_exposure_exact_rank_one_when_memorised():
    canary = make_canaries(n_digits=3, count=1, seed=5)[0]
    res = canary_exposure(_memorising_nll(canary), canary, template="my PIN is {}", n_digits=3)
    assert res.exact and res.n_candidates == 999
    assert res.rank_estimate == 1.0
    assert res.exposure == pytest.approx(math.log2(1000))
    assert res.max_exposure == pytest.approx(math.log2(1000))


def test_exposure_sampled_close_to_max_when_memorised():
    canary = make_canaries(n_digits=6, count=1, seed=6)[0]
    res = canary_exposure(_memorising_nll(canary, noise=0.3), canary,
                          template="my PIN is {}", n_digits=6, candidates=500)
    assert not res.exact and res.n_candidates == 500
    assert res.exposure_sampled == pytest.approx(res.max_exposure)  # none beat it
    assert res.exposure_fitted > 0.8 * res.max_exposure
    assert res.distribution in ("skewnorm", "norm")


def test_sampled_candidates_exclude_the_canary():
    canary = make_canaries(n_digits=4, count=1, seed=7)[0]
    seen: list[str] = []

    def nll_fn(texts):
        seen.extend(texts)
        return np.zeros(len(texts))

    res = canary_exposure(nll_fn, canary, template="my PIN is {}", n_digits=4,
                          candidates=9999, enumerate_below=0)
    assert seen[0] == canary.text and canary.text not in seen[1:]
    assert len(set(seen)) == 10_000
    # all tied: the canary sits in the middle, about 1 bit
    assert res.exposure_sampled == pytest.approx(1.0, abs=0.01)
    assert res.distribution == "degenerate"


def test_exposure_near_zero_for_a_model_that_ignores_the_secret():
    cs = make_canaries(n_digits=6, count=8, seed=8)
    results = [canary_exposure(_random_nll, c, template="my PIN is {}", n_digits=6,
                               candidates=1000, seed=i) for i, c in enumerate(cs)]
    sampled = np.array([r.exposure_sampled for r in results])
    fitted = np.array([r.exposure_fitted for r in results])
    assert 0 <= sampled.mean() <= 2.5 and fitted.mean() <= 2.5
    # in the middle of the distribution both estimates agree
    for r in results:
        if r.exposure_sampled < 3:
            assert abs(r.exposure_fitted - r.exposure_sampled) < 0.5


def test_fitted_matches_sampled_in_the_middle():
    canary = make_canaries(n_digits=6, count=1, seed=9)[0]
    for quantile in (0.2, 0.5, 0.8):
        target = 3.0 + stats.norm.ppf(quantile)

        def nll_fn(texts, target=target):
            return np.array([target if t == canary.text else 3.0 + _hash_normal(t)
                             for t in texts])

        res = canary_exposure(nll_fn, canary, template="my PIN is {}", n_digits=6)
        expected = math.log2(1e6) - math.log2(1 + (1e6 - 1) * quantile)
        assert res.exposure_sampled == pytest.approx(expected, abs=0.3)
        assert res.exposure_fitted == pytest.approx(res.exposure_sampled, abs=0.3)


def test_canary_exposure_validation():
    canary = make_canaries(n_digits=3, count=1, seed=1)[0]
    with pytest.raises(ConfigError, match="not made from template"):
        canary_exposure(_random_nll, canary, template="PIN: {}", n_digits=3)
    with pytest.raises(ConfigError, match="not made from template"):
        canary_exposure(_random_nll, canary, template="my PIN is {}", n_digits=4)
    with pytest.raises(OutputError, match="one NLL per text"):
        canary_exposure(lambda t: np.zeros(1), canary, template="my PIN is {}", n_digits=3)
    with pytest.raises(OutputError, match="NaN"):
        canary_exposure(lambda t: np.full(len(t), np.nan), canary, template="my PIN is {}",
                        n_digits=3)


def _results() -> list[ExposureResult]:
    cs = make_canaries(n_digits=3, count=4, seed=2)
    return [canary_exposure(_memorising_nll(c) if c.repetitions > 2 else _random_nll, c,
                            template="my PIN is {}", n_digits=3) for c in cs]


def test_exposure_table_one_row_per_canary():
    results = _results()
    table = exposure_table(results)
    assert isinstance(table, pd.DataFrame) and len(table) == 4
    assert table["repetitions"].tolist() == [1, 2, 4, 8]
    assert table["exposure"].tolist() == [r.exposure for r in results]
    assert {"secret", "rank_estimate", "exposure_sampled", "exposure_fitted", "max_exposure",
            "n_candidates"} <= set(table.columns)


def test_plot_exposure_writes_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    results = _results()
    for name in ("exposure.png", "exposure.svg"):
        path = plot_exposure(results, tmp_path / name)
        assert path.exists() and path.stat().st_size > 0


def test_plot_exposure_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for mod in list(sys.modules):
        if mod.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(DependencyError, match="pip install matplotlib"):
        plot_exposure(_results(), tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"\.png, \.svg or \.pdf"):
        plot_exposure(_results(), tmp_path / "x.gif")
