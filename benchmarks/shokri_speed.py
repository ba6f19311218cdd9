"""Shokri et al.'s attack: one classifier over classes (miaudit's) against one classifier
per class (the paper's, miaudit's before), on the same reference models.

Location30, tanh MLP, 16 references, 4 targets (online game, the audit of
benchmarks/attack_strength.py): each variant scores the 4 targets from the same inputs;
times measured in one run, alternating, on one thread and on all cores.

    python benchmarks/shokri_speed.py
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
from _results import table, write_section
from scipy.special import softmax
from threadpoolctl import threadpool_limits

import miaudit
from miaudit.attacks import ATTACKS
from miaudit.attacks.shokri import shokri
from miaudit.metrics import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def per_class(inputs, *, seed: int = 0, max_rows: int = 20_000) -> np.ndarray:
    """The previous implementation: one gradient-boosted classifier per class on the
    sorted top-10 probabilities and log p_y, at most 20,000 rows per class."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def features(probs, labels):
        top = -np.sort(-probs, axis=1)[:, :10]
        return np.column_stack([top, np.log(np.maximum(probs[np.arange(len(labels)),
                                                             labels], 1e-300))])

    refs = inputs.references.tuning
    feats = np.concatenate([features(softmax(z, axis=1), refs.labels) for z in refs.logits])
    inside = refs.membership.reshape(-1)
    row_labels = np.tile(refs.labels, refs.n_models)
    labels = inputs.target.labels
    target = features(inputs.target.probs, labels)
    rng = np.random.default_rng(seed)
    scores = np.full(len(labels), 0.5)
    for c in np.unique(labels):
        rows = np.flatnonzero(row_labels == c)
        if len(rows) > max_rows:
            rows = rng.choice(rows, max_rows, replace=False)
        if inside[rows].all() or not inside[rows].any():
            continue
        clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1,
                                             random_state=seed).fit(feats[rows], inside[rows])
        scores[labels == c] = clf.predict_proba(target[labels == c])[:, 1]
    return scores


def main() -> None:
    warnings.simplefilter("ignore")
    captured = []
    score = ATTACKS["shokri"].score

    def capture(inputs, **kwargs):
        captured.append(inputs)
        return score(inputs, **kwargs)

    ATTACKS["shokri"] = dataclasses.replace(ATTACKS["shokri"], score=capture)
    result = miaudit.audit(data=SHARED / "location30.npz", references=16, targets=4,
                           attacks=["loss", "shokri"])
    members = result.signals["membership"][:4]
    is_member = np.concatenate(list(members))
    variants = {"one classifier over classes (now)": shokri,
                "one classifier per class (before)": per_class}
    seconds = {(name, t): [] for name in variants for t in ("1 thread", "all cores")}
    scores = {}
    for _ in range(2):  # alternate, twice, so that machine noise hits both alike
        for threads in ("1 thread", "all cores"):
            with threadpool_limits(limits=1 if threads == "1 thread" else None):
                for name, fn in variants.items():
                    t = time.perf_counter()
                    scores[name] = np.concatenate([fn(x, seed=0) for x in captured])
                    seconds[(name, threads)].append(time.perf_counter() - t)
    rows = []
    for name in variants:
        m = evaluate(scores[name], is_member)
        lo, hi = m.auc_ci
        rows.append({
            "Shokri": name, "AUC": f"{m.auc:.3f} [{lo:.3f}, {hi:.3f}]",
            "TPR@1%FPR": f"{100 * m.tpr_at_fpr['0.01'].value:.1f}%",
            "TPR@0.1%FPR": f"{100 * m.tpr_at_fpr['0.001'].value:.1f}%",
            **{f"s, {t} (best of 2)": f"{min(seconds[(name, t)]):.1f}"
               for t in ("1 thread", "all cores")},
        })
    now, before = (min(seconds[(n, "all cores")]) for n in variants)
    body = ("Location30, 16 references, 4 targets (online game); both variants score the 4 "
            "targets from the same reference outputs; metrics pooled (95% intervals).\n\n"
            + table(rows, list(rows[0]))
            + f"\n\nOn all cores the per-class classifiers take {before / now:.1f}x the time "
            "of the single one.")
    write_section("Shokri: one classifier over classes", body)


if __name__ == "__main__":
    main()
