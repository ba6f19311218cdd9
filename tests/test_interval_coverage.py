"""Coverage of the TPR-at-FPR and AUC intervals, by simulation (fixed seeds).

Each test draws repeated samples from distributions whose ROC is known exactly and
counts how often the 95% interval covers the true TPR at the true FPR ``f``
(``TPR(f) = sup{G(t) : F(t) <= f}``) or the true AUC.

Monte-Carlo error: the fast tests use ``REPS = 3000`` repetitions per case. An interval
whose true coverage is exactly 0.95 reads below 0.94 with probability 0.6%
(``(0.95 - 0.94) / sqrt(0.95 * 0.05 / 3000) = 2.5`` standard errors), so the
``>= 0.94`` assertions test the requirement, not luck. The TPR interval is conservative
(0.98-1.00 in benchmarks/RESULTS.md) and passes with a wide margin; the clustered AUC
interval is a Wald interval, near 0.95. benchmarks/interval_coverage.py has the full
table.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics import auc_with_ci, clopper_pearson, tpr_at_fpr

REPS = 3000
LEVEL = 0.94


def _binormal(rng, reps, n, mu, sd, step=0.0):
    """``reps`` samples of ``n`` members N(mu, sd^2) then ``n`` non-members N(0, 1)."""
    s = np.concatenate([rng.normal(mu, sd, (reps, n)), rng.normal(0, 1, (reps, n))], axis=1)
    return np.round(s / step) * step if step else s


def _true_tpr(f, mu, sd, step=0.0, spread=1.0):
    """``sup{G(t) : F(t) <= f}`` for non-members N(0, spread^2), members
    N(mu, sd^2 + spread^2 - 1), scores rounded to multiples of ``step``."""
    z = spread * stats.norm.isf(f)
    member_sd = math.sqrt(sd**2 + spread**2 - 1)
    if not step:
        return float(stats.norm.sf((z - mu) / member_sd))
    v = math.ceil((z + step / 2) / step - 1e-12) * step  # smallest atom with F(v) <= f
    return float(stats.norm.sf((v - step / 2 - mu) / member_sd))


def _pooled(rng, records, targets, record_sd, mu, same=False):
    """Scores of ``targets`` targets pooled: record effect N(0, record_sd^2) shared by a
    record's scores; each record a member of half the targets (alternating), or of all
    or none (``same``: retrains on one training set). Returns scores, is_member, clusters."""
    t = np.zeros(targets, int) if same else np.arange(targets)
    member = (np.arange(records)[:, None] + t[None, :]) % 2 == 0
    s = rng.normal(0, record_sd, (records, 1)) + mu * member + rng.normal(size=member.shape)
    clusters = np.broadcast_to(np.arange(records)[:, None], member.shape)
    return s.ravel(), member.ravel(), clusters.ravel()


def _coverage(samples, y, fprs, truths, clusters=None):
    """Share of rows of ``samples`` whose interval covers the truth, per FPR level."""
    hits = dict.fromkeys(fprs, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for s in samples:
            for f in fprs:
                lo, hi = tpr_at_fpr(s, y, f, clusters=clusters).ci
                hits[f] += lo <= truths[f] <= hi
    return {f: h / len(samples) for f, h in hits.items()}


@pytest.mark.parametrize(
    ("mu", "sd", "step"),
    [(1.0, 2.0, 0.0), (2.0, 0.5, 0.0), (2.0, 1.0, 0.5)],
    ids=["members-sd-2", "members-sd-0.5", "rounded-to-0.5"],
)
def test_tpr_interval_covers_true_tpr(mu, sd, step):
    n, fprs = 1000, (0.01, 0.05)
    rng = np.random.default_rng([1, round(10 * mu), round(10 * sd), round(10 * step)])
    samples = _binormal(rng, REPS, n, mu, sd, step)
    y = np.arange(2 * n) < n
    truths = {f: _true_tpr(f, mu, sd, step) for f in fprs}
    cov = _coverage(samples, y, fprs, truths)
    assert min(cov.values()) >= LEVEL, cov
    # the former interval (Clopper-Pearson at the chosen threshold) fails the same check
    # on continuous scores: it ignores the threshold's own uncertainty
    if not step:
        old = [clopper_pearson(round(tpr_at_fpr(s, y, 0.01).value * n), n) for s in samples[:300]]
        assert np.mean([lo <= truths[0.01] <= hi for lo, hi in old]) < 0.85


def test_clustered_intervals_cover_pooled_targets():
    # the audit's design: 4 targets, each record a member of 2, record effect sd 2
    records, targets, mu, record_sd = 500, 4, 2.0, 2.0
    rng = np.random.default_rng(2)
    spread = math.sqrt(1 + record_sd**2)
    truths = {0.01: _true_tpr(0.01, mu, 1.0, spread=spread)}
    true_auc = float(stats.norm.cdf(mu / math.sqrt(2 + 2 * record_sd**2)))
    tpr_hits = dict.fromkeys(truths, 0)
    auc_hits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for _ in range(REPS):
            s, y, c = _pooled(rng, records, targets, record_sd, mu)
            for f, t in truths.items():
                lo, hi = tpr_at_fpr(s, y, f, clusters=c).ci
                tpr_hits[f] += lo <= t <= hi
            lo, hi = auc_with_ci(s, y, clusters=c)[1]
            auc_hits += lo <= true_auc <= hi
    assert min(tpr_hits.values()) / REPS >= LEVEL, tpr_hits
    assert auc_hits / REPS >= LEVEL, auc_hits


def test_unclustered_intervals_undercover_retrains():
    # 8 retrains on one training set pooled: treating the 8 copies of a record as
    # independent makes both intervals too narrow; with clusters they cover
    records, targets, mu, record_sd, reps = 250, 8, 2.0, 2.0, 600
    rng = np.random.default_rng(3)
    spread = math.sqrt(1 + record_sd**2)
    t = _true_tpr(0.01, mu, 1.0, spread=spread)
    true_auc = float(stats.norm.cdf(mu / math.sqrt(2 + 2 * record_sd**2)))
    hits = {"auc": 0, "auc_clustered": 0, "tpr": 0, "tpr_clustered": 0}
    for _ in range(reps):
        s, y, c = _pooled(rng, records, targets, record_sd, mu, same=True)
        for key, cl in (("", None), ("_clustered", c)):
            lo, hi = auc_with_ci(s, y, clusters=cl)[1]
            hits["auc" + key] += lo <= true_auc <= hi
            lo, hi = tpr_at_fpr(s, y, 0.01, clusters=cl).ci
            hits["tpr" + key] += lo <= t <= hi
    cov = {k: v / reps for k, v in hits.items()}
    assert cov["auc"] < 0.75 and cov["tpr"] < 0.93, cov
    assert cov["auc_clustered"] >= 0.91 and cov["tpr_clustered"] >= 0.97, cov


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mu", "sd", "step", "n"),
    [(2.0, 1.0, 0.0, 5000), (1.0, 2.0, 0.0, 20000), (2.0, 0.5, 0.0, 5000),
     (2.0, 1.0, 0.5, 5000), (2.0, 1.0, 0.5, 20000)],
)
def test_tpr_interval_covers_true_tpr_at_low_fpr(mu, sd, step, n):
    reps, fprs = 1000, (0.01, 0.001)
    rng = np.random.default_rng([4, n, round(10 * sd), round(10 * step)])
    y = np.arange(2 * n) < n
    truths = {f: _true_tpr(f, mu, sd, step) for f in fprs}
    cov = _coverage(_binormal(rng, reps, n, mu, sd, step), y, fprs, truths)
    # 1000 repetitions: a true 0.95 reads below 0.94 with probability 7%; the interval
    # is conservative here (>= 0.98), so the margin is wide
    assert min(cov.values()) >= LEVEL, cov


@pytest.mark.slow
@pytest.mark.parametrize(("targets", "same"), [(2, False), (4, False), (4, True), (8, True)])
def test_clustered_intervals_cover_at_low_fpr(targets, same):
    n_neg, mu, record_sd, reps = 10000, 2.0, 2.0, 1000
    records = 2 * n_neg // targets
    rng = np.random.default_rng([5, targets, same])
    spread = math.sqrt(1 + record_sd**2)
    truths = {f: _true_tpr(f, mu, 1.0, spread=spread) for f in (0.01, 0.001)}
    true_auc = float(stats.norm.cdf(mu / math.sqrt(2 + 2 * record_sd**2)))
    hits = dict.fromkeys([*truths, "auc"], 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for _ in range(reps):
            s, y, c = _pooled(rng, records, targets, record_sd, mu, same=same)
            for f, t in truths.items():
                lo, hi = tpr_at_fpr(s, y, f, clusters=c).ci
                hits[f] += lo <= t <= hi
            lo, hi = auc_with_ci(s, y, clusters=c)[1]
            hits["auc"] += lo <= true_auc <= hi
    cov = {k: v / reps for k, v in hits.items()}
    # the AUC interval is a Wald interval near 0.95: 1000 repetitions put a true 0.95
    # at 0.95 +- 0.014 (95%), so it is held to 0.93 here and to 0.94 in the fast test
    assert cov[0.01] >= LEVEL and cov[0.001] >= LEVEL and cov["auc"] >= 0.93, cov
