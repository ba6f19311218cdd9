"""Turn a run's summary and score table into the rows the registry stores (pure, no database).

Everything that can be computed before a transaction is computed here, so that writers hold
their locks only for the inserts.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.errors import DataError

#: FPR levels of the stored figures: (summary key, column suffix).
FPR_1, FPR_0_1 = "0.01", "0.001"
_REQUIRED_COLUMNS = ("exposure", "target", "record_id", "fingerprint", "is_member")


@dataclass
class ModelRows:
    """A model of a run: its identity, training set and, for targets, record risks."""

    content_hash: str
    fields: dict[str, Any]
    members: list[str]
    role: str
    target_index: int | None
    risks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunRows:
    """Everything :meth:`Registry.record_run` inserts, but the run ID."""

    dataset: dict[str, Any]
    records: list[dict[str, str]]
    models: list[ModelRows]
    run: dict[str, Any]
    attacks: list[dict[str, Any]]


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that every backend stores as JSON: NaN and inf become None, numpy
    scalars and arrays plain Python, paths and other objects strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _text(value: Any, limit: int) -> str | None:
    """``str(value)`` cut to the column's width (None stays None)."""
    return None if value is None else str(value)[:limit]


def _ci(entry: dict, key: str, fpr: str | None = None) -> tuple[float | None, float | None]:
    ci = entry.get(key)
    if fpr is not None:
        ci = (ci or {}).get(fpr)
    if not ci or len(ci) != 2:
        return None, None
    return _float(ci[0]), _float(ci[1])


def attack_row(name: str, entry: dict) -> dict[str, Any]:
    """The ``run_attacks`` columns of one attack's summary entry."""
    tpr = entry.get("tpr_at_fpr") or {}
    auc_lo, auc_hi = _ci(entry, "auc_ci")
    lo1, hi1 = _ci(entry, "tpr_at_fpr_ci", FPR_1)
    lo01, hi01 = _ci(entry, "tpr_at_fpr_ci", FPR_0_1)
    return {"attack": name, "auc": _float(entry.get("auc")), "auc_lo": auc_lo,
            "auc_hi": auc_hi, "tpr_at_1": _float(tpr.get(FPR_1)), "tpr_at_1_lo": lo1,
            "tpr_at_1_hi": hi1, "tpr_at_0_1": _float(tpr.get(FPR_0_1)), "tpr_at_0_1_lo": lo01,
            "tpr_at_0_1_hi": hi01, "epsilon_lb": _float(entry.get("epsilon_lower_bound"))}


def strongest(attacks: list[dict[str, Any]]) -> str | None:
    """The attack with the highest TPR at 0.1% FPR, ties (and none measurable) to the
    higher AUC."""
    if not attacks:
        return None

    def key(row: dict) -> tuple[float, float]:
        tpr, auc = row["tpr_at_0_1"], row["auc"]
        return (-1.0 if tpr is None else tpr, -1.0 if auc is None else auc)

    return max(attacks, key=key)["attack"]


def model_hash(dataset: str, recipe: Any, seed: int | None, members: list[str]) -> str:
    """SHA-256 identifying a model by data set, recipe, seed and (sorted) training set."""
    h = hashlib.sha256(b"miaudit-model-v1\x00")
    head = {"dataset": dataset, "recipe": recipe, "seed": seed}
    h.update(json.dumps(head, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for fp in sorted(members):
        h.update(b"\x00" + fp.encode("ascii"))
    return h.hexdigest()


def _check_inputs(summary: Any, scores: Any) -> None:
    if not isinstance(summary, dict) or not isinstance(summary.get("data"), dict) or \
            not summary["data"].get("fingerprint"):
        raise DataError("The summary has no data fingerprint (summary['data']['fingerprint']);"
                        " pass the summary.json dict of a miaudit run.")
    if not isinstance(scores, pd.DataFrame):
        raise DataError(f"scores must be a pandas DataFrame (scores.parquet of the run), got "
                        f"{type(scores).__name__}.")
    missing = [c for c in _REQUIRED_COLUMNS if c not in scores.columns]
    if missing:
        raise DataError(f"The score table lacks the column(s) {', '.join(missing)}; pass the "
                        f"scores.parquet table of a miaudit run.")
    if len(scores) == 0:
        raise DataError("The score table is empty; pass the scores.parquet table of a run.")


def _reference_models(run_dir: Path | None, summary: dict, fp_of_id: dict[str, str],
                      n_targets: int, head: dict[str, Any]) -> list[ModelRows]:
    """The run's other models (references) from ``signals.npz``, when their training sets
    are all among the audited records (online references); none otherwise."""
    settings = summary.get("settings") or {}
    if run_dir is None or not settings.get("references") or \
            settings.get("reference_mode", "online") != "online":
        return []
    path = Path(run_dir) / "signals.npz"
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as npz:
            membership = np.asarray(npz["membership"], dtype=bool)
            ids = np.asarray(npz["record_ids"]).astype(str)
    except (OSError, KeyError, ValueError):
        return []
    if membership.ndim != 2 or membership.shape[1] != len(ids) or \
            any(i not in fp_of_id for i in ids.tolist()):
        return []
    fps = np.array([fp_of_id[i] for i in ids.tolist()], dtype=object)
    out = []
    for m in range(n_targets, membership.shape[0]):
        members = sorted(fps[membership[m]].tolist())
        out.append(ModelRows(
            content_hash=model_hash(head["dataset_fingerprint"], head["identity"],
                                    head["seed"], members),
            fields={k: v for k, v in head.items() if k != "identity"} | {
                "n_members": len(members)},
            members=members, role="reference", target_index=None))
    return out


def _first_exposure(scores: pd.DataFrame, exposure: Any) -> pd.DataFrame:
    """The score rows of the run's (first) exposure, else of the table's first exposure."""
    first = scores[scores["exposure"].astype(str) == str(exposure)] if exposure is not None \
        else scores
    if len(first) == 0:
        first = scores[scores["exposure"] == scores["exposure"].iloc[0]]
    return first


def _record_rows(scores: pd.DataFrame, dataset_fp: str) -> list[dict[str, str]]:
    """One ``records`` row per distinct record fingerprint, sorted by fingerprint."""
    unique = scores.drop_duplicates("fingerprint")
    return sorted(({"dataset_fingerprint": dataset_fp, "fingerprint": str(fp),
                    "record_id": str(rid)[:500]}
                   for fp, rid in zip(unique["fingerprint"], unique["record_id"],
                                      strict=True)),
                  key=lambda r: r["fingerprint"])


def _model_head(target: dict, dataset_fp: str) -> dict[str, Any]:
    """The ``models`` columns shared by the run's models, and the ``identity`` they hash."""
    recipe = jsonable(target.get("recipe"))
    name = target.get("model")
    seed = target.get("seed")
    seed = int(seed) if isinstance(seed, int | np.integer) else None
    return {"dataset_fingerprint": dataset_fp, "name": _text(name, 200),
            "recipe": recipe, "seed": seed,
            "description": _text(target.get("description"), 2000),
            # a model not built from a recipe is known by its outputs (and endpoint)
            "identity": recipe if recipe is not None else {
                "model": name, "endpoint": target.get("endpoint"),
                "outputs": target.get("outputs_sha256")}}


def _record_risks(values: np.ndarray, member: np.ndarray, fps: np.ndarray
                  ) -> list[dict[str, Any]]:
    """The ``record_risk`` rows of one target, once per record (its first score)."""
    from miaudit.audits.exposures import record_risk

    risk = record_risk(values, member)
    risk[np.isnan(values)] = np.nan
    out = []
    seen: set[str] = set()
    for fp, m, r in zip(fps.tolist(), member.tolist(), risk.tolist(), strict=True):
        if fp not in seen:
            seen.add(fp)
            out.append({"record_fingerprint": fp, "is_member": bool(m), "risk": _float(r)})
    return out


def _target_models(first: pd.DataFrame, head: dict[str, Any], risk_attack: str | None
                   ) -> list[ModelRows]:
    """The run's target models, with their record risks under ``risk_attack``."""
    models = []
    for t, rows in first.groupby("target", sort=True):
        member = rows["is_member"].to_numpy(dtype=bool)
        fps = rows["fingerprint"].astype(str).to_numpy(dtype=object)
        members = sorted(set(fps[member].tolist()))
        model = ModelRows(
            content_hash=model_hash(head["dataset_fingerprint"], head["identity"],
                                    head["seed"], members),
            fields={k: v for k, v in head.items() if k != "identity"} | {
                "n_members": len(members)},
            members=members, role="target", target_index=int(t))
        if risk_attack is not None:
            model.risks.extend(_record_risks(rows[risk_attack].to_numpy(dtype=np.float64),
                                             member, fps))
        models.append(model)
    return models


def _run_row(summary: dict, run_dir: Path | None, spec: dict | None, dataset_fp: str,
             attacks: list[dict[str, Any]], risk_attack: str | None) -> dict[str, Any]:
    """The ``runs`` row, but its ID and time: settings, summary and headline figures."""
    exposure = summary.get("exposure")
    best_tpr = max((a for a in attacks if a["tpr_at_0_1"] is not None),
                   key=lambda a: a["tpr_at_0_1"], default=None)
    aucs = [a["auc"] for a in attacks if a["auc"] is not None]
    eps = [a["epsilon_lb"] for a in attacks if a["epsilon_lb"] is not None]
    return {
        "run_dir": None if run_dir is None else str(Path(run_dir).expanduser().resolve()),
        "miaudit_version": summary.get("miaudit_version"),
        "dataset_fingerprint": dataset_fp,
        "exposure": None if exposure is None else str(exposure),
        "settings": jsonable(summary.get("settings")),
        "spec": jsonable(spec if spec is not None else summary.get("spec")),
        "summary": jsonable(summary),
        "best_auc": max(aucs, default=None),
        "best_tpr_at_0_1": None if best_tpr is None else best_tpr["tpr_at_0_1"],
        "best_tpr_attack": None if best_tpr is None else best_tpr["attack"],
        "max_epsilon_lb": max(eps, default=None),
        "risk_attack": risk_attack,
    }


def _dataset_row(data: dict, dataset_fp: str, n_stored: int) -> dict[str, Any]:
    """The ``datasets`` row (``n_records`` from the summary, else the records stored)."""
    n_records = data.get("n_records")
    return {"fingerprint": dataset_fp, "name": _text(data.get("name"), 500),
            "source": _text(data.get("source"), 2000),
            "n_records": int(n_records) if isinstance(n_records, int | np.integer)
            else n_stored}


def prepare(summary: dict, scores: pd.DataFrame, run_dir: Path | None,
            spec: dict | None) -> RunRows:
    """The rows of one run (see :meth:`miaudit.registry.Registry.record_run`)."""
    _check_inputs(summary, scores)
    data = summary["data"]
    dataset_fp = str(data["fingerprint"])
    first = _first_exposure(scores, summary.get("exposure"))
    records = _record_rows(scores, dataset_fp)
    fp_of_id = {r["record_id"]: r["fingerprint"] for r in records}

    attacks = [attack_row(name, entry) for name, entry in (summary.get("attacks") or {}).items()
               if isinstance(entry, dict)]
    risk_attack = strongest(attacks)
    if risk_attack is not None and risk_attack not in first.columns:
        risk_attack = None

    head = _model_head(summary.get("target") or {}, dataset_fp)
    models = _target_models(first, head, risk_attack)
    models += _reference_models(run_dir, summary, fp_of_id, len(models), head)
    return RunRows(dataset=_dataset_row(data, dataset_fp, len(records)), records=records,
                   models=models, run=_run_row(summary, run_dir, spec, dataset_fp, attacks,
                                               risk_attack),
                   attacks=attacks)
