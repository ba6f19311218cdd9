"""Tests of miaudit.metrics against brute force, scipy/sklearn and closed forms."""

from __future__ import annotations

import doctest
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import miaudit.metrics as M
from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics import (
    advantage,
    auc_delong,
    auc_with_ci,
    balanced_accuracy,
    clopper_pearson,
    epsilon_lower_bound,
    evaluate,
    ppv,
    roc_counts,
    roc_curve,
    tpr_at_fpr,
)
from miaudit.metrics.privacy import _best_threshold, _eps_at, _split_halves
from miaudit.metrics.roc import _roc

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TO_DICT_KEYS = {
    "auc",
    "auc_ci",
    "tpr_at_fpr",
    "tpr_at_fpr_ci",
    "ppv_at_fpr",
    "balanced_accuracy",
    "advantage",
    "epsilon_lower_bound",
    "n_members",
    "n_non_members",
    "prior",
    "alpha",
    "undefined",
}


@st.composite
def tied_data(draw, min_size: int = 2, max_size: int = 60, levels: int = 6):
    """Integer-valued float scores (many ties) and labels with both classes present."""
    n = draw(st.integers(min_size, max_size))
    scores = draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n))
    member = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    assume(any(member) and not all(member))
    return np.array(scores, dtype=float), np.array(member, dtype=bool)


def _binormal(rng: np.random.Generator, n_pos: int, n_neg: int, shift: float):
    scores = np.concatenate([rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)])
    member = np.arange(n_pos + n_neg) < n_pos
    return scores, member


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- Clopper-Pearson


@pytest.mark.parametrize("n", [1, 2, 7, 30, 250])
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.3])
def test_clopper_pearson_matches_scipy_binomtest(n, alpha):
    for k in range(n + 1):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        lo, hi = clopper_pearson(k, n, alpha)
        assert lo == pytest.approx(ci.low, abs=1e-10)
        assert hi == pytest.approx(ci.high, abs=1e-10)
        assert isinstance(lo, float) and isinstance(hi, float)


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 10)[0] == 0.0
    assert clopper_pearson(10, 10)[1] == 1.0
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))


# ---------------------------------------------------------------- ROC


@SETTINGS
@given(tied_data())
def test_roc_counts_agree_with_sklearn_roc_curve(data):
    s, y = data
    thr, tp, fp = roc_counts(s, y)
    fpr, tpr, sk_thr = roc_curve(s, y)
    ref_fpr, ref_tpr, ref_thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_array_equal(tpr, ref_tpr)
    np.testing.assert_array_equal(fp / fp[-1], ref_fpr)
    np.testing.assert_array_equal(tp / tp[-1], ref_tpr)
    np.testing.assert_array_equal(thr, ref_thr)
    np.testing.assert_array_equal(sk_thr, ref_thr)
    assert tp[0] == fp[0] == 0 and thr[0] == np.inf
    assert tp[-1] == y.sum() and fp[-1] == (~y).sum()


# ---------------------------------------------------------------- AUC and DeLong


@SETTINGS
@given(tied_data())
def test_auc_matches_sklearn(data):
    s, y = data
    auc, (lo, hi) = auc_with_ci(s, y)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert 0.0 <= lo <= auc <= hi <= 1.0


def _delong_bruteforce(s, y):
    x, z = s[y], s[~y]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / x.size + v01.var(ddof=1) / z.size
    return psi.mean(), var


@SETTINGS
@given(tied_data(min_size=4, levels=8))
def test_delong_variance_matches_quadratic_formula(data):
    s, y = data
    assume(2 <= y.sum() <= y.size - 2)
    auc, var = auc_delong(s, y)
    ref_auc, ref_var = _delong_bruteforce(s, y)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-9, abs=1e-15)


def test_delong_variance_continuous_scores():
    rng = np.random.default_rng(1)
    s, y = _binormal(rng, 40, 70, 0.8)
    auc, var = auc_delong(s, y)
    ref_auc, ref_var = _delong_bruteforce(s, y)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-10)


def test_delong_interval_covers_true_binormal_auc():
    rng = np.random.default_rng(2)
    shift = 1.0
    true_auc = stats.norm.cdf(shift / math.sqrt(2))
    reps = 300
    hits = 0
    for _ in range(reps):
        s, y = _binormal(rng, 80, 120, shift)
        _, (lo, hi) = auc_with_ci(s, y, alpha=0.05)
        hits += lo <= true_auc <= hi
    assert 0.90 <= hits / reps <= 0.99


def test_auc_closed_forms():
    y = np.arange(200) < 100
    auc, (lo, hi) = auc_with_ci(np.where(y, 1.0, 0.0), y)
    assert auc == 1.0 and hi == 1.0
    # fallback: exact Clopper-Pearson on min(m, n) disjoint pairs, all successes
    assert lo == pytest.approx(0.025 ** (1 / 100))
    auc, (lo, hi) = auc_with_ci(np.zeros(200), y)
    assert auc == 0.5
    assert lo < 0.5 < hi  # not a zero-width interval
    auc, (lo, hi) = auc_with_ci(np.where(y, 0.0, 1.0), y)
    assert auc == 0.0 and lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 100))


def test_auc_single_member_uses_fallback_interval():
    s = np.array([0.9, 0.1, 0.5, 0.95])
    y = np.array([True, False, False, False])
    auc, (lo, hi) = auc_with_ci(s, y)
    assert auc == pytest.approx(2 / 3)
    assert 0.0 <= lo < auc < hi <= 1.0


# ---------------------------------------------------------------- TPR at FPR


def _tpr_at_fpr_bruteforce(s, y, f):
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    ok = fpr <= f
    best = tpr[ok].max()
    i = np.flatnonzero(ok & (tpr == best))
    j = i[np.argmin(fpr[i])]
    return best, fpr[j], thr[j]


@SETTINGS
@given(tied_data(max_size=80), st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]))
def test_tpr_at_fpr_matches_bruteforce(data, f):
    s, y = data
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_neg < math.ceil(1 / f - 1e-9):
        with pytest.warns(UndefinedMetricWarning, match="not measurable"):
            res = tpr_at_fpr(s, y, f)
        assert res.value is None and res.ci is None and res.threshold is None
        assert res.reason.startswith("not measurable")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = tpr_at_fpr(s, y, f)
    best, achieved, thr = _tpr_at_fpr_bruteforce(s, y, f)
    assert res.value == best
    assert res.achieved_fpr == achieved <= f
    assert res.threshold == thr
    k = round(best * n_pos)
    assert res.ci == clopper_pearson(k, n_pos, 0.05)
    assert ((s >= res.threshold) & y).sum() == k


def test_tpr_at_fpr_continuous_matches_bruteforce():
    rng = np.random.default_rng(3)
    s, y = _binormal(rng, 3000, 5000, 1.5)
    for f in (0.01, 0.001, 0.0002):
        res = tpr_at_fpr(s, y, f, alpha=0.1)
        best, achieved, thr = _tpr_at_fpr_bruteforce(s, y, f)
        assert (res.value, res.achieved_fpr, res.threshold) == (best, achieved, thr)
        assert res.ci[0] <= res.value <= res.ci[1]


def test_tpr_at_fpr_not_measurable_reason_and_warning():
    rng = np.random.default_rng(4)
    s, y = _binormal(rng, 1000, 1000, 1.0)
    with pytest.warns(UndefinedMetricWarning, match="not measurable"):
        res = tpr_at_fpr(s, y, 0.0001)
    assert res.value is None and res.ci is None and res.achieved_fpr is None
    assert res.reason == "not measurable: 1000 non-members < 10000 needed for FPR 0.0001"
    # exactly 1/f non-members is measurable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tpr_at_fpr(s, y, 0.001).value is not None


def test_tpr_at_fpr_zero_is_a_measurement():
    # every non-member scores above every member: only "predict nobody" has FPR <= 1%
    y = np.arange(300) < 100
    s = np.where(y, 0.0, 1.0) + np.linspace(0, 0.5, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = tpr_at_fpr(s, y, 0.01)
    assert res.value == 0.0 and res.achieved_fpr == 0.0 and res.threshold == math.inf
    assert res.ci == (0.0, pytest.approx(1 - 0.025 ** (1 / 100)))
    assert res.reason is None


def test_perfect_separation_closed_forms():
    y = np.arange(20000) < 10000
    s = np.where(y, 2.0, 0.0) + np.linspace(0, 1, 20000)
    for f in (0.01, 0.001, 0.0001):
        res = tpr_at_fpr(s, y, f)
        assert res.value == 1.0 and res.achieved_fpr == 0.0
        assert res.ci == (pytest.approx(0.025 ** (1 / 10000)), 1.0)
    assert advantage(s, y) == 1.0
    assert balanced_accuracy(s, y) == 1.0
    assert auc_with_ci(s, y)[0] == 1.0


def test_identical_scores_closed_forms():
    y = np.arange(500) < 200
    s = np.full(500, 0.3)
    assert auc_with_ci(s, y)[0] == 0.5
    assert advantage(s, y) == 0.0
    assert balanced_accuracy(s, y) == 0.5
    res = tpr_at_fpr(s, y, 0.01)
    assert res.value == 0.0 and res.threshold == math.inf


# ---------------------------------------------------------------- balanced accuracy, advantage


@SETTINGS
@given(tied_data())
def test_balanced_accuracy_and_advantage_match_bruteforce(data):
    s, y = data
    best_ba, best_adv = 0.0, -1.0
    for t in [math.inf, *np.unique(s)]:
        pred = s >= t
        tpr = (pred & y).sum() / y.sum()
        fpr = (pred & ~y).sum() / (~y).sum()
        best_ba = max(best_ba, (tpr + 1 - fpr) / 2)
        best_adv = max(best_adv, tpr - fpr)
    assert balanced_accuracy(s, y) == pytest.approx(best_ba, abs=1e-12)
    assert advantage(s, y) == pytest.approx(best_adv, abs=1e-12)
    assert balanced_accuracy(s, y) >= 0.5 and advantage(s, y) >= 0.0


def test_ppv():
    assert ppv(0.0, 0.0, 0.5) is None
    assert ppv(0.5, 0.5, 0.5) == 0.5
    assert ppv(0.1, 0.001, 0.5) == pytest.approx(0.1 / 0.101)
    assert ppv(0.2, 0.01, 0.1) == pytest.approx(0.02 / (0.02 + 0.009))
    assert ppv(0.3, 0.0, 0.5) == 1.0


# ---------------------------------------------------------------- invariances


@SETTINGS
@given(tied_data(min_size=6, max_size=80, levels=40), st.integers(0, 3))
def test_strictly_increasing_transform_changes_nothing(data, seed):
    s, y = data
    assume(y.sum() >= 2 and (~y).sum() >= 2)
    t = np.exp((s - 20.0) / 7.0) * 3.0 + s**3
    kw = {"fprs": (0.5, 0.1, 0.05), "seed": seed}
    a = _quiet(evaluate, s, y, **kw)
    b = _quiet(evaluate, t, y, **kw)
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.fpr, b.fpr)
    np.testing.assert_array_equal(a.tpr, b.tpr)


@SETTINGS
@given(tied_data())
def test_swapping_labels_and_negating_scores_keeps_auc(data):
    s, y = data
    auc, (lo, hi) = auc_with_ci(s, y)
    auc2, (lo2, hi2) = auc_with_ci(-s, ~y)
    assert auc2 == pytest.approx(auc, abs=1e-12)
    assert (lo2, hi2) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
    # negating scores alone flips the AUC
    assert auc_with_ci(-s, y)[0] == pytest.approx(1 - auc, abs=1e-12)


# ---------------------------------------------------------------- epsilon lower bound


def _eps_formula(fpr_u, fnr_u, delta):
    terms = [
        math.log((1 - delta - fpr_u) / fnr_u) if 1 - delta - fpr_u > 0 else -math.inf,
        math.log((1 - delta - fnr_u) / fpr_u) if 1 - delta - fnr_u > 0 else -math.inf,
    ]
    return max(0.0, *terms)


def _cp_upper_scipy(k, n, level):
    return 1.0 if k == n else float(stats.beta.ppf(level, k + 1, n - k))


def test_epsilon_zero_for_random_scores():
    rng = np.random.default_rng(5)
    y = np.arange(4000) < 2000
    values = [epsilon_lower_bound(rng.random(4000), y, seed=i).value for i in range(20)]
    assert sum(v == 0.0 for v in values) >= 17
    assert all(v is not None and v >= 0.0 for v in values)


def test_epsilon_large_for_perfect_separation():
    rng = np.random.default_rng(6)
    y = np.arange(10000) < 5000
    s = np.where(y, 1.0, 0.0) + rng.random(10000)
    res = epsilon_lower_bound(s, y)
    assert res.value > 2.0
    assert res.method == "held-out threshold (half the records)"
    assert res.reason is None


@pytest.mark.parametrize(
    ("shift", "seed", "delta", "alpha"),
    [
        (1.0, 0, 1e-5, 0.05),
        (3.0, 1, 1e-5, 0.05),
        (2.0, 7, 1e-3, 0.1),
        (0.0, 2, 1e-5, 0.05),
    ],
)
def test_epsilon_matches_formula_at_chosen_threshold(shift, seed, delta, alpha):
    rng = np.random.default_rng(7)
    s, y = _binormal(rng, 3001, 4000, shift)
    res = epsilon_lower_bound(s, y, delta=delta, alpha=alpha, seed=seed)
    sel, ev = _split_halves(y, seed)
    assert np.intersect1d(sel, ev).size == 0 and sel.size + ev.size == y.size
    assert abs(int(y[sel].sum()) - int(y[ev].sum())) <= 1
    # threshold maximises the bound on the selection half (exhaustive search)
    r = _roc(s[sel], y[sel])
    all_thresholds = _eps_at(r, np.arange(r.tp.size), delta, alpha / 2)
    assert res.threshold == r.thresholds[int(np.argmax(all_thresholds))]
    # reported bound = formula on the evaluation half at that threshold
    pred, ye = s[ev] >= res.threshold, y[ev]
    fp, fn = int((pred & ~ye).sum()), int((~pred & ye).sum())
    fpr_u = _cp_upper_scipy(fp, int((~ye).sum()), 1 - alpha / 2)
    fnr_u = _cp_upper_scipy(fn, int(ye.sum()), 1 - alpha / 2)
    assert res.fpr_upper == pytest.approx(fpr_u, rel=1e-9)
    assert res.fnr_upper == pytest.approx(fnr_u, rel=1e-9)
    assert res.value == pytest.approx(_eps_formula(fpr_u, fnr_u, delta), rel=1e-9, abs=1e-12)


@SETTINGS
@given(tied_data(min_size=4, max_size=300, levels=50), st.floats(1e-6, 0.2))
def test_pruned_threshold_search_equals_exhaustive(data, delta):
    s, y = data
    r = _roc(s, y)
    exhaustive = int(np.argmax(_eps_at(r, np.arange(r.tp.size), delta, 0.025)))
    assert _best_threshold(r, delta, 0.025, chunk=3) == exhaustive


def test_epsilon_not_measurable():
    s = np.array([0.9, 0.1, 0.2, 0.3])
    y = np.array([True, False, False, False])
    with pytest.warns(UndefinedMetricWarning, match="epsilon"):
        res = epsilon_lower_bound(s, y)
    assert res.value is None and res.reason.startswith("not measurable")


# ---------------------------------------------------------------- evaluate / to_dict


def _plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return obj is None or type(obj) in (float, int, str, bool)


def test_evaluate_to_dict_layout():
    rng = np.random.default_rng(8)
    s, y = _binormal(rng, 1500, 2000, 1.0)
    with pytest.warns(UndefinedMetricWarning):
        m = evaluate(s, y, prior=0.2)
    d = m.to_dict()
    json.dumps(d)
    assert _plain(d)
    assert set(d) == TO_DICT_KEYS
    keys = {"0.01", "0.001", "0.0001"}
    for name in ("tpr_at_fpr", "tpr_at_fpr_ci", "ppv_at_fpr"):
        assert set(d[name]) == keys
    assert d["n_members"] == 1500 and d["n_non_members"] == 2000
    assert d["prior"] == 0.2 and d["alpha"] == 0.05
    # 2000 non-members: 0.01 and 0.001 measurable, 0.0001 not
    assert d["tpr_at_fpr"]["0.0001"] is None and d["tpr_at_fpr_ci"]["0.0001"] is None
    assert d["ppv_at_fpr"]["0.0001"] is None
    assert set(d["undefined"]) == {
        "tpr_at_fpr.0.0001",
        "tpr_at_fpr_ci.0.0001",
        "ppv_at_fpr.0.0001",
    }
    assert "2000 non-members < 10000" in d["undefined"]["tpr_at_fpr.0.0001"]
    for f in ("0.01", "0.001"):
        tpr = d["tpr_at_fpr"][f]
        assert tpr == tpr_at_fpr(s, y, float(f)).value
        assert d["ppv_at_fpr"][f] == pytest.approx(0.2 * tpr / (0.2 * tpr + 0.8 * float(f)))
        lo, hi = d["tpr_at_fpr_ci"][f]
        assert lo <= tpr <= hi
    assert d["auc"] == pytest.approx(roc_auc_score(y, s))
    assert d["auc_ci"] == list(auc_with_ci(s, y)[1])
    assert d["advantage"] == advantage(s, y)
    assert d["balanced_accuracy"] == balanced_accuracy(s, y)
    assert d["epsilon_lower_bound"] == epsilon_lower_bound(s, y).value
    ref_fpr, ref_tpr, _ = roc_curve(s, y)
    np.testing.assert_array_equal(m.fpr, ref_fpr)
    np.testing.assert_array_equal(m.tpr, ref_tpr)


def test_evaluate_every_none_has_a_reason():
    s = np.array([0.9, 0.1, 0.2, 0.3, 0.4])
    y = np.array([True, False, False, False, False])
    with pytest.warns(UndefinedMetricWarning):
        d = evaluate(s, y, fprs=(0.5, 0.01)).to_dict()
    json.dumps(d)

    def nones(obj, prefix=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from nones(v, f"{prefix}.{k}" if prefix else k)
        elif obj is None:
            yield prefix

    missing = set(nones({k: v for k, v in d.items() if k != "undefined"}))
    assert missing == {
        "tpr_at_fpr.0.01",
        "tpr_at_fpr_ci.0.01",
        "ppv_at_fpr.0.01",
        "epsilon_lower_bound",
    }
    assert missing == set(d["undefined"])
    assert d["tpr_at_fpr"]["0.5"] == 1.0


def test_evaluate_ppv_undefined_when_nobody_predicted_at_prior_one():
    y = np.arange(300) < 100
    s = np.where(y, 0.0, 1.0)
    with pytest.warns(UndefinedMetricWarning, match="PPV"):
        d = evaluate(s, y, fprs=(0.01,), prior=1.0).to_dict()
    assert d["tpr_at_fpr"]["0.01"] == 0.0
    assert d["ppv_at_fpr"]["0.01"] is None
    assert "ppv_at_fpr.0.01" in d["undefined"]


def test_evaluate_large_input_is_fast():
    import time

    rng = np.random.default_rng(9)
    s, y = _binormal(rng, 200_000, 200_000, 0.3)
    start = time.perf_counter()
    _quiet(evaluate, s, y)
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------- package hygiene


def test_all_names_exist():
    for name in M.__all__:
        assert hasattr(M, name), name
    assert len(set(M.__all__)) == len(M.__all__)


@pytest.mark.parametrize("module", ["roc", "privacy", "evaluate"])
def test_docstring_examples_run(module):
    import importlib

    mod = importlib.import_module(f"miaudit.metrics.{module}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
