"""Running the attacks of an audit on each target of its game and measuring them: the
attacker's inputs (the target's release, references, population, label queries), RMIA's
settings tuned on the references, the pooled and per-target figures."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from miaudit.attacks import (
    Attack,
    AttackInput,
    Calibration,
    References,
)
from miaudit.attacks.base import Population
from miaudit.attacks.rmia import temperature_grid, tune_rmia
from miaudit.audits.querying import QueryPlan, collect_label_queries
from miaudit.errors import (
    ConfigError,
    OutputError,
    UndefinedMetricWarning,
)
from miaudit.game.builders import Game
from miaudit.metrics import AttackMetrics, evaluate
from miaudit.metrics.privacy import audit_epsilon_lower_bound
from miaudit.signals import Exposure, observe
from miaudit.signals.exposure import released_logits
from miaudit.targets.outputs import check_outputs


def score_attacks(game: Game, chosen: list[Attack], exp: Exposure, targets: int,
                    options: dict, folds: int, measure: dict, bar, plan: QueryPlan):
    """Score every attack with each of the first ``targets`` models as the target.

    Returns the per-target metrics, the per-target scores, the queries each label-only
    attack sent (all targets together) and RMIA's settings tuned on each target's
    references.
    """
    seed = measure["seed"]
    per_target: list[dict[str, AttackMetrics]] = []
    scores: list[dict[str, np.ndarray]] = []
    queries: dict[str, int] = {a.name: 0 for a in chosen if a.needs_queries}
    tuned: dict[str, list[dict]] = {}
    task = bar.add_task(f"attacks ({exp})", total=len(chosen) * targets) if bar else None
    for t in range(targets):
        is_member = game.membership[t]
        refs = None
        if game.reference_models:
            others = game.reference_rows[t]
            shadow = None
            if game.population is not None and game.references_train_on_population:
                # the references on their own pool (what is tuned or learnt there never
                # reads the target; its outputs on the pool travel as population data)
                pl, pm, py = game.population
                shadow = References(_released_logits(pl[others], exp, seed, others, py),
                                    pm[others], py)
            variants = None if game.variants is None else np.stack(
                [_released_logits(game.variants[m], exp, seed, [m] * game.variants.shape[1],
                                  game.labels) for m in others])
            refs = References(
                _released_logits(np.stack([game.outputs[m].values for m in others]), exp, seed,
                                 others, game.labels),
                game.membership[others], game.labels, shadow, variants)
            _check_reference_coverage(chosen, refs)
        target_variants = () if game.variants is None else tuple(
            observe(check_outputs(v, "logits"), game.labels, exp,
                    rng=np.random.default_rng([seed, t, 12, a]))
            for a, v in enumerate(game.variants[t]))
        known = any("known-members" in a.knowledge for a in chosen)
        inputs = AttackInput(
            target=observe(game.outputs[t], game.labels, exp,
                           rng=np.random.default_rng([seed, t, 11])),
            calibration=Calibration(is_member, _folds(is_member, folds, seed + t))
            if known else None,
            references=refs,
            population=_population(game, t, exp, seed),
            target_variants=target_variants,
            label_queries=_label_queries(game, t, chosen, exp, plan, seed) if queries else None,
            features=game.features,
        )
        if inputs.label_queries is not None:
            q = inputs.label_queries
            for name in queries:
                queries[name] += (q.boundary_queries if name == "label-boundary"
                                  else q.augment_queries)
        scores.append({})
        per_target.append({})
        for a in chosen:
            opts = dict(options.get(a.name, {}))
            if a.name in _RMIA_MODES and refs is not None:
                tuning = tune_rmia(refs, mode=_RMIA_MODES[a.name], temperatures=(
                    (opts["temperature"],) if "temperature" in opts
                    else temperature_grid(inputs.target.fields)))
                opts["temperature"] = tuning.temperature
                if tuning.a is not None:
                    opts["a"] = tuning.a
                tuned.setdefault(a.name, []).append(tuning.to_dict())
            s = _finite(a.score(inputs, **opts), a.name)
            scores[t][a.name] = s
            if targets > 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UndefinedMetricWarning)
                    per_target[t][a.name] = evaluate(s, is_member, **measure)
            if bar:
                bar.update(task, advance=1, description=f"attacks ({exp}): {a.name}, "
                           f"target {t + 1}/{targets}")
    return per_target, scores, queries, tuned


#: RMIA's attacks and the mode in which :func:`~miaudit.attacks.rmia.tune_rmia` tunes
#: their settings on the references.
_RMIA_MODES = {"rmia-online": "online", "rmia-offline": "offline"}


def measure_attack(a: Attack, scores: list[dict[str, np.ndarray]], is_member: np.ndarray,
             game: Game, clusters: np.ndarray | None, measure: dict) -> AttackMetrics:
    """An attack's metrics pooled over the targets. The epsilon lower bound is the one-run
    bound of one model, target 0, and only where its membership was drawn per record and
    the attack does not read other records' membership (the theorem's conditions)."""
    valid = game.bernoulli_membership and "known-members" not in a.knowledge
    pooled = np.concatenate([s[a.name] for s in scores])
    m = evaluate(pooled, is_member, clusters=clusters, bernoulli_membership=valid, **measure)
    if clusters is None or not valid:
        return m
    eps = audit_epsilon_lower_bound(scores[0][a.name], game.membership[0],
                                    bernoulli_membership=True, delta=measure["delta"],
                                    alpha=measure["alpha"])
    undefined = {k: v for k, v in m.undefined.items() if k != "epsilon_lower_bound"}
    if eps.value is None:
        undefined["epsilon_lower_bound"] = eps.reason or "not measurable"
    return dataclasses.replace(m, epsilon=eps, undefined=undefined)


def _population(game: Game, t: int, exp: Exposure, seed: int) -> Population | None:
    """Target ``t``'s (and its references') release on the population records set aside
    from the audit, or None when the audit has none."""
    if game.population is None:
        return None
    pl, pm, py = game.population
    target = observe(check_outputs(pl[t], "logits"), py, exp,
                     rng=np.random.default_rng([seed, t, 14]))
    if not game.reference_models:
        return Population(target, features=game.population_features)
    others = game.reference_rows[t]
    return Population(target, _released_logits(pl[others], exp, seed, others, py), pm[others],
                      game.population_features)


def _released_logits(logits: np.ndarray, exp: Exposure, seed: int, models: list[int],
                     labels: np.ndarray) -> np.ndarray:
    """The attacker's own models' logits ``(K, N, C)`` as the deployed model would release
    them (:func:`~miaudit.signals.exposure.released_logits`: the attacker knows how the
    target's outputs are released, rounding and defences included, and treats its
    references alike)."""
    if exp.kind in ("logits", "label"):
        return logits
    out = np.empty_like(logits, dtype=np.float64)
    for i, (z, m) in enumerate(zip(logits, models, strict=True)):
        rng = np.random.default_rng([seed, m, 13, i])
        out[i] = released_logits(check_outputs(z, "logits"), labels, exp, rng=rng)
    return out


def _label_queries(game: Game, t: int, chosen: list[Attack], exp: Exposure, plan: QueryPlan,
                   seed: int):
    """The label-only answers target ``t`` (and, for the learned combination, its
    references) give on perturbed copies of the audited records."""
    if game.query is None or game.features is None:
        raise ConfigError("Label-only attacks query the model on perturbed inputs; this "
                          "audit has no model to query.")
    ref_query = ref_records = None
    if any(a.name == "label-augment-learned" for a in chosen) and game.reference_models:
        others = game.reference_rows[t]
        ref_query = [game.query[m] for m in others]
        if (game.population is not None and game.population_features is not None
                and game.references_train_on_population):
            _, pm, py = game.population
            ref_records = (game.population_features, py, pm[others])
        else:
            ref_records = (game.features, game.labels, game.membership[others])
    return collect_label_queries(
        chosen, exp, target=game.query[t], X=game.features, y=game.labels,
        references=ref_query, reference_records=ref_records, plan=plan,
        image_shape=game.image_shape, seed=seed + 1000 * t)


def _check_reference_coverage(chosen: list[Attack], refs: References) -> None:
    """Every record needs the reference sides an attack relies on (an IN or OUT model)."""
    have = {"in": refs.membership.any(axis=0), "out": (~refs.membership).any(axis=0)}
    for a in chosen:
        for side in sorted(a.reference_sides):
            missing = int((~have[side]).sum())
            if missing:
                # The audit's designs always give every record OUT references, and IN
                # ones in online mode; offline references never train on audited records.
                what = "trained on" if side == "in" else "trained without"
                fix = ("use --reference-mode online" if side == "in"
                       else "use more references")
                raise ConfigError(
                    f"The attack {a.name!r} needs, for every record, a reference model "
                    f"{what} it; {missing} record(s) have none: {fix}, or leave this "
                    "attack out."
                )


def attack_entry(a: Attack, pooled: AttackMetrics, per_target: list, targets: int,
                  folds: int, options: dict | None, alpha: float, queries: int) -> dict:
    entry = {**pooled.to_dict(), "needs": sorted(a.needs), "description": a.description,
             "reference": a.reference, "knowledge": sorted(a.knowledge),
             "queries_to_target": int(queries)}
    if a.uses_calibration:
        entry["calibration"] = (f"cross-fitted on {folds} folds of records with known "
                                "membership")
    if options:
        entry["options"] = options
    if targets > 1:
        entry["pooled_over_targets"] = targets
        entry["mean_over_targets"] = _mean_over_targets([pt[a.name] for pt in per_target],
                                                        alpha)
        entry["per_target"] = [{"auc": pt[a.name].auc,
                                "tpr_at_fpr": {k: op.value
                                               for k, op in pt[a.name].tpr_at_fpr.items()}}
                               for pt in per_target]
    return entry


def _mean_over_targets(ms: list[AttackMetrics], alpha: float) -> dict:
    """Mean of each figure over targets with a Student-t interval across targets."""
    from scipy import stats

    def mean_ci(values: list[float | None]) -> tuple[float | None, list[float] | None]:
        vals = np.array([v for v in values if v is not None], dtype=float)
        if len(vals) < len(values) or len(vals) == 0:
            return None, None
        if len(vals) < 2:
            return float(vals.mean()), None
        half = stats.t.ppf(1 - alpha / 2, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
        return float(vals.mean()), [float(vals.mean() - half), float(vals.mean() + half)]

    auc, auc_ci = mean_ci([m.auc for m in ms])
    out = {"auc": auc, "auc_ci": auc_ci, "tpr_at_fpr": {}, "tpr_at_fpr_ci": {}}
    for key in ms[0].tpr_at_fpr:
        v, ci = mean_ci([m.tpr_at_fpr[key].value for m in ms])
        out["tpr_at_fpr"][key], out["tpr_at_fpr_ci"][key] = v, ci
    return out


def _folds(is_member: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold ids balanced within members and within non-members (seeded)."""
    rng = np.random.default_rng([seed, 7])
    folds = np.empty(len(is_member), dtype=np.int64)
    for side in (is_member, ~is_member):
        idx = np.flatnonzero(side)
        folds[rng.permutation(idx)] = np.arange(len(idx)) % k
    return folds


def _finite(scores: np.ndarray, name: str) -> np.ndarray:
    """Replace +-inf by values just beyond the finite range (order kept); NaN is a bug."""
    s = np.asarray(scores, dtype=np.float64)
    if np.isnan(s).any():
        raise OutputError(f"The attack {name!r} produced NaN scores for "
                          f"{int(np.isnan(s).sum())} record(s).")
    if np.isinf(s).any():
        finite = s[np.isfinite(s)]
        lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
        s = np.where(s == -np.inf, lo - 1.0, np.where(s == np.inf, hi + 1.0, s))
    return s
