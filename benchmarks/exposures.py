"""Which exposure is safe to ship? The exposure comparison on Location30 and Adult.

For each data set, one target MLP and 8 reference models (online game), and every attack
each exposure setting allows: full logits and probabilities, top-1, rounded to 1 decimal,
the label alone, the loss alone, and three output defences (temperature 4, Gaussian noise
0.05 on the probabilities, MemGuard-style flattening within L1 0.5). Label-only attacks
run under every setting that releases a label. One table per data set: the strongest
attack per exposure with AUC and TPR at 1% and 0.1% FPR (95% intervals), the accuracy of
the released labels, the members caught at 1% FPR and the queries it sent; and a second
table with the label-only attacks' AUC under each exposure.

    python benchmarks/exposures.py [--data location30,adult] [--references 8]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from _results import table, write_section

import miaudit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EXPOSURES = ["logits", "probabilities", "top-k:1", "rounded:1", "label", "loss",
             "temperature:4", "noise:0.05", "memguard:0.5"]
DATA = {
    "location30": (SHARED / "location30.npz", None, None),
    "adult": (SHARED / "adult.csv.gz", "income", 10_000),
}
LABEL_ONLY = ["label-augment", "label-boundary", "label-augment-learned"]


def pct(v, ci=None) -> str:
    if v is None:
        return "n/a"
    text = f"{100 * v:.1f}%"
    return text if ci is None else f"{text} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def run(name: str, references: int) -> None:
    path, label, n_records = DATA[name]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = miaudit.audit(data=path, label_column=label, n_records=n_records, model="mlp",
                               exposure=EXPOSURES, references=references)
    elapsed = time.perf_counter() - t
    s = result.summary()
    section = s["exposures"]
    rows = []
    for row in section["table"]:
        acc = row["test_accuracy"]
        rows.append({
            "exposure": row["exposure"],
            "strongest attack": row["strongest_attack"],
            "AUC": f"{row['auc']:.3f} [{row['auc_ci'][0]:.3f}, {row['auc_ci'][1]:.3f}]",
            "TPR@1%FPR": pct(row["tpr_at_fpr"]["0.01"], row["tpr_at_fpr_ci"]["0.01"]),
            "TPR@0.1%FPR": pct(row["tpr_at_fpr"]["0.001"], row["tpr_at_fpr_ci"]["0.001"]),
            "test acc.": "no label" if acc is None else f"{acc:.3f}",
            "members caught at 1% FPR": f"{row['members_exposed']}/{row['members']}",
            "queries": f"{row['queries_to_target']:,}",
        })
    label_rows = []
    for exp in EXPOSURES:
        metrics = result.exposure_metrics[exp]
        if not any(a in metrics for a in LABEL_ONLY):
            continue
        label_rows.append({"exposure": exp, **{
            a: f"{metrics[a].auc:.3f}" if a in metrics else "-" for a in LABEL_ONLY}})
    tgt = s["target"]
    every = section["exposed_under_every_exposure"]["count"]
    body = (
        f"{s['data']['n_records_in_game']} records in the game; {tgt['description']}; train "
        f"accuracy {tgt['train_accuracy']:.3f}, test accuracy {tgt['test_accuracy']:.3f}; "
        f"{references} references (online). Whole comparison: {elapsed:.0f} s.\n\n"
        + table(rows, list(rows[0]))
        + "\n\nLabel-only attacks (AUC) under each exposure that releases a label:\n\n"
        + table(label_rows, list(label_rows[0]))
        + f"\n\nMembers caught at 1% FPR under every exposure: {every}. "
        + section["criterion"] + ". " + section["utility_note"]
    )
    write_section(f"Exposure comparison: {name}", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="location30,adult")
    ap.add_argument("--references", type=int, default=8)
    args = ap.parse_args()
    for name in args.data.split(","):
        run(name.strip(), args.references)


if __name__ == "__main__":
    main()
