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
    evaluate,
    ppv,
    roc_counts,
    roc_curve,
    tpr_at_fpr,
)
from miaudit.metrics.privacy import audit_epsilon_lower_bound
from miaudit.metrics.roc import AUC_INTERVAL, AUC_INTERVAL_CLUSTERED
from miaudit.metrics.tpr import (
    BIAS_NOTE_BELOW,
    TPR_INTERVAL,
    TPR_INTERVAL_CLUSTERED,
    _bracket_counts,
    _design_effect,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TO_DICT_KEYS = {
    "auc",
    "auc_ci",
    "tpr_at_fpr",
    "tpr_at_fpr_ci",
    "tpr_at_fpr_note",
    "interval_method",
    "epsilon_method",
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


def _interval_bruteforce(s, y, f, alpha=0.05):
    """The order-statistic interval, by linear search with scipy's binomial and beta."""
    a = alpha / 4
    neg, pos = np.sort(s[~y])[::-1], s[y]
    n, m = neg.size, pos.size
    ks = np.arange(1, n + 2)
    k = int(ks[np.argmax(stats.binom.sf(ks - 1, n, f) <= a)])
    top = m if k > n else int((pos >= neg[k - 1]).sum())  # members >= k-th highest
    hi = 1.0 if top == m else float(stats.beta.ppf(1 - a, top + 1, m - top))
    js = np.flatnonzero(stats.binom.cdf(np.arange(n), n, f) <= a)
    if not js.size:
        return 0.0, hi
    low = int((pos > neg[max(js)]).sum())  # members above the (j+1)-th highest
    lo = 0.0 if low == 0 else float(stats.beta.ppf(a, low, m - low + 1))
    return lo, hi


@pytest.mark.parametrize("n", [1, 3, 10, 99, 100, 101, 1000, 4321])
@pytest.mark.parametrize("f", [0.5, 0.1, 0.01, 0.001])
def test_bracket_counts_match_scipy_binomial(n, f):
    a = 0.0125
    k, j = _bracket_counts(n, f, a, 1.0)
    ks = np.arange(1, n + 2)
    ref_k = int(ks[np.argmax(stats.binom.sf(ks - 1, n, f) <= a)])
    js = np.flatnonzero(stats.binom.cdf(np.arange(n), n, f) <= a)
    assert k == ref_k
    assert j == (int(js.max()) if js.size else None)
    if j is not None:
        assert j <= math.floor(n * f) < k  # the point estimate lies inside


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
    assert ((s >= res.threshold) & y).sum() == k
    lo, hi = _interval_bruteforce(s, y, f)
    assert res.ci == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert res.interval_method == TPR_INTERVAL


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
    # upper end: one-sided Clopper-Pearson at alpha / 4 of 0 members at t_lo
    assert res.ci == (0.0, pytest.approx(1 - 0.0125 ** (1 / 100)))
    assert res.reason is None


def test_perfect_separation_closed_forms():
    y = np.arange(20000) < 10000
    s = np.where(y, 2.0, 0.0) + np.linspace(0, 1, 20000)
    for f in (0.01, 0.001):
        res = tpr_at_fpr(s, y, f)
        assert res.value == 1.0 and res.achieved_fpr == 0.0
        # lower end: one-sided Clopper-Pearson at alpha / 4 of all members at t_hi
        assert res.ci == (pytest.approx(0.0125 ** (1 / 10000)), 1.0)
    # 10,000 non-members, none above the members, leave a 37% chance that a threshold
    # with true FPR > 1e-4 sees no false positive: no FPR <= 1e-4 is certified
    res = tpr_at_fpr(s, y, 0.0001)
    assert res.value == 1.0 and res.ci == (0.0, 1.0)
    assert "lower end 0" in res.note and "biased upward" in res.note
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


# ---------------------------------------------------------------- intervals: properties


@st.composite
def clustered_data(draw, max_records: int = 30, levels: int = 6):
    """Tied scores with a cluster (record) label each; both classes present."""
    s, y = draw(tied_data(min_size=2, max_size=90, levels=levels))
    records = draw(st.integers(1, max_records))
    c = np.array(draw(st.lists(st.integers(0, records - 1), min_size=s.size,
                               max_size=s.size)))
    return s, y, c


@SETTINGS
@given(tied_data(max_size=120, levels=12), st.sampled_from([0.02, 0.05, 0.1, 0.3, 0.5, 1.0]),
       st.sampled_from([0.05, 0.2, 0.5]))
def test_tpr_interval_contains_estimate_and_lies_in_unit_interval(data, f, alpha):
    s, y = data
    res = _quiet(tpr_at_fpr, s, y, f, alpha)
    assume(res.value is not None)
    lo, hi = res.ci
    assert 0.0 <= lo <= res.value <= hi <= 1.0
    # no clamp is needed without clusters: the raw construction already contains it
    assert (lo, hi) == (pytest.approx(_interval_bruteforce(s, y, f, alpha)[0], abs=1e-12),
                        pytest.approx(_interval_bruteforce(s, y, f, alpha)[1], abs=1e-12))


@SETTINGS
@given(clustered_data(), st.sampled_from([0.02, 0.05, 0.1, 0.3, 1.0]))
def test_clustered_intervals_contain_estimates_and_lie_in_unit_interval(data, f):
    s, y, c = data
    res = _quiet(tpr_at_fpr, s, y, f, clusters=c)
    if res.value is not None:
        assert 0.0 <= res.ci[0] <= res.value <= res.ci[1] <= 1.0
        assert res.interval_method == TPR_INTERVAL_CLUSTERED
    auc, (lo, hi) = auc_with_ci(s, y, clusters=c)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert 0.0 <= lo <= auc <= hi <= 1.0


@SETTINGS
@given(tied_data(min_size=6, max_size=200, levels=30), st.sampled_from([0.01, 0.05, 0.2]))
def test_clustered_interval_is_never_narrower_than_unclustered_bracket(data, f):
    # each record twice (scores perturbed): the design effect only widens the bracket
    s, y = data
    s2, y2 = np.concatenate([s, s + 0.5]), np.concatenate([y, y])
    c = np.tile(np.arange(s.size), 2)
    n = int((~y2).sum())
    for deff in (1.0, 1.5, 2.0):
        k, j = _bracket_counts(n, f, 0.0125, deff)
        k1, j1 = _bracket_counts(n, f, 0.0125, 1.0)
        assert k >= k1 and (j is None or (j1 is not None and j <= j1))
    a = _quiet(tpr_at_fpr, s2, y2, f, clusters=c)
    assume(a.value is not None)
    assert 0.0 <= a.ci[0] <= a.value <= a.ci[1] <= 1.0


# ---------------------------------------------------------------- clusters


def _obuchowski_bruteforce(s, y, c):
    """Obuchowski (1997) from the quadratic kernel matrix."""
    x, z = s[y], s[~y]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    ids = np.unique(c)
    m, n = x.size, z.size
    d10 = np.array([v10[c[y] == k].sum() - (c[y] == k).sum() * auc for k in ids])
    d01 = np.array([v01[c[~y] == k].sum() - (c[~y] == k).sum() * auc for k in ids])
    i10 = len({*c[y].tolist()})
    i01 = len({*c[~y].tolist()})
    i = ids.size
    s10 = i10 / ((i10 - 1) * m) * (d10**2).sum()
    s01 = i01 / ((i01 - 1) * n) * (d01**2).sum()
    s11 = i / (i - 1) * (d10 * d01).sum()
    return auc, s10 / m + s01 / n + 2 * s11 / (m * n)


@SETTINGS
@given(clustered_data(levels=10))
def test_clustered_auc_variance_matches_quadratic_formula(data):
    from miaudit.metrics.roc import _auc_obuchowski, _clusters

    s, y, c = data
    assume(len(set(c[y].tolist())) >= 2 and len(set(c[~y].tolist())) >= 2)
    auc, var = _auc_obuchowski(_clusters(s, y, c))
    ref_auc, ref_var = _obuchowski_bruteforce(s, y, c)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-9, abs=1e-15)


@SETTINGS
@given(tied_data(min_size=4, levels=8), st.integers(0, 2**31))
def test_singleton_clusters_give_the_delong_interval(data, seed):
    s, y = data
    labels = np.random.default_rng(seed).permutation(s.size) * 7 - 3  # any distinct ints
    assert auc_with_ci(s, y, clusters=labels) == (
        pytest.approx(auc_with_ci(s, y)[0], abs=1e-12),
        (pytest.approx(auc_with_ci(s, y)[1][0], abs=1e-9),
         pytest.approx(auc_with_ci(s, y)[1][1], abs=1e-9)),
    )


def test_design_effect_closed_forms():
    sizes = np.full(100, 2.0)
    # both copies of a record always agree: deff = cluster size
    assert _design_effect(np.where(np.arange(100) < 10, 2.0, 0.0), sizes) == 2.0
    # never both: variance below binomial, clipped to 1
    assert _design_effect(np.where(np.arange(100) < 20, 1.0, 0.0), sizes) == 1.0
    # no success: cannot be estimated, worst case
    assert _design_effect(np.zeros(100), sizes) == 2.0
    # singletons: n / (n - 1) before the clip to the largest cluster (1)
    assert _design_effect((np.arange(50) < 5).astype(float), np.ones(50)) == 1.0
    # mixed sizes: ratio-estimator variance over the binomial variance
    counts, sz = np.array([2.0, 0.0, 1.0, 0.0, 3.0]), np.array([2.0, 1.0, 3.0, 1.0, 3.0])
    p = counts.sum() / sz.sum()
    ref = 5 / 4 * ((counts - sz * p) ** 2).sum() / (sz.sum() * p * (1 - p))
    assert _design_effect(counts, sz) == pytest.approx(min(max(ref, 1.0), 3.0))


def test_duplicated_records_widen_the_intervals():
    # every record scored twice identically: half the information
    rng = np.random.default_rng(11)
    s, y = _binormal(rng, 3000, 3000, 1.5)
    s2, y2, c = np.concatenate([s, s]), np.concatenate([y, y]), np.tile(np.arange(6000), 2)
    once, twice = tpr_at_fpr(s, y, 0.01), tpr_at_fpr(s2, y2, 0.01, clusters=c)
    assert twice.value == once.value
    assert twice.ci == (pytest.approx(once.ci[0], abs=0.01), pytest.approx(once.ci[1], abs=0.01))
    naive = tpr_at_fpr(s2, y2, 0.01).ci
    assert naive[1] - naive[0] < 0.85 * (twice.ci[1] - twice.ci[0])
    auc1, ci1 = auc_with_ci(s, y)
    auc2, ci2 = auc_with_ci(s2, y2, clusters=c)
    assert auc2 == pytest.approx(auc1)
    assert ci2[1] - ci2[0] == pytest.approx(ci1[1] - ci1[0], rel=0.01)
    ci_naive = auc_with_ci(s2, y2)[1]
    assert ci_naive[1] - ci_naive[0] == pytest.approx((ci1[1] - ci1[0]) / math.sqrt(2),
                                                      rel=0.01)


@pytest.mark.parametrize(
    ("clusters", "match"),
    [(np.arange(5), "one label per score"), (np.linspace(0, 1, 6), "integer record indices"),
     (np.array(list("abcdef")), "integer record indices")],
)
def test_bad_clusters_are_refused(clusters, match):
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([True, False, True, False, True, False])
    for fn in (lambda: auc_with_ci(s, y, clusters=clusters),
               lambda: tpr_at_fpr(s, y, 0.5, clusters=clusters),
               lambda: evaluate(s, y, fprs=(0.5,), clusters=clusters)):
        with pytest.raises(ValueError, match=match):
            _quiet(fn)


def test_float_integer_clusters_are_accepted():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([True, False, True, False, True, False])
    a = auc_with_ci(s, y, clusters=np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0]))
    b = auc_with_ci(s, y, clusters=np.array([5, 5, 9, 9, -1, -1]))
    assert a == b


# ---------------------------------------------------------------- notes


def test_bias_note_below_the_measured_level():
    rng = np.random.default_rng(12)
    s, y = _binormal(rng, 5000, 5000, 2.0)
    low = tpr_at_fpr(s, y, 0.001)  # 5 expected false positives
    assert low.note.startswith("biased upward") and "5 expected false positives" in low.note
    assert f"< {BIAS_NOTE_BELOW:g}" in low.note
    assert tpr_at_fpr(s, y, 0.01).note is None  # 50


def test_tie_note_when_a_tied_group_may_break_the_budget():
    # non-members: 1,000 at 0, 12 at 1.0 (FPR of score 1.0 = 1.2% > 1%), the rest below
    # -> with 19 of them the sample just meets the budget at 1.0 and TPR jumps by the
    # 300 members tied there
    y = np.r_[np.ones(400, bool), np.zeros(2000, bool)]
    s = np.r_[np.full(300, 1.0), np.full(100, 2.0), np.full(19, 1.0), np.zeros(1981)]
    res = tpr_at_fpr(s, y, 0.01)
    assert res.value == 1.0 and res.threshold == 1.0
    assert res.note.startswith("biased upward by ties: 300 of the 400 true positives")
    # far below the budget the same tie is harmless
    s2 = np.r_[np.full(300, 1.0), np.full(100, 2.0), np.full(2, 1.0), np.zeros(1998)]
    assert tpr_at_fpr(s2, y, 0.01).note is None


def test_evaluate_with_clusters():
    rng = np.random.default_rng(13)
    records, targets = 3000, 4
    member = (np.arange(records)[:, None] + np.arange(targets)) % 2 == 0
    s = rng.normal(0, 2, (records, 1)) + 2.0 * member + rng.normal(size=member.shape)
    c = np.broadcast_to(np.arange(records)[:, None], member.shape).ravel()
    s, member = s.ravel(), member.ravel()
    plain = _quiet(evaluate, s, member)
    m = _quiet(evaluate, s, member, clusters=c)
    d, p = m.to_dict(), plain.to_dict()
    assert m.n_clusters == records and plain.n_clusters is None
    assert d["interval_method"] == {"auc": AUC_INTERVAL_CLUSTERED,
                                    "tpr_at_fpr": TPR_INTERVAL_CLUSTERED}
    assert p["interval_method"] == {"auc": AUC_INTERVAL, "tpr_at_fpr": TPR_INTERVAL}
    for key in ("auc", "tpr_at_fpr", "ppv_at_fpr", "advantage", "epsilon_lower_bound"):
        assert d[key] == p[key]  # the figures do not change, only their intervals
    assert d["auc_ci"] == list(auc_with_ci(s, member, clusters=c)[1])
    assert d["tpr_at_fpr_ci"]["0.01"] == list(tpr_at_fpr(s, member, 0.01, clusters=c).ci)
    assert d["auc_ci"] != p["auc_ci"]
    json.dumps(d)
    assert _plain(d)


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
        m = evaluate(s, y, prior=0.2, bernoulli_membership=True)
    d = m.to_dict()
    json.dumps(d)
    assert _plain(d)
    assert set(d) == TO_DICT_KEYS
    assert d["epsilon_method"].startswith("one-run")
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
    assert d["epsilon_lower_bound"] == audit_epsilon_lower_bound(
        s, y, bernoulli_membership=True).value
    # 2,000 non-members: 20 expected false positives at 1%, 2 at 0.1%
    assert set(d["tpr_at_fpr_note"]) == {"0.001"}
    assert d["tpr_at_fpr_note"]["0.001"] == m.tpr_at_fpr["0.001"].note
    assert d["interval_method"] == {"auc": AUC_INTERVAL, "tpr_at_fpr": TPR_INTERVAL}
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


@pytest.mark.parametrize("module", ["roc", "tpr", "binomial", "privacy", "evaluate"])
def test_docstring_examples_run(module):
    import importlib

    mod = importlib.import_module(f"miaudit.metrics.{module}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_multiple_testing_against_their_definitions():
    from miaudit.metrics import benjamini_hochberg, holm

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        p = rng.random(n) ** rng.uniform(0.3, 4)
        for alpha in (0.01, 0.05, 0.2):
            # BH: reject the k smallest, k the largest with p_(k) <= k alpha / n
            ranks = np.argsort(p, kind="stable")
            k = max([i + 1 for i in range(n) if p[ranks[i]] <= (i + 1) * alpha / n],
                    default=0)
            want = np.zeros(n, dtype=bool)
            want[ranks[:k]] = True
            np.testing.assert_array_equal(benjamini_hochberg(p, alpha), want)
            # Holm: step down while p_(i) <= alpha / (n - i)
            got = holm({str(i): float(v) for i, v in enumerate(p)}, alpha)
            stop = next((i for i in range(n) if p[ranks[i]] > alpha / (n - i)), n)
            assert [got[str(j)] for j in range(n)] == [j in set(ranks[:stop]) for j in range(n)]
