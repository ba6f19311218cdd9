"""The one public entry point: :func:`audit`.

It validates everything at the boundary, plays the privacy game or takes the user's
membership (:mod:`~miaudit.orchestration.games`), applies the exposure, runs the attacks
and measures them (:mod:`~miaudit.orchestration.scoring`), and assembles ``summary.json``
with the verdict. Attacks and metrics below this layer receive clean arrays.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit._version import __version__
from miaudit.attacks import (
    ATTACKS,
    Attack,
    attacks_allowed,
    resolve_attacks,
)
from miaudit.attacks.base import KNOWLEDGE, threat_model
from miaudit.data import Dataset, load_dataset
from miaudit.errors import (
    ConfigError,
    DegenerateResultWarning,
    ExposureError,
    reissue_once,
    summary_warnings,
)
from miaudit.models import (
    PrecomputedOutputs,
    Recipe,
)
from miaudit.orchestration.cache import ModelCache
from miaudit.orchestration.exposures import compare_exposures_section
from miaudit.orchestration.games import Game, is_http, online_models, play_game
from miaudit.orchestration.querying import QueryPlan
from miaudit.orchestration.result import AuditResult
from miaudit.orchestration.scoring import attack_entry, measure_attack, score_attacks
from miaudit.orchestration.training import DEFAULT_CHUNK, check_training
from miaudit.orchestration.verdict import audit_verdict
from miaudit.signals import Exposure, observe, parse_exposure

DEFAULT_FPRS = (0.01, 0.001, 0.0001)
#: Share of a recipe game's pool set aside as population data (see ``population_fraction``).
POPULATION_FRACTION = 0.1
LIRA_VARIANCES = ("auto", "global", "per-example")


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
    plan_by_exposure = _attack_plan(attacks, exposures, model, outputs, references,
                                    reference_mode, population_fraction)
    needs_population = any("population" in a.knowledge
                           for chosen in plan_by_exposure.values() for a in chosen)
    options = _attack_options(lira_variance, rmia_temperature, seed)
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
            game = play_game(data, model, model_params, members, outputs, references, targets,
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
                per_target, scores, queries, tuned = score_attacks(
                    game, plan_by_exposure[e], e, targets, options, calibration_folds,
                    measure, bar, query_plan)
                metrics = {a.name: measure_attack(a, scores, is_member, game, clusters, measure)
                           for a in plan_by_exposure[e]}
                runs[e] = (per_target, scores, metrics, queries, tuned)
            metrics = runs[exp][2]
    reissue_once(caught)
    owner = getattr(game.query[0], "__self__", None) if game.query else None
    if owner is not None and is_http(owner):  # every query sent, label-only ones too
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
        out = {a.name: attack_entry(
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
        "warnings": summary_warnings(caught) + [f"DegenerateResultWarning: {t}" for t in flags],
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


def _attack_plan(attacks, exposures: list[Exposure], model, outputs, references: int,
                 reference_mode: str, population_fraction: float
                 ) -> dict[Exposure, list[Attack]]:
    """The attacks to run under each exposure: those named (or the defaults) that the
    exposure allows and the threat model grants (references, population data, queries;
    oracle knowledge only by name), offline ones only with offline references."""
    effective = references + references % 2 if reference_mode == "online" else references
    recipe_game = outputs is None and isinstance(model, str | Recipe)
    has_population = bool(outputs is None and references and reference_mode == "offline") or (
        recipe_game and population_fraction > 0)
    granted = threat_model(references=effective > 0, population=has_population,
                           queries=outputs is None)
    plan = _choose_attacks(attacks, exposures, effective, granted)
    if reference_mode == "offline" and references:
        plan = _offline_only(plan, explicit=attacks is not None)
    return plan


def _attack_options(lira_variance: str, rmia_temperature: float | None, seed: int) -> dict:
    """The keyword arguments each attack runs with (RMIA's temperature only when fixed:
    otherwise it is tuned on the references per target)."""
    rmia = {} if rmia_temperature is None else {"temperature": rmia_temperature}
    return {
        "lira-online": {"variance": lira_variance},
        "lira-offline": {"variance": lira_variance},
        "rmia-online": dict(rmia),
        "rmia-offline": dict(rmia),
        "shokri": {"seed": seed},
        "label-augment-learned": {"seed": seed},
    }


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


def _degenerate_flags(game: Game, entries: dict, scores: list[dict[str, np.ndarray]],
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


def _released_accuracy(game: Game, e: Exposure, targets: int, seed: int) -> dict:
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


def _score_table(game: Game, scores: list[dict[str, np.ndarray]], targets: int,
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


def _signals(game: Game) -> dict[str, np.ndarray]:
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


#: Attacks that also read the target's answers on augmented copies (``--augment``).
_VARIANT_ATTACKS = frozenset({"lira-online", "lira-offline", "rmia-online", "rmia-offline"})


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
