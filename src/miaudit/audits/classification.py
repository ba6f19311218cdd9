"""The one public entry point: :func:`audit`.

It validates everything at the boundary, plays the privacy game or takes the user's
membership (:mod:`~miaudit.game.builders`), applies the exposure, runs the attacks
and measures them (:mod:`~miaudit.audits.scoring`), and assembles ``summary.json``
with the verdict. Attacks and metrics below this layer receive clean arrays.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

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
from miaudit.audits.exposures import compare_exposures_section
from miaudit.audits.querying import QueryPlan
from miaudit.audits.scoring import attack_entry, measure_attack, score_attacks
from miaudit.audits.verdict import audit_verdict
from miaudit.config import AuditConfig
from miaudit.data import Dataset, load_dataset
from miaudit.errors import (
    ConfigError,
    DegenerateResultWarning,
    ExposureError,
    reissue_once,
    summary_warnings,
)
from miaudit.game.builders import Game, is_http, play_game
from miaudit.results.result import AuditResult
from miaudit.signals import Exposure, observe
from miaudit.targets import PrecomputedOutputs
from miaudit.training import Recipe
from miaudit.training.cache import ModelCache


def audit(
    config: AuditConfig | None = None,
    /,
    *,
    data: Dataset | str | Path | None = None,
    model: str | Recipe | object | None = None,
    members: np.ndarray | Sequence[str] | None = None,
    outputs: PrecomputedOutputs | str | Path | None = None,
    **settings: Any,
) -> AuditResult:
    """Audit a model for membership-inference leakage.

    Three ways to name the target:

    * ``model="mlp"`` (or ``"logistic"``, ``"cnn"``, or a :class:`~miaudit.training.Recipe`):
      train it on a seeded random half of ``data`` (the members); the other half are
      non-members. With ``references=K``, reference models of the same recipe are trained
      too, each on a random half (see ``reference_mode``).
    * ``model=<estimator | torch module | callable>`` with ``members``: audit an existing
      model; ``members`` marks its training records in ``data`` (bool mask or record IDs),
      every other record is a non-member.
    * ``outputs=<.npz path | PrecomputedOutputs>``: outputs computed elsewhere, with labels
      and membership; nothing is trained or queried.

    Parameters
    ----------
    config : AuditConfig, optional
        Every setting, typed and validated (:class:`~miaudit.config.AuditConfig`); the
        keyword ``settings`` below override it.
    data : Dataset, str or Path, optional
        A built-in name (``digits``), a file path, or a loaded :class:`~miaudit.data.Dataset`.
    model : str, Recipe or model object, default "mlp"
        A recipe to train, or an existing model (with ``members``).
    members : bool mask or sequence of record IDs, optional
        The training records of an existing ``model``.
    outputs : PrecomputedOutputs, str or Path, optional
        Precomputed outputs (``.npz``) instead of a model.
    **settings
        Any setting of :class:`~miaudit.config.AuditConfig` by its flat name
        (:data:`~miaudit.config.SETTINGS`), the same names as the options of
        ``miaudit run`` and the keys of spec files:

        Data: ``label_column``, ``id_column`` (CSV / Parquet columns; the ID column is kept
        out of the features), ``n_records`` (a seeded, class-stratified subset, for large
        data such as CIFAR-10 on a CPU).

        Target: ``model_params`` (recipe overrides, ``{"epochs": 20}`` or
        ``["epochs=20"]``).

        References: ``references`` (default 0; reference models per target, recipe
        targets only; enables LiRA, RMIA, Attack-R and Shokri). ``reference_mode``:
        ``online`` (default; ``K + 2`` models, ``K`` rounded up to even, train on random
        halves of the audited records in complementary pairs; a target's references are
        the models outside its pair, so every record is IN for exactly half of them) or
        ``offline`` (half of the pool is set aside as population data and the references
        train only on it, in complementary pairs; a record's own data never reaches a
        reference). ``targets``
        (default 1; how many of the models take the target's role in turn; metrics are
        pooled over them, with per-target figures). ``reference_recipe`` (default
        ``mlp``; with an existing model: the recipe, with ``model_params``, of the offline
        references the attacker trains locally on population data, half of the target's
        non-members set aside). ``population_fraction`` (default 0.1; share of the pool a
        recipe game sets aside as population data, never trained on or audited, when an
        attack uses population data: ``attack-p``, ``rmia-*``). ``augment`` (query every
        model on flipped and shifted copies too and let LiRA and RMIA use them; default on
        for ``cnn`` with references).

        Attacks: ``exposure`` (default ``logits``; what the attacker sees of the target:
        ``logits``, ``probabilities``, ``top-k:K``, ``rounded:D``, ``label``, ``loss``,
        or the probability vector after an output defence, ``temperature:T``,
        ``noise:SIGMA``, ``memguard:EPS``; references are the attacker's own and seen in
        full after the same defence. Several, a list or one string with commas, are
        compared on the same models and the summary gains an ``exposures`` section, see
        :func:`~miaudit.audits.exposures.compare_exposures_section`; the first gives
        the summary's ``attacks``). ``attacks`` (names; default: every attack the
        exposure, the references and the threat model allow: label-only query attacks
        only under ``label`` or when comparing exposures, attacks that know other
        records' membership only when named; each entry states its ``knowledge``).
        ``lira_variance`` (``auto``: global below 64 references, ``global``,
        ``per-example``). ``rmia_temperature`` (RMIA's softmax temperature; default tuned,
        with RMIA's offline ``a``, on the references, never on the target; both recorded).
        ``quantile_method`` (the quantile attack's regression: ``gaussian``, a mean and a
        spread per record, or ``pinball``, the 99% quantile itself).
        ``calibration_folds`` (default 5; cross-fitting folds of the oracle attacks
        ``class-loss-known``, ``class-mentr-known``, never part of the verdict).
        ``query_budget`` (most queries each label-only attack may send to each target;
        the queries per record are lowered to fit, and a budget too small is refused
        before anything is trained).

        Metrics: ``fprs`` (default 1%, 0.1%, 0.01%), ``alpha`` (default 0.05; 1 -
        confidence of every interval), ``prior`` (default 0.5; for the PPV), ``delta``
        (default 1e-5; of the epsilon lower bound).

        Compute: ``device`` (torch device), ``executor`` (``inprocess``, ``process`` or
        ``ray``), ``workers``, ``ray_address``, ``models_per_batch`` (default 32; lower
        it to save memory), ``cache`` (default True: store every trained model by content hash
        and load it on a re-run or a resumed run; False: train all, store nothing),
        ``cache_dir`` (default ``$MIAUDIT_CACHE`` or ``~/.cache/miaudit``, the command
        line's too),
        ``checkpoint_seconds`` (default 10: with the cache, how often a batched training
        run saves its state, so a killed run resumes where it was),
        ``progress`` (Rich progress bars on stderr).

        ``seed`` (default 0) seeds the split, the training and the cross-fitting folds.

    Returns
    -------
    AuditResult
        ``.summary()`` (the ``summary.json`` content), ``.scores`` (one row per target and
        record), ``.metrics`` and ``.save(dir)``.

    Raises
    ------
    ConfigError
        An unknown setting or a value out of range (naming the setting), before anything
        is trained.
    """
    started = time.perf_counter()
    cfg, data, model, outputs = _configure(config, data, model, outputs, settings)
    _check_device(cfg.compute.device)
    ref, att = cfg.references, cfg.attacks
    plan = _attack_plan(att.names, att.exposures, model, outputs, ref.count, ref.mode,
                        ref.population_fraction)
    options = _attack_options(att.lira_variance, att.rmia_temperature, att.quantile_method,
                              cfg.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _progress(cfg.compute.progress) as bar:
            game = _play(cfg, data, model, members, outputs, plan, bar)
            runs = _attack_runs(cfg, game, plan, options, bar)
    reissue_once(caught)
    owner = getattr(game.query[0], "__self__", None) if game.query else None
    if owner is not None and is_http(owner):  # every query sent, label-only ones too
        game.target_info["http"] = owner.stats()
    summary = _summary(cfg, game, runs, plan, options, outputs, caught)
    exposures, targets = att.exposures, ref.targets
    tables = [_score_table(game, runs.by_exposure[e].scores, targets, e) for e in exposures]
    if len(exposures) > 1:
        summary["exposures"] = compare_exposures_section(
            {str(e): _entries(cfg, game, runs, plan, options, e) for e in exposures},
            {str(e): _released_accuracy(game, e, targets, cfg.seed) for e in exposures},
            {str(e): t for e, t in zip(exposures, tables, strict=True)},
            {str(e): e.description for e in exposures},
            fprs=[str(f) for f in cfg.metrics.fprs])
    summary["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    return AuditResult(summary=summary, scores=pd.concat(tables, ignore_index=True),
                       metrics=runs.by_exposure[exposures[0]].metrics, signals=_signals(game),
                       exposure_metrics={str(e): runs.by_exposure[e].metrics
                                         for e in exposures})


class _Run(NamedTuple):
    """The attacks of one exposure: scores per target, metrics, queries, tuned settings."""

    per_target: list
    scores: list[dict[str, np.ndarray]]
    metrics: dict
    queries: dict[str, int]
    tuned: dict


class _Runs(NamedTuple):
    """Every exposure's run, with the pooled membership and the intervals' clusters."""

    by_exposure: dict[Exposure, _Run]
    is_member: np.ndarray
    clusters: np.ndarray | None


def _play(cfg: AuditConfig, data: Dataset | None, model, members, outputs,
          plan: dict[Exposure, list[Attack]], bar) -> Game:
    """Load the data (when named), then build and train the game's models."""
    d, ref, cmp = cfg.data, cfg.references, cfg.compute
    if data is None and d.source is not None:
        data = load_dataset(d.source, label_column=d.label_column, id_column=d.id_column,
                            n_records=d.n_records, seed=cfg.seed)
    elif d.n_records is not None:
        raise ConfigError("n_records applies to data loaded from a name or a file; "
                          "subset a Dataset yourself with Dataset.subset().")
    cache_root = cmp.model_cache_dir()
    training = {
        "cache": None if cache_root is None else ModelCache(cache_root),
        "executor": cmp.executor, "workers": cmp.workers, "ray_address": cmp.ray_address,
        "chunk": cmp.models_per_batch, "augment": ref.augment,
        "checkpoint_seconds": cmp.checkpoint_seconds,
    }
    needs_population = any("population" in a.knowledge
                           for chosen in plan.values() for a in chosen)
    game = play_game(data, model, cfg.target.params, members, outputs, ref.count, ref.targets,
                     ref.mode, cfg.seed, cmp.device, bar, training, ref.recipe,
                     ref.population_fraction if needs_population else 0.0)
    if game.target_info.get("labels_only") and any(
            e.fields != frozenset({"predicted"}) for e in cfg.attacks.exposures):
        raise ConfigError(
            f"The model answers with labels only ({game.target_info['model']} has no "
            "predict_proba): audit it with --exposure label.")
    return game


def _measure_settings(cfg: AuditConfig) -> dict:
    met = cfg.metrics
    return {"fprs": tuple(met.fprs), "alpha": met.alpha, "prior": met.prior,
            "delta": met.delta, "seed": cfg.seed}


def _attack_runs(cfg: AuditConfig, game: Game, plan: dict[Exposure, list[Attack]],
                 options: dict, bar) -> _Runs:
    """Every planned attack under every exposure, scored on each target and measured."""
    targets, measure = cfg.references.targets, _measure_settings(cfg)
    query_plan = QueryPlan.fit(cfg.attacks.query_budget, len(game.labels),
                               [a for e in cfg.attacks.exposures for a in plan[e]])
    is_member = np.concatenate([game.membership[t] for t in range(targets)])
    # pooled targets score each record once per target: intervals clustered by record
    clusters = np.tile(np.arange(len(game.labels)), targets) if targets > 1 else None
    by_exposure = {}
    for e in cfg.attacks.exposures:
        per_target, scores, queries, tuned = score_attacks(
            game, plan[e], e, targets, options, cfg.attacks.calibration_folds, measure, bar,
            query_plan)
        metrics = {a.name: measure_attack(a, scores, is_member, game, clusters, measure)
                   for a in plan[e]}
        by_exposure[e] = _Run(per_target, scores, metrics, queries, tuned)
    return _Runs(by_exposure, is_member, clusters)


def _entries(cfg: AuditConfig, game: Game, runs: _Runs, plan: dict[Exposure, list[Attack]],
             options: dict, e: Exposure) -> dict:
    """The ``attacks`` entries of summary.json for exposure ``e``."""
    run, targets = runs.by_exposure[e], cfg.references.targets
    # one query per record and target; augmented copies add theirs; label-only attacks as
    # counted by their oracles
    copies = 1 + (0 if game.variants is None else game.variants.shape[1])
    out = {a.name: attack_entry(
               a, run.metrics[a.name], run.per_target, targets,
               cfg.attacks.calibration_folds, options.get(a.name), cfg.metrics.alpha,
               run.queries.get(a.name, targets * len(game.labels)
                               * (copies if a.name in _VARIANT_ATTACKS else 1)))
           for a in plan[e]}
    for name, per in run.tuned.items():  # chosen on references, never on the target
        out[name]["tuning"] = per[0] if len(per) == 1 else per
    return out


def _summary(cfg: AuditConfig, game: Game, runs: _Runs, plan: dict[Exposure, list[Attack]],
             options: dict, outputs, caught: list) -> dict:
    """summary.json of the first exposure: data, target, threat model, verdict, attacks,
    settings, flags and warnings."""
    exp, met, ref, att = cfg.attacks.exposures[0], cfg.metrics, cfg.references, cfg.attacks
    entries = _entries(cfg, game, runs, plan, options, exp)
    flags = _degenerate_flags(game, entries, runs.by_exposure[exp].scores, ref.targets)
    for text in flags:
        warnings.warn(text, DegenerateResultWarning, stacklevel=3)
    granted = threat_model(references=game.reference_models > 0,
                           population=game.population is not None, queries=outputs is None)
    pooled = {a.name: np.concatenate([s[a.name] for s in runs.by_exposure[exp].scores])
              for a in plan[exp]}
    verdict = audit_verdict(entries, pooled, runs.is_member, exposure=str(exp),
                            fprs=[str(float(f)) for f in met.fprs], alpha=met.alpha,
                            clusters=runs.clusters)
    recorded = {
        "seed": cfg.seed, "alpha": met.alpha, "prior": met.prior, "delta": met.delta,
        "fprs": [float(f) for f in met.fprs], "calibration_folds": att.calibration_folds,
        "references": game.reference_models, "reference_mode": ref.mode,
        "targets": ref.targets, "lira_variance": att.lira_variance,
        "rmia_temperature": att.rmia_temperature, "quantile_method": att.quantile_method,
        "population_fraction": ref.population_fraction, "device": cfg.compute.device,
        "query_budget": att.query_budget,
    }
    return {
        "miaudit_version": __version__,
        "data": game.data_info,
        "target": game.target_info,
        "exposure": str(exp),
        "threat_model": {"knowledge": sorted(granted),
                         "description": [KNOWLEDGE[k] for k in sorted(granted)]},
        "verdict": verdict,
        "attacks": entries,
        "settings": recorded,
        "flags": flags,
        "warnings": summary_warnings(caught) + [f"DegenerateResultWarning: {t}" for t in flags],
        "elapsed_seconds": None,
    }


def _configure(config: AuditConfig | None, data, model, outputs, settings: dict
               ) -> tuple[AuditConfig, Dataset | None, object, PrecomputedOutputs | str | None]:
    """The validated configuration, and the inputs that are objects rather than settings
    (a Dataset, a model object, PrecomputedOutputs); names and paths join the settings."""
    if data is not None and not isinstance(data, Dataset):
        settings["data"], data = data, None
    if isinstance(model, str | Recipe):
        settings["model"], model = model, None
    if outputs is not None and not isinstance(outputs, PrecomputedOutputs):
        settings["outputs"], outputs = outputs, None
    cfg = AuditConfig.from_settings(config, **settings)
    for given, key, section in ((data, "source", cfg.data), (model, "recipe", cfg.target),
                                (outputs, "outputs", cfg.target)):
        if given is not None and key in section.model_fields_set:
            raise ConfigError(f"{key} is given twice: as an object and in the config.")
    return (cfg, data, cfg.target.recipe if model is None else model,
            cfg.target.outputs if outputs is None else outputs)


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


def _attack_options(lira_variance: str, rmia_temperature: float | None,
                    quantile_method: str, seed: int) -> dict:
    """The keyword arguments each attack runs with (RMIA's temperature only when fixed:
    otherwise it is tuned on the references per target)."""
    rmia = {} if rmia_temperature is None else {"temperature": rmia_temperature}
    return {
        "lira-online": {"variance": lira_variance},
        "lira-offline": {"variance": lira_variance},
        "rmia-online": dict(rmia),
        "rmia-offline": dict(rmia),
        "shokri": {"seed": seed},
        "quantile": {"method": quantile_method, "seed": seed},
        "label-augment-learned": {"seed": seed},
    }


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
    if game.population is not None:  # RMIA's z, for re-scoring by other tools
        logits, membership, labels = game.population
        signals.update(population_logits=np.asarray(logits, dtype=np.float32),
                       population_membership=membership,
                       population_labels=labels.astype(np.int64))
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
