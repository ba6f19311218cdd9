"""miaudit's RMIA next to ML Privacy Meter's, on the same models and records.

ML Privacy Meter (privacytrustlab/ml_privacy_meter) is the RMIA authors' tool. Its RMIA is
not on PyPI (the ``privacy-meter`` package there, 1.0.1, predates it), so its scoring is
re-implemented below from its published source (``modules/mia/attacks/rmia.py`` at commit
0b8cb7a, read, not copied), as it documents it:

* the signal is the softmax probability of the true label (temperature 1);
* ``P(x)`` is ``(1 + a)/2 * mean + (1 - a)/2`` over the references; with its default of one
  reference model per target (``num_ref_models: 1``) the mean runs over every reference,
  a reference trained on ``x`` (IN) entering as ``(p + a - 1) / a`` (the linear
  approximation inverted); with more, over the ``num_ref_models`` largest OUT values;
* the score is the share of population records ``z`` with ``r(x) / r(z) > 1`` (gamma 1);
* ``a`` is tuned (0, 0.1, ..., 1) for the AUC of attacking the target's paired model (the
  one trained on the complementary half) with the same references.

Both tools score the same models: miaudit's online game on Location30 (models in
complementary pairs on random halves of the pool, ML Privacy Meter's own design; 10% of
the pool set aside as population data that no model trains on), 4 targets pooled, with
miaudit's recipe (Adam) and with ML Privacy Meter's training settings for its tabular
MLP (``configs/purchase.yaml``: SGD, learning rate 0.1, batch 256, 100 epochs, no weight
decay) on miaudit's MLP architecture.

    python benchmarks/peers/compare_privacy_meter.py [--references 2,8]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import table, write_section

import miaudit
from miaudit.attacks import AttackInput, References
from miaudit.attacks.base import Population
from miaudit.attacks.rmia import rmia_offline
from miaudit.metrics import evaluate
from miaudit.signals import observe
from miaudit.targets import check_outputs

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
RECIPES = {
    "miaudit's (Adam lr 1e-3, batch 64, 60 epochs)": None,
    "ML Privacy Meter's (SGD lr 0.1, batch 256, 100 epochs)": {
        "optimizer": "sgd", "lr": 0.1, "batch_size": 256, "epochs": 100,
        "weight_decay": 0.0},
}
A_GRID = np.round(np.linspace(0, 1, 11), 2)


def p_true(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax probability of the true label, for every leading index: (..., N)."""
    index = np.broadcast_to(labels, logits.shape[:-1])[..., None]
    return np.exp(np.take_along_axis(log_softmax(logits, axis=-1), index, axis=-1)[..., 0])


def pm_reference_mean(ref_p: np.ndarray, ref_in: np.ndarray, a: float,
                      num_ref: int | None) -> np.ndarray:
    """ML Privacy Meter's average reference signal per record (see the module):
    ``num_ref`` 1, its one-reference mode (IN references inverted); None, the mean of the
    OUT values alone (its path for ``num_ref_models`` > 1, the mean of that many largest
    OUT values, when ``num_ref_models`` is each record's OUT count, as in a design of
    complementary pairs)."""
    out = np.where(ref_in, 0.0, ref_p)
    if num_ref is None:
        return out.sum(axis=0) / np.maximum((~ref_in).sum(axis=0), 1)
    inverted = (ref_p + a - 1) / a if a != 0 else (ref_p - 0.7) / 0.3
    return np.mean(out + np.where(ref_in, inverted, 0.0), axis=0)


def pm_rmia(target_p, ref_p, ref_in, z_target_p, z_ref_p, a: float, num_ref: int | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """ML Privacy Meter's RMIA score (share of z dominated, gamma 1) and its ratio r(x)."""
    def ratio(p, rp, rin):
        return p / ((1 + a) / 2 * pm_reference_mean(rp, rin, a, num_ref) + (1 - a) / 2)

    r_x = ratio(target_p, ref_p, ref_in)
    r_z = np.sort(ratio(z_target_p, z_ref_p, np.zeros_like(z_ref_p, dtype=bool)))
    # r(x) / r(z) > 1  <=>  r(z) < r(x): the count of z strictly below
    return np.searchsorted(r_z, r_x, side="left") / len(r_z), r_x


def pm_tuned_a(paired_p, paired_in, ref_p, ref_in, z_paired_p, z_ref_p) -> float:
    """``a`` with the highest AUC on the paired model (first on ties, as it loops)."""
    best, best_auc = 0.0, -1.0
    for a in A_GRID:
        score, _ = pm_rmia(paired_p, ref_p, ref_in, z_paired_p, z_ref_p, a, 1)
        auc = roc_auc_score(paired_in, score)
        if auc > best_auc:
            best, best_auc = float(a), auc
    return best


def fmt(m) -> dict:
    lo, hi = m.auc_ci
    t1, t01 = m.tpr_at_fpr["0.01"].value, m.tpr_at_fpr["0.001"].value
    return {"AUC": f"{m.auc:.3f} [{lo:.3f}, {hi:.3f}]",
            "TPR@1%FPR": "n/a" if t1 is None else f"{100 * t1:.1f}%",
            "TPR@0.1%FPR": "n/a" if t01 is None else f"{100 * t01:.1f}%"}


def compare(recipe_name: str, params: dict | None, k: int) -> tuple[list[dict], str]:
    result = miaudit.audit(data=SHARED / "location30.npz", model_params=params,
                           references=k, targets=4, population_fraction=0.1,
                           attacks=["loss", "attack-p", "rmia-online", "rmia-offline"])
    s, summary = result.signals, result.summary()
    logits, member, labels = s["logits"].astype(np.float64), s["membership"], s["labels"]
    z_logits, z_labels = s["population_logits"].astype(np.float64), s["population_labels"]
    p, z_p = p_true(logits, labels), p_true(z_logits, z_labels)
    scores: dict[str, list[np.ndarray]] = {}
    tied, tuned, rho = [], [], []
    for t in range(4):
        refs = [m for m in range(len(logits)) if m not in (t, t ^ 1)]
        pair = t ^ 1
        a = pm_tuned_a(p[pair], member[pair], p[refs], member[refs], z_p[pair], z_p[refs])
        tuned.append(a)
        shipped, ratio = pm_rmia(p[t], p[refs], member[refs], z_p[t], z_p[refs], a, 1)
        _, ratio_out = pm_rmia(p[t], p[refs], member[refs], z_p[t], z_p[refs], a, None)
        tied.append(int((shipped == shipped.max()).sum()))
        inputs = AttackInput(
            observe(check_outputs(logits[t], "logits"), labels, "logits"),
            references=References(logits[refs], member[refs], labels),
            population=Population(observe(check_outputs(z_logits[t], "logits"), z_labels,
                                          "logits"), z_logits[refs],
                                  np.zeros((len(refs), len(z_labels)), dtype=bool)))
        matched = rmia_offline(inputs, a=a, temperature=1.0)
        rho.append(spearmanr(matched, ratio_out).statistic)
        for name, v in (("shipped", shipped), ("ratio", ratio), ("out", ratio_out),
                        ("matched", matched)):
            scores.setdefault(name, []).append(v)
    is_member = np.concatenate([member[t] for t in range(4)])

    def pooled(name):
        return evaluate(np.concatenate(scores[name]), is_member)

    a_text = ", ".join(f"{a:g}" for a in tuned)
    mi = summary["attacks"]
    rows = [
        {"tool, setting": "ML Privacy Meter RMIA as shipped (T 1, one-reference mode, a "
         f"tuned on the paired model for AUC: {a_text}; share of z dominated)",
         **fmt(pooled("shipped"))},
        {"tool, setting": "the same, its ratio r(x) without the count over z",
         **fmt(pooled("ratio"))},
        {"tool, setting": f"ML Privacy Meter's ratio with P_out from the {k // 2} OUT "
         "references alone (its path for more than one reference)", **fmt(pooled("out"))},
        {"tool, setting": "miaudit rmia-offline at ML Privacy Meter's T and a",
         **fmt(pooled("matched"))},
    ]
    for name in ("rmia-offline", "rmia-online", "loss"):
        m = mi[name]
        lo, hi = m["auc_ci"]
        t1, t01 = m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr"]["0.001"]
        rows.append({"tool, setting": f"miaudit {name} at its defaults"
                     + (" (T and a tuned on the references for low FPR)" if "rmia" in name
                        else ""),
                     "AUC": f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
                     "TPR@1%FPR": "n/a" if t1 is None else f"{100 * t1:.1f}%",
                     "TPR@0.1%FPR": "n/a" if t01 is None else f"{100 * t01:.1f}%"})
    for r in rows:
        r.update({"recipe": recipe_name, "references": k})
    note = (f"{recipe_name}, {k} references: test accuracy "
            f"{summary['target']['test_accuracy']:.3f}; ML Privacy Meter's shipped score "
            f"ties {min(tied)}-{max(tied)} records per target at its maximum; Spearman "
            f"between miaudit's rmia-offline at the same T and a and ML Privacy Meter's "
            f"OUT-reference ratio {min(rho):.4f}-{max(rho):.4f} over the targets.")
    return rows, note


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--references", default="2,8")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows, notes = [], []
    for k in (int(x) for x in args.references.split(",")):
        for recipe_name, params in RECIPES.items():
            r, note = compare(recipe_name, params, k)
            rows += r
            notes.append(note)
    body = ("Location30, online game (models in complementary pairs on random halves of "
            "the pool), 4 targets pooled, population data 10% of the pool (no model trains "
            "on it); ML Privacy Meter's RMIA re-implemented from its published source (see "
            "the script). 95% intervals.\n\n"
            + table(rows, ["recipe", "references", "tool, setting", "AUC", "TPR@1%FPR",
                           "TPR@0.1%FPR"])
            + "\n\n" + "\n".join(f"- {n}" for n in notes))
    write_section("miaudit vs ML Privacy Meter: RMIA on Location30", body)


if __name__ == "__main__":
    main()
