"""Coverage of the TPR-at-FPR and AUC intervals, by simulation.

Each repetition draws members and non-members from a distribution whose ROC is known
exactly, computes ``miaudit.metrics.tpr_at_fpr`` at 1% and 0.1% FPR, and records whether
the 95% interval covers the *true* TPR at the *true* FPR ``f``. Compared:

* old: Clopper-Pearson on the members at the empirically chosen threshold (the interval
  miaudit reported before; it ignores the threshold's own uncertainty);
* new: the interval :func:`miaudit.metrics.tpr_at_fpr` reports now (threshold bracketed by
  non-member order statistics, one-sided Clopper-Pearson at both ends; with ``clusters``,
  counts deflated by the records' design effect).

Distributions: binormal with equal and unequal variances, the same rounded to steps of 0.5
(heavy ties), and pooled targets (T = 2 and 4 targets, every record member of half of them,
a record effect shared by its T scores) analysed with and without ``clusters``.

    python benchmarks/interval_coverage.py            # 500 repetitions
    python benchmarks/interval_coverage.py --reps 100 # quicker look
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
from _results import table, write_section
from scipy import stats

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics import clopper_pearson, tpr_at_fpr
from miaudit.metrics.roc import _auc_with_ci, _clusters, _roc
from miaudit.metrics.tpr import BIAS_NOTE_BELOW, TPR_INTERVAL, _tpr_at_fpr

ALPHA = 0.05
FPRS = (0.01, 0.001)
SIZES = (1000, 2000, 20000)


@dataclass(frozen=True)
class Binormal:
    """Non-members N(0, 1), members N(mu, sd^2); scores rounded to multiples of ``step``
    when ``step`` > 0.

    With ``targets`` = T > 0 the scores are pooled over T targets: ``2 n / T`` records
    each scored once per target, a record effect ``u ~ N(0, record_sd^2)`` added to all
    T of its scores (the difficulty a record keeps from target to target and that shared
    reference models carry). Membership is complementary (the audit's design: each
    record a member of half the targets, alternating) or, with ``same``, the same in
    every target (retrains on one training set).
    """

    name: str
    mu: float
    sd: float = 1.0
    step: float = 0.0
    targets: int = 0
    record_sd: float = 0.0
    same: bool = False

    @property
    def spread(self) -> float:
        return math.sqrt(1.0 + self.record_sd**2)

    def _round(self, x: np.ndarray) -> np.ndarray:
        return np.round(x / self.step) * self.step if self.step else x

    def sample(self, rng: np.random.Generator, n_neg: int):
        """``(scores, is_member, clusters or None)`` with ``n_neg`` non-members and as
        many members."""
        if not self.targets:
            s = np.concatenate([rng.normal(self.mu, self.sd, n_neg), rng.normal(0, 1, n_neg)])
            return self._round(s), np.arange(2 * n_neg) < n_neg, None
        records = 2 * n_neg // self.targets
        t = 0 * np.arange(self.targets) if self.same else np.arange(self.targets)
        member = (np.arange(records)[:, None] + t[None, :]) % 2 == 0  # (records, T)
        u = rng.normal(0, self.record_sd, records)[:, None]
        e = rng.normal(0, 1, member.shape)
        s = u + np.where(member, self.mu + self.sd * e, e)
        clusters = np.broadcast_to(np.arange(records)[:, None], member.shape)
        return self._round(s).ravel(), member.ravel(), clusters.ravel()

    def fpr_at(self, t: float) -> float:
        """True ``F(t) = P(non-member score >= t)``."""
        if math.isinf(t):
            return 0.0 if t > 0 else 1.0
        x = t - self.step / 2 if self.step else t
        return float(stats.norm.sf(x / self.spread))

    def _tpr_at(self, t: float) -> float:
        x = t - self.step / 2 if self.step else t
        scale = math.sqrt(self.sd**2 + self.record_sd**2)
        return float(stats.norm.sf((x - self.mu) / scale))

    def true_tpr(self, f: float) -> float:
        """``TPR(f) = sup{G(t) : F(t) <= f}``."""
        z = self.spread * float(stats.norm.isf(f))
        if not self.step:
            return self._tpr_at(z)
        # smallest atom v with F(v) = P(Y >= v - step/2) <= f
        v = math.ceil((z + self.step / 2) / self.step - 1e-12) * self.step
        return self._tpr_at(v)

    def true_auc(self) -> float | None:
        """AUC of two scores from different records (None for rounded scores)."""
        if self.step:
            return None
        var = self.sd**2 + 1.0 + 2 * self.record_sd**2
        return float(stats.norm.cdf(self.mu / math.sqrt(var)))


DISTRIBUTIONS = (
    Binormal("binormal, equal variance (mu 2)", mu=2.0),
    Binormal("binormal, members sd 2 (mu 1)", mu=1.0, sd=2.0),
    Binormal("binormal, members sd 0.5 (mu 2)", mu=2.0, sd=0.5),
    Binormal("binormal (mu 2) rounded to steps of 0.5", mu=2.0, step=0.5),
    Binormal("pooled, T = 2 complementary, record sd 2", mu=2.0, targets=2, record_sd=2.0),
    Binormal("pooled, T = 4 complementary, record sd 2", mu=2.0, targets=4, record_sd=2.0),
    Binormal("pooled, T = 4 retrains (same members), record sd 2", mu=2.0, targets=4,
             record_sd=2.0, same=True),
    Binormal("pooled, T = 8 retrains (same members), record sd 2", mu=2.0, targets=8,
             record_sd=2.0, same=True),
)


def run_cell(d: Binormal, n_neg: int, reps: int, seed: int) -> tuple[list[dict], dict | None]:
    """One row per FPR level for ``d`` at ``n_neg`` non-members, and for pooled scores
    the AUC coverage with and without ``clusters``.

    The library's private helpers are called so that each repetition sorts once; they
    are what :func:`~miaudit.metrics.tpr_at_fpr` and :func:`~miaudit.metrics.auc_with_ci`
    run.
    """
    rng = np.random.default_rng(seed)
    truth = {f: d.true_tpr(f) for f in FPRS}
    keys = ("old", "new", "naive", "width", "old_width", "value", "over", "flagged")
    acc = {f: dict.fromkeys(keys, 0.0) for f in FPRS}
    auc_truth = d.true_auc() if d.targets else None
    auc_hits = {"DeLong": 0, "clustered": 0}
    for _ in range(reps):
        s, y, c = d.sample(rng, n_neg)
        r = _roc(s, y)
        cl = None if c is None else _clusters(s, y, c)
        for f in FPRS:
            res = _tpr_at_fpr(r, f, ALPHA, cl)
            a, t = acc[f], truth[f]
            lo, hi = clopper_pearson(round(res.value * r.n_pos), r.n_pos, ALPHA)
            a["old"] += lo <= t <= hi
            a["old_width"] += hi - lo
            a["new"] += res.ci[0] <= t <= res.ci[1]
            a["width"] += res.ci[1] - res.ci[0]
            a["value"] += res.value
            a["over"] += d.fpr_at(res.threshold) > f
            a["flagged"] += res.note is not None and res.note.startswith("biased")
            if cl is not None:
                naive = _tpr_at_fpr(r, f, ALPHA).ci
                a["naive"] += naive[0] <= t <= naive[1]
        if auc_truth is not None:
            lo, hi = _auc_with_ci(r, ALPHA)[1]
            auc_hits["DeLong"] += lo <= auc_truth <= hi
            lo, hi = _auc_with_ci(r, ALPHA, cl)[1]
            auc_hits["clustered"] += lo <= auc_truth <= hi
    rows = []
    for f in FPRS:
        a = acc[f]
        rows.append({
            "distribution": d.name,
            "non-members": f"{n_neg:,}",
            "FPR": f"{100 * f:g}%",
            "f x n": f"{f * n_neg:g}",
            "true TPR": f"{truth[f]:.3f}",
            "old coverage": f"{a['old'] / reps:.3f}",
            "new coverage": f"{a['new'] / reps:.3f}",
            "new without clusters": f"{a['naive'] / reps:.3f}" if d.targets else "",
            "old mean width": f"{a['old_width'] / reps:.3f}",
            "new mean width": f"{a['width'] / reps:.3f}",
            "relative bias": f"{(a['value'] / reps - truth[f]) / truth[f]:+.1%}",
            "true FPR > f": f"{a['over'] / reps:.2f}",
            "flagged biased": f"{a['flagged'] / reps:.2f}",
        })
    auc = None
    if auc_truth is not None:
        auc = {"distribution": d.name, "non-members": f"{n_neg:,}",
               "true AUC": f"{auc_truth:.3f}",
               "DeLong (scores independent)": f"{auc_hits['DeLong'] / reps:.3f}",
               "clustered DeLong (Obuchowski)": f"{auc_hits['clustered'] / reps:.3f}"}
    return rows, auc


BIAS_FXN = (1, 2, 3, 5, 10, 15, 20, 30)
BIAS_DISTRIBUTIONS = (
    Binormal("no signal (mu 0)", mu=0.0),
    Binormal("equal variance (mu 2)", mu=2.0),
    Binormal("members sd 2 (mu 1)", mu=1.0, sd=2.0),
    Binormal("members sd 0.5 (mu 2)", mu=2.0, sd=0.5),
)


def bias_curve(reps: int, seed: int) -> list[dict]:
    """Relative bias of the point estimate against ``f * n_non_members``, at both FPRs
    (continuous scores, as many members as non-members)."""
    rows = []
    for m in BIAS_FXN:
        for f in FPRS:
            row = {"f x n": str(m), "FPR": f"{100 * f:g}%"}
            n = round(m / f)
            for i, d in enumerate(BIAS_DISTRIBUTIONS):
                rng = np.random.default_rng([seed, m, round(1 / f), i])
                truth = d.true_tpr(f)
                values = np.array([tpr_at_fpr(*d.sample(rng, n)[:2], f).value
                                   for _ in range(reps)])
                se = values.std(ddof=1) / math.sqrt(reps) / truth
                row[d.name] = f"{(values.mean() - truth) / truth:+.1%} ± {se:.1%}"
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--bias-reps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = ap.parse_args()
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    start = time.perf_counter()
    rows, aucs = [], []
    for i, d in enumerate(DISTRIBUTIONS):
        for j, n in enumerate(SIZES):
            cell, auc = run_cell(d, n, args.reps, seed=1000 * args.seed + 10 * i + j)
            rows += cell
            aucs += [auc] if auc else []
            print(*cell, auc, f"{time.perf_counter() - start:.0f} s", sep="\n", flush=True)
    bias = bias_curve(args.bias_reps, args.seed)
    elapsed = time.perf_counter() - start
    for row in bias:
        print(row)
    print(f"{elapsed:.0f} s")

    new = [float(r["new coverage"]) for r in rows]
    old = [float(r["old coverage"]) for r in rows]
    naive = [float(r["new without clusters"]) for r in rows if r["new without clusters"]]
    mc = 1.96 * math.sqrt(0.95 * 0.05 / args.reps)

    def span(key: str, kind: str) -> str:
        v = [float(a[key]) for a in aucs if kind in a["distribution"]]
        return f"{min(v):.3f}-{max(v):.3f}"
    body = f"""
Coverage of the 95% interval of TPR at FPR ``f`` for the *true* TPR at the *true* FPR ``f``
(`TPR(f) = sup{{G(t) : F(t) <= f}}`, known exactly for these distributions), {args.reps}
repetitions per row (a true 95% reads 0.95 ± {mc:.3f}), as many members as non-members.
Non-members N(0, 1), members N(mu, sd^2); "pooled" rows concatenate the scores of T targets
(each record scored once per target, a record effect N(0, 2^2) shared by its T scores on
top of unit noise; complementary = each record a member of half the targets, as in the
audit's game; retrains = the same members in every target) and pass `clusters` (the record
index). *old*: Clopper-Pearson on the members at the chosen threshold (the interval before
this change); *new*: {TPR_INTERVAL}, with `clusters` where given; *new without clusters*:
the new construction on pooled scores treated as independent. *relative bias*: mean point
estimate vs the true TPR; *true FPR > f*: share of repetitions whose chosen threshold's
true FPR exceeds ``f``; *flagged biased*: share whose figure carries a "biased upward" note.

{table(rows, list(rows[0]))}

Old interval coverage {min(old):.2f}-{max(old):.2f}; new {min(new):.3f}-{max(new):.3f}
(without clusters on pooled scores {min(naive):.3f}-{max(naive):.3f}).

AUC interval coverage on the pooled scores (true AUC of two different records):

{table(aucs, list(aucs[0]))}

Clustered DeLong {span("clustered DeLong (Obuchowski)", "pooled")}. Treated as independent,
the DeLong interval covers {span("DeLong (scores independent)", "complementary")} for
complementary targets (too wide: a record's member and non-member copies move together and
their errors partly cancel) and {span("DeLong (scores independent)", "retrains")} for
retrains (too narrow).

Relative bias of the point estimate (mean over {args.bias_reps} repetitions, ± one standard
error) against the expected number of false positives ``f x n_non_members``, continuous
scores, as many members as non-members; the note "biased upward" is set below
{BIAS_NOTE_BELOW:g}:

{table(bias, list(bias[0]))}

Whole run: {elapsed:.0f} s.
"""
    if not args.no_write:
        write_section("Interval coverage: TPR at FPR and AUC", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
