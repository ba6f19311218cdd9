"""The one public entry point: :func:`audit`.

It validates everything at the boundary, plays the privacy game (or takes the user's
membership), queries the target, applies the exposure, runs the attacks and measures
them. Attacks and metrics below this layer receive clean arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit._version import __version__
from miaudit.attacks import (
    ATTACKS,
    Attack,
    AttackInput,
    Calibration,
    References,
    attacks_allowed,
    resolve_attacks,
)
from miaudit.attacks.base import KNOWLEDGE, Population, threat_model
from miaudit.attacks.reference import temperature_grid, tune_rmia
from miaudit.data import Dataset, load_dataset
from miaudit.errors import (
    ConfigError,
    DataWarning,
    DegenerateResultWarning,
    ExposureError,
    MembershipError,
    OutputError,
    QueryBudgetError,
    UndefinedMetricWarning,
)
from miaudit.game import independent_halves, membership_design
from miaudit.metrics import AttackMetrics, evaluate
from miaudit.metrics.privacy import audit_epsilon_lower_bound
from miaudit.models import (
    LabelTarget,
    ModelOutputs,
    PrecomputedOutputs,
    Recipe,
    TorchTarget,
    as_target,
    build_module,
    load_outputs,
    make_recipe,
)
from miaudit.models.cnn import image_side
from miaudit.models.outputs import check_outputs
from miaudit.models.recipes import check_recipe
from miaudit.orchestration.cache import ModelCache
from miaudit.orchestration.exposures import compare_exposures_section
from miaudit.orchestration.querying import Query, QueryPlan, collect_label_queries
from miaudit.orchestration.result import AuditResult
from miaudit.orchestration.training import DEFAULT_CHUNK, check_training, train_pool_models
from miaudit.orchestration.verdict import audit_verdict
from miaudit.signals import Exposure, observe, parse_exposure
from miaudit.signals.exposure import released_logits

DEFAULT_FPRS = (0.01, 0.001, 0.0001)
#: Share of a recipe game's pool set aside as population data (see ``population_fraction``).
POPULATION_FRACTION = 0.1
LIRA_VARIANCES = ("auto", "global", "per-example")


@dataclass
class _Game:
    """The audited records, every model's outputs on them and who trained on what."""

    ids: np.ndarray
    fingerprints: np.ndarray
    labels: np.ndarray
    membership: np.ndarray  # (M, N) bool; rows 0..T-1 are the targets
    outputs: list[ModelOutputs]  # one per model
    data_info: dict
    target_info: dict
    reference_rows: list[list[int]] = field(default_factory=list)  # per target
    # population records set aside from the audit, which no target trained on:
    # (logits (M, P, C), membership (M, P), labels (P,)) of every model on them
    population: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # whether the references trained on the population records (offline references),
    # so that the attacker knows IN and OUT models there (tuning, learned attacks)
    references_train_on_population: bool = False
    # whether the targets' membership was drawn independently per record with
    # probability 1/2 (recipe games), which the one-run epsilon bound needs
    bernoulli_membership: bool = False
    # logits of every model on augmented queries of the audited records: (M, A, N, C)
    variants: np.ndarray | None = None
    # query access for label-only attacks: one function per model (X -> outputs), the
    # audited records' features, and the population records' features (offline)
    query: list[Query] | None = None
    features: np.ndarray | None = None
    population_features: np.ndarray | None = None
    image_shape: tuple[int, int, int] | None = None

    @property
    def reference_models(self) -> int:
        return len(self.reference_rows[0]) if self.reference_rows else 0


def audit(
    *,
    data: Dataset | str | Path | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    n_records: int | None = None,
    model: str | Recipe | object = "mlp",
    model_params: dict | Sequence[str] | None = None,
    members: np.ndarray | Sequence[str] | None = None,
    outputs: PrecomputedOutputs | str | Path | None = None,
    exposure: str | Exposure | Sequence[str | Exposure] = "logits",
    attacks: Sequence[str] | None = None,
    references: int = 0,
    reference_mode: str = "online",
    targets: int = 1,
    lira_variance: str = "auto",
    rmia_temperature: float | None = None,
    population_fraction: float = POPULATION_FRACTION,
    seed: int = 0,
    fprs: Sequence[float] = DEFAULT_FPRS,
    alpha: float = 0.05,
    prior: float = 0.5,
    delta: float = 1e-5,
    calibration_folds: int = 5,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    executor: str = "inprocess",
    workers: int | None = None,
    ray_address: str | None = None,
    models_per_batch: int = DEFAULT_CHUNK,
    augment: bool | None = None,
    query_budget: int | None = None,
    reference_recipe: str | Recipe = "mlp",
    progress: bool = False,
) -> AuditResult:
    """Audit a model for membership-inference leakage.

    Three ways to name the target:

    * ``model="mlp"`` (or ``"logistic"``, or a :class:`~miaudit.models.Recipe`): train it on
      a seeded random half of ``data`` (the members); the other half are non-members. With
      ``references=K``, reference models of the same recipe are trained too, each on its
      own random half (see ``reference_mode``).
    * ``model=<estimator | torch module | callable>`` with ``members``: audit an existing
      model; ``members`` marks its training records in ``data`` (bool mask or record IDs),
      every other record is a non-member.
    * ``outputs=<.npz path | PrecomputedOutputs>``: outputs computed elsewhere, with labels
      and membership; nothing is trained or queried.

    Parameters
    ----------
    data : Dataset, str or Path, optional
        A built-in name (``digits``), a file path, or a loaded :class:`~miaudit.data.Dataset`.
    label_column : str, optional
        Label column for CSV / Parquet files.
    id_column : str, optional
        Record-ID column for CSV / Parquet files (kept out of the features).
    n_records : int, optional
        Audit a seeded, class-stratified subset of this many records (for large data, such
        as CIFAR-10 on a CPU).
    model_params : dict or list of "key=value", optional
        Recipe overrides (``{"epochs": 20}``).
    exposure : str or list of str, default "logits"
        What the attacker sees of the target: ``logits``, ``probabilities``, ``top-k:K``,
        ``rounded:D``, ``label``, ``loss``, or the full probability vector after an output
        defence (``temperature:T``, ``noise:SIGMA``, ``memguard:EPS``). Reference models
        are the attacker's own and are seen in full (after the same output defence, which
        the attacker is assumed to know). Several settings (a list, or one string with
        commas) compare the exposures on the same models: every attack each setting
        allows runs under it, and the summary gains an ``exposures`` section (see
        :func:`~miaudit.orchestration.exposures.compare_exposures_section`); the first
        setting gives the summary's ``attacks``.
    attacks : list of str, optional
        Attack names; default: every attack the exposure, the references and the threat
        model allow (the label-only query attacks only under ``label``, or when comparing
        exposures; attacks that know other records' membership only when named). Each
        entry of ``summary.json`` states its ``knowledge``.
    references : int, default 0
        Reference models per target (recipe targets only); enables LiRA, RMIA, Attack-R
        and Shokri.
    reference_mode : {"online", "offline"}, default "online"
        ``online``: ``K + 2`` models (``K`` rounded up to even) train on random halves of
        the audited records in complementary pairs; a target's references are the models
        outside its pair, so every record is IN for exactly half of them (all attacks).
        ``offline``: half of the pool is set aside as population data and the references
        train only on it (offline attacks and reference-free ones; a record's own data
        never reaches a reference).
    targets : int, default 1
        With references, how many of the models take the target's role in turn; metrics
        are pooled over them (and averaged, with per-target figures).
    lira_variance : {"auto", "global", "per-example"}
        LiRA's Gaussian variance; ``auto`` is global below 64 references.
    rmia_temperature : float, optional
        Softmax temperature of RMIA's ``Pr(x | model)`` (needs the probability vector);
        default: tuned, with RMIA's offline ``a``, on the references (a reference model
        plays the target), never on the target. Both are recorded in ``summary.json``.
    population_fraction : float, default 0.1
        Share of the pool a recipe game sets aside as population data (records no model
        trains on, never audited) when an attack uses population data (``attack-p``,
        ``rmia-*``); offline references use their own pool instead.
    seed : int, default 0
        Seeds the split, the training and the cross-fitting folds.
    fprs : sequence of float
        FPR levels at which the TPR is reported.
    alpha : float, default 0.05
        1 - confidence level of every interval.
    prior : float, default 0.5
        Prior probability of membership for the PPV.
    delta : float, default 1e-5
        The delta of the epsilon lower bound.
    calibration_folds : int, default 5
        Cross-fitting folds of the oracle attacks that fit thresholds on the membership
        of other audited records (``class-loss-known``, ``class-mentr-known``; run only
        when named, and never part of the verdict).
    device : str, default "cpu"
        Torch device for training and querying.
    cache_dir : str or Path, optional
        Store every trained model (safetensors weights and logits) under this folder, keyed
        by a content hash; a re-run, or a run resumed after an interruption, loads the
        models it finds instead of training them. ``None``: no cache.
    executor : {"inprocess", "process", "ray"}, default "inprocess"
        Where chunks of models train: here, in a local process pool, or on a Ray cluster.
    workers : int, optional
        Worker processes for the ``process`` executor; for ``ray``, the number of chunks the
        models are split into (Ray decides how many run at once).
    ray_address : str, optional
        Address of a running Ray cluster (``ray://HOST:PORT``); default: a local instance.
    models_per_batch : int, default 32
        Models trained together in one batched computation (lower it to save memory).
    augment : bool, optional
        Query every model on augmented copies of each record too (horizontal flip, shifts
        of 2 pixels; image recipes), and let LiRA and RMIA use them. Default: on for the
        ``cnn`` recipe with references.
    reference_recipe : str or Recipe, default "mlp"
        With an existing model and ``references``: the recipe (with ``model_params``) of
        the offline reference models the attacker trains locally on population data (half
        of the target's non-members, set aside), for LiRA and RMIA against a black-box
        target.
    query_budget : int, optional
        Most queries each label-only attack may send to each target model (on perturbed
        copies of the records); the default numbers of queries per record are lowered to
        fit, and a budget too small for them is refused before anything is trained.
    progress : bool, default False
        Show Rich progress bars on stderr.

    Returns
    -------
    AuditResult
        ``.summary()`` (the ``summary.json`` content), ``.scores`` (one row per target and
        record), ``.metrics`` and ``.save(dir)``.
    """
    started = time.perf_counter()
    exposures = _parse_exposures(exposure)
    exp = exposures[0]
    _check_settings(seed, fprs, alpha, prior, delta, calibration_folds, references,
                    reference_mode, targets, lira_variance, rmia_temperature,
                    population_fraction)
    _check_device(device)
    check_training(executor, workers, models_per_batch)
    effective = references + references % 2 if reference_mode == "online" else references
    recipe_game = outputs is None and isinstance(model, str | Recipe)
    has_population = bool(outputs is None and references and reference_mode == "offline") or (
        recipe_game and population_fraction > 0)
    granted = threat_model(references=effective > 0, population=has_population,
                           queries=outputs is None)
    plan_by_exposure = _choose_attacks(attacks, exposures, effective, granted)
    if reference_mode == "offline" and references:
        plan_by_exposure = _offline_only(plan_by_exposure, explicit=attacks is not None)
    needs_population = any("population" in a.knowledge
                           for chosen in plan_by_exposure.values() for a in chosen)
    rmia = {} if rmia_temperature is None else {"temperature": rmia_temperature}
    options = {
        "lira-online": {"variance": lira_variance},
        "lira-offline": {"variance": lira_variance},
        "rmia-online": dict(rmia),
        "rmia-offline": dict(rmia),
        "shokri": {"seed": seed},
        "label-augment-learned": {"seed": seed},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _progress(progress) as bar:
            if data is not None and not isinstance(data, Dataset):
                data = load_dataset(data, label_column=label_column, id_column=id_column,
                                    n_records=n_records, seed=seed)
            elif n_records is not None:
                raise ConfigError("n_records applies to data loaded from a name or a file; "
                                  "subset a Dataset yourself with Dataset.subset().")
            training = {
                "cache": None if cache_dir is None else ModelCache(cache_dir),
                "executor": executor, "workers": workers, "ray_address": ray_address,
                "chunk": models_per_batch, "augment": augment,
            }
            game = _play(data, model, model_params, members, outputs, references, targets,
                         reference_mode, seed, device, bar, training, reference_recipe,
                         population_fraction if needs_population else 0.0)
            if game.target_info.get("labels_only") and any(
                    e.fields != frozenset({"predicted"}) for e in exposures):
                raise ConfigError(
                    f"The model answers with labels only ({game.target_info['model']} has no "
                    "predict_proba): audit it with --exposure label.")
            measure = {"fprs": tuple(fprs), "alpha": alpha, "prior": prior, "delta": delta,
                       "seed": seed}
            all_chosen = [a for e in exposures for a in plan_by_exposure[e]]
            query_plan = QueryPlan.fit(query_budget, len(game.labels), all_chosen)
            is_member = np.concatenate([game.membership[t] for t in range(targets)])
            # pooled targets score each record once per target: intervals clustered by record
            clusters = (np.tile(np.arange(len(game.labels)), targets) if targets > 1
                        else None)
            runs = {}
            for e in exposures:
                per_target, scores, queries, tuned = _attack_targets(
                    game, plan_by_exposure[e], e, targets, options, calibration_folds,
                    measure, bar, query_plan)
                metrics = {a.name: _measure(a, scores, is_member, game, clusters, measure)
                           for a in plan_by_exposure[e]}
                runs[e] = (per_target, scores, metrics, queries, tuned)
            metrics = runs[exp][2]
    seen = set()
    for w in caught:  # let callers see the warnings too, each once
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    owner = getattr(game.query[0], "__self__", None) if game.query else None
    if owner is not None and _is_http(owner):  # every query sent, label-only ones too
        game.target_info["http"] = owner.stats()
    settings = {
        "seed": seed, "alpha": alpha, "prior": prior, "delta": delta,
        "fprs": [float(f) for f in fprs], "calibration_folds": calibration_folds,
        "references": game.reference_models, "reference_mode": reference_mode,
        "targets": targets, "lira_variance": lira_variance,
        "rmia_temperature": rmia_temperature, "population_fraction": population_fraction,
        "device": device,
        "query_budget": query_budget,
    }

    def entries_of(e: Exposure) -> dict:
        pt, _, mt, queries, tuned = runs[e]
        # one query per record and target; augmented copies add theirs; label-only
        # attacks as counted by their oracles
        copies = 1 + (0 if game.variants is None else game.variants.shape[1])
        out = {a.name: _attack_entry(
                   a, mt[a.name], pt, targets, calibration_folds, options.get(a.name), alpha,
                   queries.get(a.name, targets * len(game.labels)
                               * (copies if a.name in _VARIANT_ATTACKS else 1)))
               for a in plan_by_exposure[e]}
        for name, per in tuned.items():  # chosen on references, never on the target
            out[name]["tuning"] = per[0] if len(per) == 1 else per
        return out

    entries = entries_of(exp)
    flags = _degenerate_flags(game, entries, runs[exp][1], targets)
    for text in flags:
        warnings.warn(text, DegenerateResultWarning, stacklevel=2)
    granted = threat_model(references=game.reference_models > 0,
                           population=game.population is not None, queries=outputs is None)

    def verdict_of(e: Exposure, es: dict) -> dict:
        pooled = {a.name: np.concatenate([s[a.name] for s in runs[e][1]])
                  for a in plan_by_exposure[e]}
        return audit_verdict(es, pooled, is_member, exposure=str(e),
                             fprs=[str(float(f)) for f in fprs], alpha=alpha,
                             clusters=clusters)

    summary = {
        "miaudit_version": __version__,
        "data": game.data_info,
        "target": game.target_info,
        "exposure": str(exp),
        "threat_model": {"knowledge": sorted(granted),
                         "description": [KNOWLEDGE[k] for k in sorted(granted)]},
        "verdict": verdict_of(exp, entries),
        "attacks": entries,
        "settings": settings,
        "flags": flags,
        "warnings": _unique_messages(caught) + [f"DegenerateResultWarning: {t}" for t in flags],
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    tables = [_score_table(game, runs[e][1], targets, e) for e in exposures]
    if len(exposures) > 1:
        summary["exposures"] = compare_exposures_section(
            {str(e): entries_of(e) for e in exposures},
            {str(e): _released_accuracy(game, e, targets, seed) for e in exposures},
            {str(e): t for e, t in zip(exposures, tables, strict=True)},
            {str(e): e.description for e in exposures},
            fprs=[str(f) for f in fprs])
        summary["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    return AuditResult(summary=summary, scores=pd.concat(tables, ignore_index=True),
                       metrics=metrics, signals=_signals(game),
                       exposure_metrics={str(e): runs[e][2] for e in exposures})


def _parse_exposures(exposure) -> list[Exposure]:
    """One exposure, a list, or a comma-separated string; duplicates refused."""
    if isinstance(exposure, Exposure):
        items = [exposure]
    elif isinstance(exposure, str):
        items = [part for part in exposure.split(",") if part.strip()] or [exposure]
    else:
        items = list(exposure)
        if not items:
            raise ConfigError("No exposure given: name at least one (for example logits).")
    parsed = [parse_exposure(e) for e in items]
    seen = set()
    for e in parsed:
        if e in seen:
            raise ConfigError(f"The exposure '{e}' is listed twice.")
        seen.add(e)
    return parsed


def _choose_attacks(names, exposures: list[Exposure], n_references: int,
                    granted: frozenset[str]) -> dict[Exposure, list[Attack]]:
    """The attacks to run under each exposure, within the threat model ``granted`` (see
    :func:`~miaudit.attacks.base.resolve_attacks`: oracle attacks only by name). One
    exposure: the named attacks (refusing any it does not allow) or the defaults.
    Several: under each, every attack it allows (with label-only queries) or the named
    ones it allows; a named attack that no exposure allows is refused."""
    if len(exposures) == 1:
        e = exposures[0]
        return {e: resolve_attacks(None if names is None else list(names), e, n_references,
                                   knowledge=granted)}
    if names is None:
        return {e: [ATTACKS[n] for n in attacks_allowed(e, n_references, knowledge=granted)]
                for e in exposures}
    chosen: dict[Exposure, list[Attack]] = {e: [] for e in exposures}
    for name in names:
        errors = []
        for e in exposures:
            try:
                chosen[e] += resolve_attacks([name], e, n_references, knowledge=granted)
            except (ConfigError, ExposureError) as exc:
                errors.append(str(exc))
        if len(errors) == len(exposures):
            raise ConfigError(f"No exposure compared allows the attack {name!r}: {errors[0]}")
    for e in exposures:
        if not chosen[e]:
            raise ConfigError(f"None of the named attacks runs under the exposure '{e}'.")
    return chosen


def _offline_only(plan: dict[Exposure, list[Attack]], *, explicit: bool
                  ) -> dict[Exposure, list[Attack]]:
    """Offline references never train on an audited record: attacks that need references
    trained with each record (online LiRA and RMIA) are left out of the defaults, and
    refused, before anything is trained, when named."""
    for e, chosen in plan.items():
        online = [a for a in chosen if "in" in a.reference_sides]
        if online and explicit:
            raise ConfigError(f"The attack {online[0].name!r} needs references trained on each "
                              "record; offline references never are. Use --reference-mode "
                              "online (recipe targets), or an offline attack such as "
                              f"{online[0].name.replace('online', 'offline')}.")
        plan[e] = [a for a in chosen if a not in online]
    return plan


#: A score whose most frequent value holds this share of the records is "nearly constant".
NEARLY_CONSTANT = 0.9
#: References whose accuracy differs from the target's by more than this are flagged.
ACCURACY_GAP = 0.1


def _degenerate_flags(game: _Game, entries: dict, scores: list[dict[str, np.ndarray]],
                      targets: int) -> list[str]:
    """Results that are measurable but mean little: constant or nearly constant attack
    scores (marked in their entries too), references whose accuracy is far from the
    target's (reference-based attacks then compare unlike models) and a target at chance
    accuracy (no learning, so nothing to leak: the audit measures noise)."""
    flags = []
    for name, entry in entries.items():
        s = np.concatenate([sc[name] for sc in scores])
        _, counts = np.unique(s, return_counts=True)
        top = counts.max() / len(s)
        if len(counts) == 1 or top >= NEARLY_CONSTANT:
            why = ("constant scores" if len(counts) == 1 else
                   f"nearly constant scores ({top:.0%} of records share one value)")
            entry["degenerate"] = why
            flags.append(f"The attack {name!r} gives {why}: it cannot rank records, and its "
                         "figures say nothing about the others'.")
    info = game.target_info
    tr, te = info.get("train_accuracy"), info.get("test_accuracy")
    rtr, rte = info.get("reference_train_accuracy"), info.get("reference_test_accuracy")
    if None not in (tr, te, rtr, rte) and max(abs(tr - rtr), abs(te - rte)) > ACCURACY_GAP:
        flags.append(f"The reference models' accuracy (train {rtr:.3f}, test {rte:.3f}) is "
                     f"far from the target's (train {tr:.3f}, test {te:.3f}): attacks that "
                     "calibrate on references compare unlike models; train the references "
                     "with the target's recipe.")
    if te is not None:
        labels = game.labels[~game.membership[0]]
        chance = np.bincount(labels).max() / max(len(labels), 1)
        n = len(labels)
        margin = 2.0 * np.sqrt(chance * (1 - chance) / max(n, 1))
        if te <= chance + margin:
            flags.append(f"The target's accuracy on non-members ({te:.3f}) is at chance (within "
                         f"two standard errors of the most frequent class's share, "
                         f"{chance:.3f}): the model may not have learnt the task, and then "
                         "the audit measures noise.")
    return flags


def _released_accuracy(game: _Game, e: Exposure, targets: int, seed: int) -> dict:
    """Accuracy of the labels released under ``e`` (post-processing that keeps the argmax
    leaves it unchanged; noise may not), mean over targets."""
    if "predicted" not in e.fields:
        return {"train_accuracy": None, "test_accuracy": None,
                "note": f"'{e}' releases no label"}
    accs = []
    for t in range(targets):
        rng = np.random.default_rng([seed, t, 11])
        pred = observe(game.outputs[t], game.labels, e, rng=rng).predicted
        correct = pred == game.labels
        m = game.membership[t]
        accs.append((correct[m].mean(), correct[~m].mean()))
    train, test = np.mean(accs, axis=0)
    return {"train_accuracy": float(train), "test_accuracy": float(test)}


def _score_table(game: _Game, scores: list[dict[str, np.ndarray]], targets: int,
                 exposure: Exposure) -> pd.DataFrame:
    """One row per target and audited record, one column per attack."""
    return pd.concat([
        pd.DataFrame({
            "exposure": str(exposure),
            "target": np.full(len(game.ids), t, dtype=np.int64),
            "record_id": game.ids.astype(str),
            "fingerprint": game.fingerprints,
            "is_member": game.membership[t].astype(bool),
            "label": game.labels.astype(np.int64),
            **scores[t],
        })
        for t in range(targets)
    ], ignore_index=True)


def _signals(game: _Game) -> dict[str, np.ndarray]:
    """The raw material of ``signals.npz`` (log-probabilities stand in for logits when the
    model gave probabilities)."""
    signals = {
        "membership": game.membership,
        "logits": np.stack([o.log_probs() if o.kind == "probs" else o.values
                            for o in game.outputs]).astype(np.float32),
        "labels": game.labels.astype(np.int64),
        "record_ids": game.ids.astype(str),
    }
    if game.variants is not None:
        signals["variant_logits"] = game.variants.astype(np.float32)
    return signals


def _attack_targets(game: _Game, chosen: list[Attack], exp: Exposure, targets: int,
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


#: RMIA's attacks and the mode in which :func:`~miaudit.attacks.reference.tune_rmia` tunes
#: their settings on the references.
_RMIA_MODES = {"rmia-online": "online", "rmia-offline": "offline"}


def _measure(a: Attack, scores: list[dict[str, np.ndarray]], is_member: np.ndarray,
             game: _Game, clusters: np.ndarray | None, measure: dict) -> AttackMetrics:
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


def _population(game: _Game, t: int, exp: Exposure, seed: int) -> Population | None:
    """Target ``t``'s (and its references') release on the population records set aside
    from the audit, or None when the audit has none."""
    if game.population is None:
        return None
    pl, pm, py = game.population
    target = observe(check_outputs(pl[t], "logits"), py, exp,
                     rng=np.random.default_rng([seed, t, 14]))
    if not game.reference_models:
        return Population(target)
    others = game.reference_rows[t]
    return Population(target, _released_logits(pl[others], exp, seed, others, py), pm[others])


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


def _label_queries(game: _Game, t: int, chosen: list[Attack], exp: Exposure, plan: QueryPlan,
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


#: Attacks that also read the target's answers on augmented copies (``--augment``).
_VARIANT_ATTACKS = frozenset({"lira-online", "lira-offline", "rmia-online", "rmia-offline"})


def _attack_entry(a: Attack, pooled: AttackMetrics, per_target: list, targets: int,
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


def _check_device(device: str) -> None:
    """Refuse a torch device that does not exist here, before anything is trained."""
    if device == "cpu":
        return
    try:
        import torch

        dev = torch.device(device)
    except ImportError:
        return  # no torch: nothing will use the device
    except RuntimeError as exc:
        raise ConfigError(f"Unknown device {device!r}: {exc}. Use cpu or cuda.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"The device {device!r} is not available: this machine has no "
                          "usable CUDA GPU. Use --device cpu.")


def _check_settings(seed, fprs, alpha, prior, delta, folds, references, mode, targets,
                    variance, temperature, population_fraction) -> None:
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}.")
    if not fprs or any(not 0 < f < 1 for f in fprs):
        raise ConfigError(f"Every FPR level must lie in (0, 1), got {list(fprs)}.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}.")
    if not 0 < prior < 1:
        raise ConfigError(f"The membership prior must lie in (0, 1), got {prior}.")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta must lie in [0, 1), got {delta}.")
    if folds < 2:
        raise ConfigError(f"calibration_folds must be >= 2, got {folds}.")
    if references < 0:
        raise ConfigError(f"references must be >= 0, got {references}.")
    if mode not in ("online", "offline"):
        raise ConfigError(f"reference_mode must be 'online' or 'offline', got {mode!r}.")
    if not references:
        most, why = 1, " without references"
    elif mode == "online":
        most, why = online_models(references), " (the models of the online game)"
    else:
        most, why = 64, ""
    if not 1 <= targets <= most:
        raise ConfigError(f"targets must lie between 1 and {most}{why}, got {targets}.")
    if variance not in LIRA_VARIANCES:
        raise ConfigError(f"lira_variance must be one of {', '.join(LIRA_VARIANCES)}, "
                          f"got {variance!r}.")
    if temperature is not None and not temperature > 0:
        raise ConfigError(f"rmia_temperature must be > 0, got {temperature}.")
    if not 0 <= population_fraction <= 0.5:
        raise ConfigError("population_fraction must lie in [0, 0.5], got "
                          f"{population_fraction}.")


def _play(data: Dataset | None, model, model_params, members, outputs, references, targets,
          reference_mode, seed, device, bar, training: dict,
          reference_recipe: str | Recipe = "mlp", population_fraction: float = 0.0) -> _Game:
    if outputs is not None:
        if data is not None:
            raise ConfigError("Give either data (to query a model) or outputs "
                              "(precomputed), not both.")
        if references:
            raise ConfigError("Reference models need a recipe to train; precomputed "
                              "outputs are audited with reference-free attacks.")
        if model_params or not (isinstance(model, str) and model == "mlp"):
            raise ConfigError("A model and its parameters do not apply to precomputed "
                              "outputs (nothing is trained); leave --model and -p out.")
        return _game_from_outputs(outputs)
    if data is None:
        raise ConfigError("No data: give a data set (a built-in name or a file path).")
    ds = data
    if isinstance(model, str | Recipe):
        if members is not None:
            raise ConfigError("'members' is for auditing an existing model; a recipe is "
                              "trained on a seeded random half of the data.")
        if isinstance(model, Recipe):
            if model_params:
                raise ConfigError("Give model_params with a recipe name, not with a Recipe "
                                  "object (use dataclasses.replace on the Recipe instead).")
            check_recipe(model)
            recipe = model
        else:
            recipe = make_recipe(model, model_params)
        return _game_from_recipe(ds, recipe, references, targets, reference_mode, seed,
                                 device, bar, training, population_fraction)
    if members is None:
        raise ConfigError("Auditing an existing model needs 'members': a boolean mask or "
                          "the IDs of the records it was trained on.")
    if targets != 1:
        raise ConfigError("An existing model is the one target: leave targets at 1.")
    if references:
        if reference_mode != "offline":
            raise ConfigError("An existing model cannot be retrained with and without each "
                              "record: its references are offline (reference_mode='offline'"
                              ", --reference-mode offline).")
        recipe = (reference_recipe if isinstance(reference_recipe, Recipe)
                  else make_recipe(reference_recipe, model_params))
        check_recipe(recipe)
        return _game_from_model_offline(ds, model, members, recipe, references, seed, device,
                                        bar, training)
    return _game_from_model(ds, model, members)


def _data_info(ds: Dataset, **extra) -> dict:
    """The data facts for ``summary.json``; long column lists are reduced to counts."""
    info = {k: v for k, v in ds.info.items() if k not in ("name", "n_records", "n_classes")}
    for key in ("numeric_columns", "categorical_columns", "constant_columns"):
        if isinstance(info.get(key), list) and len(info[key]) > 20:
            info[f"n_{key}"] = len(info.pop(key))
    return {
        "name": ds.name,
        "n_records": ds.n_records,
        "n_classes": ds.n_classes,
        "n_features": ds.n_features,
        "fingerprint": ds.fingerprint,
        **info,
        **extra,
    }


def online_models(references: int) -> int:
    """Models trained for an online game with ``references`` references per target:
    the references rounded up to an even number, plus the target and its complement."""
    return references + references % 2 + 2


def _game_from_recipe(ds: Dataset, recipe: Recipe, references: int, targets: int,
                      mode: str, seed: int, device: str, bar, training: dict,
                      population_fraction: float = 0.0) -> _Game:
    """Train the target(s) and references of a recipe and collect their outputs.

    ``online``: ``references + 2`` models (``references`` rounded up to an even number)
    train on random halves of the whole pool in complementary pairs. Target ``t``'s
    references are all models but ``t`` and its complement ``t ^ 1``: then every record is
    IN for exactly half of the references *whatever its membership in the target*. (With
    the complement among the references, a member would have one IN reference less than a
    non-member, and attacks whose noise depends on those counts would find "leakage" in an
    untrained model.) ``offline``: the pool is split into audited records and population
    records; the targets train on random halves of the audited records, the references on
    random halves of the population, so no reference ever saw an audited record. The
    targets' pairs include each record independently with probability 1/2 (so their sizes
    vary), which makes the one-run epsilon lower bound valid; reference pairs are exact
    complementary halves.

    Population data for the attacks that use it (RMIA's ``z``, Attack-P) is never the
    audited non-members: offline, it is the references' pool; otherwise a seeded
    ``population_fraction`` of the pool is set aside, and no model trains on it.
    """
    dup = ds.duplicate_mask()
    n_dup = int(dup.sum())
    if n_dup:
        warnings.warn(
            f"{n_dup} duplicate record(s) (same fingerprint as an earlier record) were left "
            "out of the game, so no record can be both member and non-member.",
            DataWarning, stacklevel=2,
        )
    keep = np.flatnonzero(~dup)
    rng = np.random.default_rng([seed, 1])
    # every model trains on exactly the same number of records (batched training)
    offline = mode == "offline" and bool(references)
    multiple = 4 if offline else 2
    n_aside = 0 if offline else round(population_fraction * len(keep))
    drop = (len(keep) - n_aside) % multiple
    if drop:
        keep = np.delete(keep, rng.choice(len(keep), drop, replace=False))
    pool = ds.subset(keep)
    n = pool.n_records
    aside = np.sort(rng.permutation(n)[:n_aside]) if n_aside else np.zeros(0, dtype=np.int64)
    # the targets' membership is drawn independently per record with probability 1/2 (the
    # one-run epsilon bound needs it); every other pair stays an exact complementary half
    target_pairs = -(-targets // 2)
    if offline:
        order = rng.permutation(n)
        audited, population = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
        design = np.zeros((targets + references, n), dtype=bool)
        design[:targets, audited] = membership_design(len(audited), targets, seed=seed,
                                                      bernoulli=target_pairs)
        design[targets:, population] = independent_halves(len(population), references,
                                                          seed=seed + 1)
        reference_rows = [list(range(targets, targets + references))] * targets
    elif references:
        audited = np.setdiff1d(np.arange(n), aside)
        n_models = online_models(references)
        design = np.zeros((n_models, n), dtype=bool)
        design[:, audited] = membership_design(len(audited), n_models, seed=seed,
                                               bernoulli=target_pairs)
        reference_rows = [[m for m in range(n_models) if m not in (t, t ^ 1)]
                          for t in range(targets)]
    else:
        audited = np.setdiff1d(np.arange(n), aside)
        design = np.zeros((1, n), dtype=bool)
        design[:, audited] = membership_design(len(audited), 1, seed=seed, bernoulli=1)
        reference_rows = []
    members0 = design[0, audited]
    if ds.n_classes < 2 or len(np.unique(pool.y[audited][members0])) < 2:
        raise MembershipError("The members hold a single class; a classifier cannot be "
                              "trained. Use a data set with at least two classes.")
    _check_labels(pool.y[audited], members0)
    augment = training.pop("augment")
    if augment is None:  # default: flips and shifts for image recipes with references
        augment = recipe.name == "cnn" and references > 0
    augment_name = "flip-shift" if augment else None
    if augment and recipe.name != "cnn":
        raise ConfigError("Augmented queries (flips, shifts) are for image recipes: use "
                          "--model cnn, or leave --augment off.")
    logits, variants, train_stats, weights = train_pool_models(
        recipe, pool.X, pool.y, design, n_classes=ds.n_classes, seed=seed,
        data_fingerprint=pool.fingerprint, device=device, bar=bar, augment=augment_name,
        **training)
    train_stats["augmented_queries"] = augment_name
    for m, z in enumerate(logits):  # every model's outputs on the whole pool, once
        check_outputs(z, "logits", n_records=n, n_classes=ds.n_classes,
                      source=f"{recipe.name} model {m}")
    accs = [_accuracies(z, pool.y, design[m]) for m, z in enumerate(logits)]
    labels = pool.y[audited]
    outputs = [ModelOutputs("logits", z[audited]) for z in logits]
    target_info = {
        "model": recipe.name,
        "recipe": recipe.to_dict(),
        "description": recipe.describe(),
        "seed": seed,
        "train_accuracy": float(np.mean([a["train_accuracy"] for a in accs[:targets]])),
        "test_accuracy": float(np.mean([a["test_accuracy"] for a in accs[:targets]])),
        "n_members": int(members0.sum()),
        "n_non_members": int((~members0).sum()),
        "membership_draw": "independent per record with probability 1/2",
    }
    if references:
        ref_accs = [accs[m] for m in sorted({m for rows in reference_rows for m in rows})]
        target_info.update({
            "references": len(reference_rows[0]),
            "reference_mode": mode,
            "reference_train_accuracy": float(np.mean([a["train_accuracy"] for a in ref_accs])),
            "reference_test_accuracy": float(np.mean([a["test_accuracy"] for a in ref_accs])),
        })
    if targets > 1:
        target_info["targets"] = targets
    target_info["training"] = train_stats
    # --- issue 8 (DP-SGD): the accountant's epsilon of the target(s) at the top level ---
    if "dp_epsilon_accountant" in train_stats:
        target_info["dp_epsilon_accountant"] = train_stats["dp_epsilon_accountant"]
    # --- end issue 8 ---
    data_info = _data_info(ds, n_duplicates_left_out=n_dup, n_records_in_game=len(audited),
                           **({"n_population_records": int(n - len(audited))}
                              if len(audited) < n else {}))
    population_view = population_features = None
    if len(audited) < n:
        on_pop = np.setdiff1d(np.arange(n), audited)
        population_view = (logits[:, on_pop], design[:, on_pop], pool.y[on_pop])
        population_features = pool.X[on_pop]
    return _Game(pool.ids[audited], pool.fingerprints[audited], labels, design[:, audited],
                 outputs, data_info, target_info, reference_rows=reference_rows,
                 population=population_view, references_train_on_population=offline,
                 bernoulli_membership=True,
                 variants=None if variants is None else variants[:, :, audited],
                 query=_recipe_queries(recipe, weights, ds.n_features, ds.n_classes, device),
                 features=pool.X[audited], population_features=population_features,
                 image_shape=(3, image_side(ds.n_features), image_side(ds.n_features))
                 if recipe.name == "cnn" else None)


def _recipe_queries(recipe: Recipe, weights: list[dict], n_features: int, n_classes: int,
                    device: str) -> list[Query]:
    """One query function per trained model (its torch module is rebuilt from the state
    dict on first use), for label-only attacks."""
    built: dict[int, TorchTarget] = {}

    def make(m: int) -> Query:
        def query(X: np.ndarray) -> ModelOutputs:
            if m not in built:
                import torch

                module = build_module(recipe, n_features, n_classes)
                module.load_state_dict({k: torch.from_numpy(np.array(v))
                                        for k, v in weights[m].items()})
                built[m] = TorchTarget(module.to(device), device=device)
            return built[m].outputs(X)
        return query

    return [make(m) for m in range(len(weights))]


def _member_mask(ds: Dataset, members) -> np.ndarray:
    arr = np.asarray(members)
    if arr.dtype == bool:
        if arr.shape != (ds.n_records,):
            raise MembershipError(f"The members mask has shape {arr.shape}; expected "
                                  f"({ds.n_records},), one entry per record.")
        return arr
    if (arr.shape == (ds.n_records,) and np.issubdtype(arr.dtype, np.number)
            and set(np.unique(arr).tolist()) <= {0, 1}):
        raise MembershipError("'members' looks like a 0/1 mask but is not boolean; pass "
                              "mask.astype(bool), or the members' record IDs as strings.")
    if arr.ndim != 1:
        raise MembershipError(f"'members' must be a 1-D boolean mask or a list of record "
                              f"IDs, got shape {arr.shape}.")
    wanted = arr.astype(str)
    uniq, counts = np.unique(wanted, return_counts=True)
    if (counts > 1).any():
        raise MembershipError(f"'members' lists record ID {uniq[counts > 1][0]!r} more than "
                              "once.")
    known = set(ds.ids.astype(str).tolist())
    unknown = [i for i in wanted.tolist() if i not in known]
    if unknown:
        raise MembershipError(f"{len(unknown)} member ID(s) are not in the data "
                              f"(first: {str(unknown[0])!r}).")
    return np.isin(ds.ids.astype(str), wanted)


def _game_from_model(ds: Dataset, model: object, members) -> _Game:
    is_member = _member_mask(ds, members)
    _check_sides(is_member, ds.fingerprints)
    target = as_target(model, classes=ds.classes)
    http = _is_http(target)
    partial = None
    if http:
        if target.n_classes is None:
            target.n_classes = ds.n_classes
        if target.classes is None:
            target.classes = ds.classes
        try:
            raw = target.outputs(ds.X, tag="outputs")
        except QueryBudgetError as exc:
            # the budget ran out: audit the records answered so far, marked as partial
            answered = getattr(exc, "answered", None)
            if answered is None or getattr(exc, "outputs", None) is None:
                raise
            partial = {"reason": str(exc), "records_answered": int(answered.sum()),
                       "records": int(ds.n_records)}
            ds, is_member, raw = ds.subset(np.flatnonzero(answered)), is_member[answered], \
                exc.outputs
            _check_sides(is_member, ds.fingerprints)
            warnings.warn(f"Partial audit: the query budget ran out after "
                          f"{partial['records_answered']} of {partial['records']} records.",
                          DataWarning, stacklevel=3)
    else:
        raw = target.outputs(ds.X)
    _check_labels(ds.y, is_member)
    if raw.n_classes < ds.n_classes:
        raise OutputError(
            f"The data has labels 0..{ds.n_classes - 1} but the model returns only "
            f"{raw.n_classes} classes: labels outside the model's classes."
        )
    out = check_outputs(raw.values, raw.kind, n_records=ds.n_records, n_classes=ds.n_classes,
                        source=type(model).__name__)
    target_info = {"model": type(model).__name__, "seed": None,
                   "outputs_sha256": _outputs_digest(out.values),
                   **_accuracies(out.values, ds.y, is_member)}
    if isinstance(target, LabelTarget) or (http and target.answer_form == "label"):
        target_info["labels_only"] = True
    if http:  # the endpoint without credentials, and what was sent so far
        target_info.update({"model": "HTTP endpoint", "endpoint": target.endpoint,
                            "http": target.stats()})
        if partial:
            target_info["partial"] = partial
    return _Game(ds.ids, ds.fingerprints, ds.y, is_member[None, :], [out], _data_info(ds),
                 target_info, query=[target.outputs], features=ds.X)


def _outputs_digest(values: np.ndarray) -> str:
    """SHA-256 of a model's outputs on the audited records: what tells two models that are
    not built from a recipe apart (the registry keys them by it)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def _game_from_model_offline(ds: Dataset, model: object, members, recipe: Recipe,
                             references: int, seed: int, device: str, bar,
                             training: dict) -> _Game:
    """An existing (black-box) target with offline references trained locally.

    The target cannot be retrained, so a seeded half of its non-members becomes the
    attacker's population data: the references train on random halves of it (never on an
    audited record), the target is queried on it (RMIA's ``z``), and the audited records
    are the members and the other half of the non-members.
    """
    is_member = _member_mask(ds, members)
    _check_sides(is_member, ds.fingerprints)
    rng = np.random.default_rng([seed, 5])
    outs = rng.permutation(np.flatnonzero(~is_member))
    population = np.sort(outs[: len(outs) // 2])
    if len(population) < 4 or len(outs) - len(population) < 2:
        raise MembershipError(f"{int((~is_member).sum())} non-member(s): too few to set half "
                              "aside as the references' population data.")
    audited = np.sort(np.concatenate([np.flatnonzero(is_member), outs[len(outs) // 2 :]]))
    base = _game_from_model(ds.subset(audited), model, is_member[audited])
    pool = ds.subset(np.concatenate([audited, population]))
    n_aud = len(audited)
    design = np.zeros((references, pool.n_records), dtype=bool)
    n_pop = len(population) - len(population) % 2
    design[:, n_aud : n_aud + n_pop] = independent_halves(n_pop, references, seed=seed + 1)
    training = dict(training)
    training.pop("augment", None)
    logits, _, train_stats, weights = train_pool_models(
        recipe, pool.X, pool.y, design, n_classes=ds.n_classes, seed=seed,
        data_fingerprint=pool.fingerprint, device=device, bar=bar, **training)
    target_on_pop = base.query[0](ds.X[population])
    target_logits = (target_on_pop.values if target_on_pop.kind == "logits"
                     else target_on_pop.log_probs())
    ref_accs = [_accuracies(z[n_aud:], pool.y[n_aud:], design[m, n_aud:])
                for m, z in enumerate(logits)]
    base.target_info.update({
        "references": references, "reference_mode": "offline",
        "reference_recipe": recipe.to_dict(),
        "reference_train_accuracy": float(np.mean([a["train_accuracy"] for a in ref_accs])),
        "reference_test_accuracy": float(np.mean([a["test_accuracy"] for a in ref_accs])),
        "training": train_stats,
    })
    base.data_info["n_population_records"] = len(population)
    base.data_info["n_records_in_game"] = int(n_aud)
    ref_queries = _recipe_queries(recipe, weights, ds.n_features, ds.n_classes, device)
    return _Game(
        base.ids, base.fingerprints, base.labels,
        np.vstack([base.membership, design[:, :n_aud]]),
        [base.outputs[0], *(ModelOutputs("logits", z[:n_aud]) for z in logits)],
        base.data_info, base.target_info,
        reference_rows=[list(range(1, references + 1))], references_train_on_population=True,
        population=(np.concatenate([target_logits[None], logits[:, n_aud:]]),
                    np.vstack([np.zeros((1, len(population)), dtype=bool), design[:, n_aud:]]),
                    pool.y[n_aud:]),
        query=[base.query[0], *ref_queries], features=base.features,
        population_features=pool.X[n_aud:])


def _is_http(target: object) -> bool:
    """Whether the target is an HTTP endpoint (without importing httpx for others)."""
    return type(target).__name__ == "HTTPTarget" and hasattr(target, "counting")


def _game_from_outputs(outputs) -> _Game:
    pre = outputs if isinstance(outputs, PrecomputedOutputs) else load_outputs(outputs)
    n = len(pre.labels)
    if n < 4:
        raise MembershipError(f"{n} record(s) in the outputs; an audit needs at least 4.")
    uniq, counts = np.unique(pre.ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise MembershipError(f"Record ID {uniq[counts > 1][0]!r} appears more than once in "
                              "the outputs; IDs must be unique.")
    fps = pre.fingerprints
    if fps is None:  # no content to fingerprint: the column stays empty
        fps = np.full(n, None, dtype=object)
    elif fps.shape != (n,):
        raise MembershipError(f"'fingerprints' has shape {fps.shape}; expected ({n},).")
    _check_sides(pre.is_member, pre.fingerprints)
    _check_labels(pre.labels, pre.is_member)
    n_classes = pre.outputs.n_classes
    if len(np.unique(pre.labels)) < 2:
        raise MembershipError("The records hold a single class; nothing to audit.")
    name = Path(pre.source).name
    data_info = {"name": name, "n_records": len(pre.labels), "n_classes": n_classes,
                 "n_features": None, "fingerprint": None, "source": pre.source,
                 "record_fingerprints": "from the file" if pre.fingerprints is not None
                 else "none (the file has no 'fingerprints' array)"}
    target_info = {"model": "precomputed outputs", "seed": None,
                   "outputs_sha256": _outputs_digest(pre.outputs.values),
                   **_accuracies(pre.outputs.values, pre.labels, pre.is_member)}
    return _Game(pre.ids, fps, pre.labels, pre.is_member[None, :], [pre.outputs], data_info,
                 target_info)


def _check_labels(labels: np.ndarray, is_member: np.ndarray) -> None:
    """Warn when the labels make the game measure something other than memorisation."""
    n = len(labels)
    n_classes = len(np.unique(labels))
    if n_classes > max(10, n // 10):
        warnings.warn(
            f"{n_classes} classes for {n} records: the label column looks continuous or "
            "ID-like, and attacks will mostly detect classes that only one side holds.",
            DataWarning, stacklevel=3,
        )
    unseen = ~np.isin(labels[~is_member], labels[is_member])
    if unseen.mean() > 0.01:
        warnings.warn(
            f"{int(unseen.sum())} non-member(s) ({unseen.mean():.1%}) have a class that no "
            "member has; such records are told apart by their class, not by memorisation.",
            DataWarning, stacklevel=3,
        )


def _check_sides(is_member: np.ndarray, fingerprints: np.ndarray | None) -> None:
    n_mem = int(is_member.sum())
    if n_mem == 0 or n_mem == len(is_member):
        side = "members" if n_mem == 0 else "non-members"
        raise MembershipError(f"There are no {side}: an audit needs both members and "
                              "non-members.")
    if fingerprints is None:
        return
    shared = np.intersect1d(fingerprints[is_member], fingerprints[~is_member])
    if len(shared):
        raise MembershipError(
            f"{len(shared)} record(s) appear among both members and non-members (same "
            f"fingerprint, e.g. {shared[0][:12]}); remove the duplicates from the "
            "non-members so the non-members are truly unseen."
        )


def _accuracies(values: np.ndarray, labels: np.ndarray, is_member: np.ndarray) -> dict:
    """Accuracy on the members (train) and non-members (test) from outputs ``(N, C)``."""
    correct = np.argmax(values, axis=1) == labels
    return {
        "train_accuracy": float(correct[is_member].mean()),
        "test_accuracy": float(correct[~is_member].mean()),
        "n_members": int(is_member.sum()),
        "n_non_members": int((~is_member).sum()),
    }


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


def _unique_messages(caught) -> list[str]:
    """Distinct warning texts, without the not-measurable metrics (each attack's
    ``undefined`` entry already gives those reasons)."""
    seen: list[str] = []
    for w in caught:
        if issubclass(w.category, UndefinedMetricWarning):
            continue
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    return seen


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        yield bar
