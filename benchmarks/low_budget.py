"""Attacks at low budgets: without reference models, and with 1, 2 or 4 offline references.

* No reference model (Location30, Adult): LOSS, Attack-P and the quantile-regression attack
  (Gaussian and pinball forms) with 10% and 50% of the pool set aside as population data,
  three seeds (a new target each), each attack's own time.
* 1, 2 and 4 offline references (Location30, Adult; 4 targets pooled): the cheap
  reference attacks (calibrated loss, Attack-R, privacy risk, Shokri) beside offline LiRA
  and RMIA and the quantile attack on the same population.

    python benchmarks/low_budget.py [--skip-adult] [--seeds 3] [--skip-offline]
                                    [--skip-no-references]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

from _results import table, write_section

import miaudit
from miaudit.attacks import ATTACKS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = {"Location30": (SHARED / "location30.npz", None),
        "Adult": (SHARED / "adult.csv.gz", "income")}
#: Seconds spent in each attack's score function (all targets of the last audit).
SECONDS: dict[str, float] = {}


def _timed(name: str):
    score = ATTACKS[name].score

    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return score(*args, **kwargs)
        finally:
            SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - t
    return run


def timed_attacks() -> None:
    """Wrap every registered attack's score function to record its time."""
    for name in list(ATTACKS):
        ATTACKS[name] = dataclasses.replace(ATTACKS[name], score=_timed(name))


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def figures(result, name: str) -> dict:
    a = result.attacks[name]
    return {"AUC": a.auc.value, "1%": a.tpr_at_fpr[0.01].value,
            "0.1%": a.tpr_at_fpr[0.001].value, "s": SECONDS.get(name, 0.0)}


def no_references(seeds: int, datasets: list[str]) -> None:
    rows = []
    for data_name in datasets:
        path, label = DATA[data_name]
        for fraction in (0.1, 0.5):
            per: dict[str, list[dict]] = {}
            n_pop = None
            for seed in range(seeds):
                for method in ("gaussian", "pinball"):
                    SECONDS.clear()
                    r = miaudit.audit(data=path, label_column=label, seed=seed,
                                      attacks=["loss", "attack-p", "quantile"],
                                      population_fraction=fraction, quantile_method=method)
                    n_pop = r.summary()["data"].get("n_population_records")
                    names = ["loss", "attack-p", "quantile"] if method == "gaussian" else [
                        "quantile"]
                    for name in names:
                        label_ = name if name != "quantile" else f"quantile ({method})"
                        per.setdefault(label_, []).append(figures(r, name))
            loss_1 = [f["1%"] or 0 for f in per["loss"]]
            for attack, runs in per.items():
                one = [f["1%"] for f in runs]
                ratio = (sum(one) / sum(loss_1)) if sum(loss_1) else float("inf")
                rows.append({
                    "data": data_name, "population": n_pop, "attack": attack,
                    "AUC (mean)": f"{sum(f['AUC'] for f in runs) / len(runs):.3f}",
                    "TPR@1%FPR per seed": " / ".join(pct(v) for v in one),
                    "TPR@0.1%FPR per seed": " / ".join(pct(f["0.1%"]) for f in runs),
                    "x LOSS at 1%": f"{ratio:.1f}",
                    "attack s (mean)": f"{sum(f['s'] for f in runs) / len(runs):.2f}",
                })
    body = (
        "No reference model; one target per seed (a new model each: seeds "
        f"{', '.join(map(str, range(seeds)))}), tanh MLP recipe; the population is the "
        "share of the pool set aside that no model trained on. `x LOSS at 1%`: the "
        "attack's TPR at 1% FPR summed over the seeds over LOSS's. `attack s`: time in the "
        "attack's score function.\n\n"
        + table(rows, list(rows[0]))
    )
    write_section("Attacks without reference models", body)


OFFLINE_ATTACKS = ["loss", "quantile", "calibrated-loss", "attack-r", "privacy-risk", "shokri",
                   "lira-offline", "rmia-offline"]


def offline_budgets(datasets: list[str]) -> None:
    rows = []
    for data_name in datasets:
        path, label = DATA[data_name]
        for k in (1, 2, 4):
            SECONDS.clear()
            r = miaudit.audit(data=path, label_column=label, references=k,
                              reference_mode="offline", targets=4, attacks=OFFLINE_ATTACKS)
            for name in OFFLINE_ATTACKS:
                f = figures(r, name)
                rows.append({"data": data_name, "references": k, "attack": name,
                             "AUC": f"{f['AUC']:.3f}", "TPR@1%FPR": pct(f["1%"]),
                             "TPR@0.1%FPR": pct(f["0.1%"]), "attack s": f"{f['s']:.2f}"})
    body = (
        "Offline references (trained in complementary pairs on the population half of the "
        "pool, never on audited "
        "records); 4 targets pooled; the quantile attack learns from the same population "
        "(no reference model). `attack s`: time in the attack's score function, 4 targets "
        "together.\n\n" + table(rows, list(rows[0]))
    )
    write_section("Attacks with 1, 2 and 4 offline references", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-adult", action="store_true")
    ap.add_argument("--skip-offline", action="store_true")
    ap.add_argument("--skip-no-references", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    timed_attacks()
    datasets = ["Location30"] + ([] if args.skip_adult else ["Adult"])
    if not args.skip_no_references:
        no_references(args.seeds, datasets)
    if not args.skip_offline:
        offline_budgets(datasets)


if __name__ == "__main__":
    main()
