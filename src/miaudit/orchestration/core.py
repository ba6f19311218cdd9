"""The one public entry point: :func:`audit`.

It validates everything at the boundary, plays the privacy game (or takes the user's
membership), queries the target, applies the exposure, runs the attacks and measures
them. Attacks and metrics below this layer receive clean arrays.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit import __version__
from miaudit.attacks import AttackInput, Calibration, resolve_attacks
from miaudit.data import Dataset, load_dataset
from miaudit.errors import (
    ConfigError,
    DataWarning,
    MembershipError,
    OutputError,
    UndefinedMetricWarning,
)
from miaudit.game import split_members
from miaudit.metrics import evaluate
from miaudit.models import (
    ModelOutputs,
    PrecomputedOutputs,
    Recipe,
    TorchTarget,
    as_target,
    load_outputs,
    make_recipe,
    train,
)
from miaudit.models.outputs import check_outputs
from miaudit.orchestration.result import AuditResult
from miaudit.signals import observe, parse_exposure

DEFAULT_FPRS = (0.01, 0.001, 0.0001)


@dataclass
class _Game:
    """Audited records and what is known about them (internal)."""

    ids: np.ndarray
    fingerprints: np.ndarray
    labels: np.ndarray
    is_member: np.ndarray
    outputs: ModelOutputs
    data_info: dict
    target_info: dict


def audit(
    *,
    data: Dataset | str | Path | None = None,
    label_column: str | None = None,
    model: str | Recipe | object = "mlp",
    model_params: dict | Sequence[str] | None = None,
    members: np.ndarray | Sequence[str] | None = None,
    outputs: PrecomputedOutputs | str | Path | None = None,
    exposure: str = "logits",
    attacks: Sequence[str] | None = None,
    seed: int = 0,
    fprs: Sequence[float] = DEFAULT_FPRS,
    alpha: float = 0.05,
    prior: float = 0.5,
    delta: float = 1e-5,
    calibration_folds: int = 5,
    device: str = "cpu",
    progress: bool = False,
) -> AuditResult:
    """Audit a model for membership-inference leakage with the reference-free attacks.

    Three ways to name the target:

    * ``model="mlp"`` (or ``"logistic"``, or a :class:`~miaudit.models.Recipe`): train it on
      a seeded random half of ``data`` (the members); the other half are non-members.
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
    model_params : dict or list of "key=value", optional
        Recipe overrides (``{"epochs": 20}``).
    exposure : str, default "logits"
        What the attacker sees: ``logits``, ``probabilities``, ``top-k:K``, ``rounded:D``,
        ``label`` or ``loss``.
    attacks : list of str, optional
        Attack names; default: every attack the exposure allows.
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
        Cross-fitting folds for attacks that fit thresholds on records of known
        membership (``class-loss``, ``class-mentr``).
    device : str, default "cpu"
        Torch device for training and querying.
    progress : bool, default False
        Show Rich progress bars on stderr.

    Returns
    -------
    AuditResult
        ``.summary()`` (the ``summary.json`` content), ``.scores`` (one row per record),
        ``.metrics`` and ``.save(dir)``.
    """
    started = time.perf_counter()
    exp = parse_exposure(exposure)
    chosen = resolve_attacks(None if attacks is None else list(attacks), exp)
    _check_settings(fprs, alpha, prior, delta, calibration_folds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _progress(progress) as bar:
            game = _play(data, label_column, model, model_params, members, outputs,
                         seed, device, bar)
            obs = observe(game.outputs, game.labels, exp)
            calibration = Calibration(game.is_member,
                                      _folds(game.is_member, calibration_folds, seed))
            inputs = AttackInput(obs, calibration)
            scores: dict[str, np.ndarray] = {}
            metrics = {}
            task = bar.add_task("attacks", total=len(chosen)) if bar else None
            for attack in chosen:
                scores[attack.name] = _finite(attack.score(inputs), attack.name)
                metrics[attack.name] = evaluate(
                    scores[attack.name], game.is_member, fprs=tuple(fprs), alpha=alpha,
                    prior=prior, delta=delta, seed=seed,
                )
                if bar:
                    bar.advance(task)
    messages = _unique_messages(caught)
    for w in caught:  # let callers see the warnings too
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    table = pd.DataFrame({
        "record_id": game.ids.astype(str),
        "fingerprint": game.fingerprints.astype(str),
        "is_member": game.is_member.astype(bool),
        "label": game.labels.astype(np.int64),
        **scores,
    })
    summary = {
        "miaudit_version": __version__,
        "data": game.data_info,
        "target": game.target_info,
        "exposure": str(exp),
        "attacks": {
            a.name: {**metrics[a.name].to_dict(), "needs": sorted(a.needs),
                     "description": a.description, "reference": a.reference,
                     **({"calibration": f"cross-fitted on {calibration_folds} folds of "
                        "records with known membership"} if a.uses_calibration else {})}
            for a in chosen
        },
        "settings": {
            "seed": seed, "alpha": alpha, "prior": prior, "delta": delta,
            "fprs": [float(f) for f in fprs], "calibration_folds": calibration_folds,
            "device": device,
        },
        "warnings": messages,
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }
    return AuditResult(summary=summary, scores=table, metrics=metrics)


def _check_settings(fprs, alpha, prior, delta, folds) -> None:
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


def _play(data, label_column, model, model_params, members, outputs, seed, device, bar) -> _Game:
    if outputs is not None:
        if data is not None:
            raise ConfigError("Give either data (to query a model) or outputs "
                              "(precomputed), not both.")
        return _game_from_outputs(outputs)
    if data is None:
        raise ConfigError("No data: give a data set (a built-in name or a file path).")
    ds = data if isinstance(data, Dataset) else load_dataset(data, label_column=label_column)
    if isinstance(model, str | Recipe):
        if members is not None:
            raise ConfigError("'members' is for auditing an existing model; a recipe is "
                              "trained on a seeded random half of the data.")
        recipe = model if isinstance(model, Recipe) else make_recipe(model, model_params)
        return _game_from_recipe(ds, recipe, seed, device, bar)
    if members is None:
        raise ConfigError("Auditing an existing model needs 'members': a boolean mask or "
                          "the IDs of the records it was trained on.")
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


def _game_from_recipe(ds: Dataset, recipe: Recipe, seed: int, device: str, bar) -> _Game:
    dup = ds.duplicate_mask()
    n_dup = int(dup.sum())
    if n_dup:
        warnings.warn(
            f"{n_dup} duplicate record(s) (same fingerprint as an earlier record) were left "
            "out of the game, so no record can be both member and non-member.",
            DataWarning, stacklevel=2,
        )
        ds = ds.subset(np.flatnonzero(~dup))
    mem_idx, non_idx = split_members(ds.n_records, seed=seed)
    if ds.n_classes < 2 or len(np.unique(ds.y[mem_idx])) < 2:
        raise MembershipError("The members hold a single class; a classifier cannot be "
                              "trained. Use a data set with at least two classes.")
    task = bar.add_task(f"training {recipe.name}", total=recipe.epochs) if bar else None
    trained = train(
        recipe, ds.X[mem_idx], ds.y[mem_idx], n_classes=ds.n_classes, seed=seed,
        device=device, on_epoch=(lambda e, _loss: bar.update(task, completed=e)) if bar else None,
    )
    target = TorchTarget(trained.module, device=device)
    idx = np.concatenate([mem_idx, non_idx])
    is_member = np.zeros(len(idx), dtype=bool)
    is_member[: len(mem_idx)] = True
    out = check_outputs(target.outputs(ds.X[idx]).values, "logits", n_records=len(idx),
                        n_classes=ds.n_classes, source=f"{recipe.name} model")
    target_info = {
        "model": recipe.name,
        "recipe": recipe.to_dict(),
        "description": recipe.describe(),
        "seed": seed,
        **_accuracies(out, ds.y[idx], is_member),
    }
    return _Game(ds.ids[idx], ds.fingerprints[idx], ds.y[idx], is_member, out,
                 _data_info(ds, n_duplicates_left_out=n_dup), target_info)


def _member_mask(ds: Dataset, members) -> np.ndarray:
    arr = np.asarray(members)
    if arr.dtype == bool:
        if arr.shape != (ds.n_records,):
            raise MembershipError(f"The members mask has shape {arr.shape}; expected "
                                  f"({ds.n_records},), one entry per record.")
        return arr
    wanted = arr.astype(str)
    known = set(ds.ids.astype(str).tolist())
    unknown = [i for i in wanted.tolist() if i not in known]
    if unknown:
        raise MembershipError(f"{len(unknown)} member ID(s) are not in the data "
                              f"(first: {unknown[0]!r}).")
    return np.isin(ds.ids.astype(str), wanted)


def _game_from_model(ds: Dataset, model: object, members) -> _Game:
    is_member = _member_mask(ds, members)
    _check_sides(is_member, ds.fingerprints)
    target = as_target(model, classes=ds.classes)
    raw = target.outputs(ds.X)
    if raw.n_classes < ds.n_classes:
        raise OutputError(
            f"The data has labels 0..{ds.n_classes - 1} but the model returns only "
            f"{raw.n_classes} classes: labels outside the model's classes."
        )
    out = check_outputs(raw.values, raw.kind, n_records=ds.n_records, n_classes=ds.n_classes,
                        source=type(model).__name__)
    target_info = {"model": type(model).__name__, "seed": None,
                   **_accuracies(out, ds.y, is_member)}
    return _Game(ds.ids, ds.fingerprints, ds.y, is_member, out, _data_info(ds), target_info)


def _game_from_outputs(outputs) -> _Game:
    pre = outputs if isinstance(outputs, PrecomputedOutputs) else load_outputs(outputs)
    fps = pre.fingerprints
    if fps is None:
        fps = np.array([f"id:{i}" for i in pre.ids.astype(str)])
    elif len(fps) != len(pre.labels):
        raise MembershipError(f"{len(fps)} fingerprints for {len(pre.labels)} records.")
    _check_sides(pre.is_member, pre.fingerprints)
    n_classes = pre.outputs.n_classes
    if len(np.unique(pre.labels)) < 2:
        raise MembershipError("The records hold a single class; nothing to audit.")
    name = Path(pre.source).name
    data_info = {"name": name, "n_records": len(pre.labels), "n_classes": n_classes,
                 "n_features": None, "fingerprint": None, "source": pre.source,
                 "fingerprint_basis": "file" if pre.fingerprints is not None else "record IDs"}
    target_info = {"model": "precomputed outputs", "seed": None,
                   **_accuracies(pre.outputs, pre.labels, pre.is_member)}
    return _Game(pre.ids, fps, pre.labels, pre.is_member, pre.outputs, data_info, target_info)


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


def _accuracies(out: ModelOutputs, labels: np.ndarray, is_member: np.ndarray) -> dict:
    correct = np.argmax(out.values, axis=1) == labels
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
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        yield bar
