"""Record an audit in MLflow, next to the model it audited: :func:`log_audit`.

One MLflow run per audit, in the experiment ``miaudit`` unless told otherwise:

* metrics: ``auc``, ``auc_low``, ``auc_high`` and ``tpr_at_fpr_<FPR>`` (with ``_low`` and
  ``_high``, its interval) of the verdict's strongest attack; the same figures of every
  attack as ``attacks/<attack>/auc``, ``attacks/<attack>/tpr_at_fpr_<FPR>``, ... (a ``+``
  in an attack's name spelt ``plus``: ``attacks/min-kplusplus/auc``); and
  ``verdict_level``, the verdict as a number (0 none, 1 low, 2 moderate, 3 high). A
  figure that cannot be measured on the sample (null in summary.json) is not logged.
* params: ``data``, ``data_fingerprint``, ``model``, ``n_members``, ``n_non_members``,
  ``exposure``, ``attacks``, ``seed``, ``miaudit_version``.
* tags: ``miaudit.verdict`` (the level's name), ``miaudit.strongest_attack``,
  ``miaudit.model_uri`` (the audited model), ``miaudit.run_dir``, and the verdict's
  sentence as the run's description (``mlflow.note.content``).
* artifacts, under ``miaudit/``: ``summary.json`` and the reports (``report.html``,
  ``report.md``, ``exposures.json``, figures); the per-record files (``scores.parquet``,
  ``signals.npz``) stay in the run folder.

When the model is a registered version (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``),
that version gets the tags ``miaudit.verdict``, ``miaudit.audit_run_id``,
``miaudit.strongest_attack``, ``miaudit.auc`` and ``miaudit.exposure``, so that the privacy
result sits next to the model in the registry.

Install MLflow with ``pip install 'miaudit[mlflow]'``.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miaudit.audits.verdict import LEVEL_NAMES
from miaudit.errors import ConfigError
from miaudit.results.folder import RUN_FILES, SCORES_FILE, SIGNALS_FILE, load_run
from miaudit.targets.mlflow import error_line, require_mlflow, shown_uri

#: The experiment audits are logged to unless told otherwise.
DEFAULT_EXPERIMENT = "miaudit"
#: The run folder's files logged as artifacts (the per-record ones stay out).
LOGGED_FILES = tuple(sorted(RUN_FILES - {SCORES_FILE, SIGNALS_FILE}))
#: MLflow's longest param value.
_MAX_PARAM = 6000


@dataclass(frozen=True)
class MlflowRecord:
    """Where :func:`log_audit` put an audit.

    Attributes
    ----------
    run_id, experiment_id, tracking_uri : str
    model_version : (str, str) or None
        ``(name, version)`` of the registered model version that was tagged.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_version: tuple[str, str] | None


def audit_metrics(summary: dict) -> dict[str, float]:
    """The figures of ``summary`` (summary.json) as MLflow metrics (names in the module
    docstring); unmeasured figures are left out.

    >>> s = {"verdict": {"level": "low", "strongest_attack": "loss"},
    ...      "attacks": {"loss": {"auc": 0.6, "auc_ci": [0.55, 0.65],
    ...                           "tpr_at_fpr": {"0.01": None}}}}
    >>> audit_metrics(s)["auc"], audit_metrics(s)["verdict_level"]
    (0.6, 1.0)
    """
    metrics: dict[str, float] = {}
    verdict = summary.get("verdict") or {}
    if verdict.get("level") in LEVEL_NAMES:
        metrics["verdict_level"] = float(LEVEL_NAMES.index(verdict["level"]))
    attacks = summary.get("attacks") or {}
    for name, entry in attacks.items():
        metrics.update({f"attacks/{metric_name(name)}/{k}": v
                        for k, v in _figures(entry).items()})
    best = verdict.get("strongest_attack")
    if best in attacks:
        metrics.update(_figures(attacks[best]))
    return metrics


def metric_name(attack: str) -> str:
    """An attack's name as MLflow accepts it in a metric name (letters, digits, ``_-./ :``;
    ``+`` spelt ``plus``).

    >>> metric_name("min-k++"), metric_name("lira-online")
    ('min-kplusplus', 'lira-online')
    """
    return re.sub(r"[^\w\-. :/]", "_", attack.replace("+", "plus"))


def _figures(entry: dict) -> dict[str, float]:
    """``auc`` and ``tpr_at_fpr_<FPR>``, each with ``_low`` and ``_high``, of one attack."""
    out: dict[str, float] = {}

    def put(key: str, value: Any, interval: Any) -> None:
        if value is None:
            return
        out[key] = float(value)
        if isinstance(interval, list | tuple) and len(interval) == 2 and None not in interval:
            out[f"{key}_low"], out[f"{key}_high"] = float(interval[0]), float(interval[1])

    put("auc", entry.get("auc"), entry.get("auc_ci"))
    intervals = entry.get("tpr_at_fpr_ci") or {}
    for fpr, tpr in (entry.get("tpr_at_fpr") or {}).items():
        put(f"tpr_at_fpr_{fpr}", tpr, intervals.get(fpr))
    return out


def audit_params(summary: dict) -> dict[str, str]:
    """What was audited, and how, as MLflow params (names in the module docstring)."""
    data, target = summary.get("data") or {}, summary.get("target") or {}
    exposure = summary.get("exposure")
    params = {
        "data": data.get("name"), "data_fingerprint": data.get("fingerprint"),
        "model": target.get("model"), "n_members": target.get("n_members"),
        "n_non_members": target.get("n_non_members"),
        "exposure": ",".join(exposure) if isinstance(exposure, list) else exposure,
        "attacks": ",".join(summary.get("attacks") or {}),
        "seed": (summary.get("settings") or {}).get("seed"),
        "miaudit_version": summary.get("miaudit_version"),
    }
    return {k: str(v)[:_MAX_PARAM] for k, v in params.items() if v is not None}


def audit_tags(summary: dict, run_dir: Path, model_uri: str | None) -> dict[str, str]:
    """Tags of the audit's MLflow run (names in the module docstring)."""
    verdict = summary.get("verdict") or {}
    tags = {"miaudit.verdict": verdict.get("level"),
            "miaudit.strongest_attack": verdict.get("strongest_attack"),
            "miaudit.model_uri": None if model_uri is None else shown_uri(model_uri),
            "miaudit.run_dir": str(run_dir),
            "mlflow.note.content": verdict.get("sentence")}
    return {k: str(v) for k, v in tags.items() if v is not None}


def log_audit(
    run_dir: str | os.PathLike,
    *,
    model_uri: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
) -> MlflowRecord:
    """Log a saved audit (a run folder) as one MLflow run, and tag the model version.

    Parameters
    ----------
    run_dir : path
        A folder written by :meth:`miaudit.AuditResult.save` (``miaudit run --out``).
    model_uri : str, optional
        The audited model (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
        ``runs:/RUN_ID/PATH``, a folder, a URL): tagged on the run; a registered version is
        tagged too (checked before anything is logged).
    tracking_uri : str, optional
        Default ``MLFLOW_TRACKING_URI``, else MLflow's default.
    experiment : str, default "miaudit"
        Created when absent.
    run_name : str, optional
        Default ``miaudit <run folder name>``.

    Returns
    -------
    MlflowRecord

    Raises
    ------
    ConfigError
        Not a run folder, a model version the registry does not have, or a tracking store
        that refuses the run (the run is then marked FAILED).
    """
    mlflow = require_mlflow()
    entities = importlib.import_module("mlflow.entities")
    run = load_run(run_dir, scores="skip")
    where = shown_uri(tracking_uri or mlflow.get_tracking_uri())  # never a password
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # an unknown scheme, a store MLflow refuses, ...
        raise ConfigError(f"Cannot open the MLflow tracking store {where}: "
                          f"{error_line(exc)}") from None
    version = _model_version(client, model_uri, where)
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else client.create_experiment(experiment))
        created = client.create_run(experiment_id, run_name=run_name or
                                    f"miaudit {run.path.name}",
                                    tags=audit_tags(run.summary, run.path, model_uri))
    except Exception as exc:  # MlflowException, OSError, SQLAlchemy errors, ...
        raise ConfigError(f"Cannot create an MLflow run in experiment {experiment!r} at "
                          f"{where}: {error_line(exc)}") from None
    run_id = created.info.run_id
    try:
        metrics = [entities.Metric(k, v, created.info.start_time, 0)
                   for k, v in audit_metrics(run.summary).items()]
        params = [entities.Param(k, v) for k, v in audit_params(run.summary).items()]
        client.log_batch(run_id, metrics=metrics, params=params)
        for name in LOGGED_FILES:
            if (run.path / name).is_file():
                client.log_artifact(run_id, str(run.path / name), artifact_path="miaudit")
        if version is not None:
            for key, value in _version_tags(run.summary, run_id).items():
                client.set_model_version_tag(*version, key, value)
    except Exception as exc:
        client.set_terminated(run_id, "FAILED")
        raise ConfigError(f"Logging the audit to MLflow run {run_id} at {where} failed: "
                          f"{error_line(exc)}") from None
    client.set_terminated(run_id, "FINISHED")
    return MlflowRecord(run_id, experiment_id, where, version)


def _model_version(client, model_uri: str | None, where: str) -> tuple[str, str] | None:
    """``(name, version)`` of a registered model version named by ``models:/NAME/VERSION``
    or ``models:/NAME@ALIAS``; None for any other URI."""
    if not model_uri or not model_uri.startswith("models:/"):
        return None
    name, sep, rest = model_uri[len("models:/"):].strip("/").partition("/")
    try:
        if "@" in name and not sep:
            name, alias = name.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        if sep and rest.isdigit():
            return name, str(client.get_model_version(name, rest).version)
    except Exception as exc:  # MlflowException RESOURCE_DOES_NOT_EXIST, ...
        raise ConfigError(f"The model registry at {where} has no {model_uri}: "
                          f"{error_line(exc)}") from None
    return None  # a logged model (models:/m-...) or a stage: no version to tag


def _version_tags(summary: dict, run_id: str) -> dict[str, str]:
    verdict = summary.get("verdict") or {}
    best = verdict.get("strongest_attack")
    auc = ((summary.get("attacks") or {}).get(best) or {}).get("auc")
    exposure = summary.get("exposure")
    tags = {"miaudit.verdict": verdict.get("level"), "miaudit.audit_run_id": run_id,
            "miaudit.strongest_attack": best, "miaudit.auc": auc,
            "miaudit.exposure": ",".join(exposure) if isinstance(exposure, list) else exposure}
    return {k: str(v) for k, v in tags.items() if v is not None}

