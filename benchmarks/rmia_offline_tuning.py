"""Offline RMIA's ``a`` and temperature tuned by two stand-in games, against offline LiRA.

Each seed draws a fresh offline game as ``miaudit.audit(reference_mode="offline")`` builds
it: half of the pool audited (4 targets on random halves of it), half the references' pool
(K references in complementary pairs). ``tune_rmia`` is given

* the references with their outputs on the audited records: the stand-ins play their
  complement alone, the audited records as non-members (``game = "complements"``, the
  default offline);
* the references on their own pool only: the stand-ins play the other references there,
  sharing training records with them (``game = "references"``, the rule before);

and the untuned values (``a`` 0.33, temperature 1) are shown too. The targets' membership
is read only to score the result. Figures pool the 4 targets of a seed; the table gives
the mean over seeds and the seeds where RMIA beats offline LiRA at 0.1% FPR.

    python benchmarks/rmia_offline_tuning.py [--seeds 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _results import table, write_section
from scipy.special import log_ndtr

from miaudit.attacks import rmia
from miaudit.attacks.base import References
from miaudit.attacks.reference_signals import gaussian_fit
from miaudit.data.loaders import load_dataset
from miaudit.game import membership_design
from miaudit.signals.transforms import logit_scaled_confidence, loss_from_logits
from miaudit.training import make_recipe
from miaudit.training.batched import predict_stacked, train_models

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = 4


def _tpr(score: np.ndarray, members: np.ndarray, fpr: float) -> float:
    return rmia._mean_tpr(score, members, np.array([fpr]))


def one_game(data, k: int, seed: int, n_records: int | None) -> dict[str, tuple]:
    """TPR at 0.1% and 1% FPR (4 targets pooled) of offline LiRA and of offline RMIA at
    each rule's (a, temperature), on one freshly trained offline game."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.n_records)[:n_records]
    audited, pool = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    design = np.zeros((TARGETS + k, data.n_records), dtype=bool)
    design[:TARGETS, audited] = membership_design(len(audited), TARGETS, seed=seed,
                                                  bernoulli=TARGETS // 2)
    design[TARGETS:, pool] = membership_design(len(pool), k, seed=seed + 1)
    recipe = make_recipe("mlp")
    trained = train_models(recipe, data.X, data.y, design, n_classes=data.n_classes,
                           seeds=[1000 * seed + m for m in range(TARGETS + k)])
    logits = predict_stacked(trained.params, data.X, recipe.activation)
    y_aud = data.y[audited]
    members = np.concatenate([design[t, audited] for t in range(TARGETS)])
    refs_on_pool = References(logits[TARGETS:, pool], design[TARGETS:, pool], data.y[pool])
    refs = References(logits[TARGETS:, audited], np.zeros((k, len(audited)), bool), y_aud,
                      refs_on_pool)

    def rmia_at(a: float, temperature: float) -> tuple[float, float]:
        log_p = -np.stack([loss_from_logits(z / temperature, y_aud)
                           for z in logits[TARGETS:, audited]])
        means = rmia._log_means(log_p, np.zeros(log_p.shape, dtype=bool))
        marginal = rmia._log_marginal(means, "offline", a)
        score = np.concatenate([-loss_from_logits(logits[t, audited] / temperature, y_aud)
                                - marginal for t in range(TARGETS)])
        return _tpr(score, members, 1e-3), _tpr(score, members, 1e-2)

    phi_refs = np.stack([logit_scaled_confidence(z, y_aud) for z in logits[TARGETS:, audited]])
    mu, sigma, _ = gaussian_fit(phi_refs, np.ones(phi_refs.shape, dtype=bool), False)
    lira = np.concatenate([log_ndtr((logit_scaled_confidence(logits[t, audited], y_aud) - mu)
                                    / sigma) for t in range(TARGETS)])
    complements = rmia.tune_rmia(refs, mode="offline")
    shared = rmia.tune_rmia(refs_on_pool, mode="offline")
    return {
        "lira-offline": (_tpr(lira, members, 1e-3), _tpr(lira, members, 1e-2), None),
        "complements": (*rmia_at(complements.a, complements.temperature), complements),
        "references": (*rmia_at(shared.a, shared.temperature), shared),
        "untuned (a 0.33, T 1)": (*rmia_at(rmia.UNTUNED_A, 1.0), None),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=6)
    args = ap.parse_args()
    settings = [("Location30", SHARED / "location30.npz", None, None, k) for k in (1, 2, 4)]
    settings += [("Adult (20,000 records)", SHARED / "adult.csv.gz", "income", 20_000, k)
                 for k in (1, 2, 4)]
    rows = []
    for name, path, label, n_records, k in settings:
        data = load_dataset(path, label_column=label)
        seeds = range(args.seeds if n_records is None else max(1, args.seeds // 2))
        games = [one_game(data, k, s, n_records) for s in seeds]
        lira = [g["lira-offline"][0] for g in games]
        for rule in ("lira-offline", "complements", "references", "untuned (a 0.33, T 1)"):
            low = [g[rule][0] for g in games]
            chosen = [g[rule][2] for g in games]
            rows.append({
                "data": name, "references": k,
                "rule": rule if rule == "lira-offline" or rule.startswith("untuned")
                else f"rmia-offline, {rule} game",
                "TPR@0.1%FPR (mean)": f"{100 * np.mean(low):.1f}%",
                "TPR@1%FPR (mean)": f"{100 * np.mean([g[rule][1] for g in games]):.1f}%",
                "above lira at 0.1%": "" if rule == "lira-offline" else
                f"{sum(x > y for x, y in zip(low, lira, strict=True))} of {len(games)}",
                "a, T chosen": "" if chosen[0] is None else " ".join(
                    f"{c.a:g},{c.temperature:g}" + ("" if c.tuned else " (untuned)")
                    for c in chosen),
            })
    body = (
        f"Each seed: a fresh offline game ({TARGETS} targets on random halves of the audited "
        "half, the references in complementary pairs on the other half, tanh MLP recipe); "
        "figures pool the 4 targets, then are averaged over the seeds "
        f"({args.seeds} for Location30, {max(1, args.seeds // 2)} for Adult). The targets' "
        "membership is read only to score. 'complements': the stand-ins play their "
        "complement alone, the audited records as non-members (miaudit's offline "
        "default); 'references': they play the other references on the references' own "
        "pool, sharing training records with them (the rule before); untuned: the values "
        "used when nothing can be tuned.\n\n" + table(rows, list(rows[0])))
    write_section("Offline RMIA tuning: complement games against shared-record games", body)


if __name__ == "__main__":
    main()
