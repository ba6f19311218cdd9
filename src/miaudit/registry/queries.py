"""Reading the registry: the run and model lists, one run's details, run-ID lookup and the
tracing of a record through models and runs. Each function takes a session of a read
transaction (:meth:`miaudit.registry.database.Database.read`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from miaudit.errors import ConfigError
from miaudit.registry.database import _chunks
from miaudit.registry.schema import (
    Dataset,
    Model,
    ModelRecord,
    Record,
    RecordRisk,
    Run,
    RunAttack,
    RunModel,
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _iso(value: datetime | None) -> str | None:
    """ISO time to the second (UTC when stored naive), None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite stores naive UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _same_run(a: dict, b: dict) -> bool:
    """Whether two summaries describe the same run: the same settings, data and attack
    figures (a folder written over by another run differs in at least one)."""
    def auc(summary: dict) -> dict:
        return {k: v.get("auc") for k, v in (summary.get("attacks") or {}).items()}

    def close(x, y) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)
        return x == y

    fa, fb = auc(a), auc(b)
    return (json.dumps(a.get("settings"), sort_keys=True, default=str)
            == json.dumps(b.get("settings"), sort_keys=True, default=str)
            and (a.get("data") or {}).get("fingerprint") == (b.get("data") or {}).get("fingerprint")
            and fa.keys() == fb.keys() and all(close(fa[k], fb[k]) for k in fa))


def _model_dict(m: Model) -> dict[str, Any]:
    """The columns of a model shown by the readers."""
    return {"id": m.id, "content_hash": m.content_hash,
            "dataset_fingerprint": m.dataset_fingerprint, "name": m.name,
            "recipe": m.recipe, "seed": m.seed, "description": m.description,
            "n_members": m.n_members, "created": _iso(m.created)}


def _targets(conn: Session, run_ids: list[str]) -> dict[str, str]:
    """The first target model's description (else name) of each run."""
    out: dict[str, str] = {}
    for chunk in _chunks(run_ids, 500):
        q = (select(RunModel.run_id, Model.description, Model.name)
             .join(Model, Model.id == RunModel.model_id)
             .where(RunModel.run_id.in_(chunk), RunModel.role == "target")
             .order_by(RunModel.target_index))
        for run_id, description, name in conn.execute(q):
            out.setdefault(run_id, description or name or "")
    return out


def runs(conn: Session, limit: int | None) -> list[dict]:
    """The newest runs first, with their headline figures (see :meth:`Registry.runs`)."""
    query = (select(Run.id, Run.created, Run.run_dir, Run.exposure, Run.best_auc,
                    Run.best_tpr_at_0_1, Run.best_tpr_attack, Run.max_epsilon_lb,
                    Run.dataset_fingerprint, Dataset.name)
             .outerjoin(Dataset, Dataset.fingerprint == Run.dataset_fingerprint)
             .order_by(Run.created.desc(), Run.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    targets = _targets(conn, [r.id for r in rows])
    return [{"id": r.id, "created": _iso(r.created), "data": r.name,
             "dataset_fingerprint": r.dataset_fingerprint,
             "model": targets.get(r.id), "exposure": r.exposure, "best_auc": r.best_auc,
             "best_tpr_at_0_1": r.best_tpr_at_0_1, "best_tpr_attack": r.best_tpr_attack,
             "max_epsilon_lb": r.max_epsilon_lb, "run_dir": r.run_dir} for r in rows]


def models(conn: Session) -> list[dict]:
    """Every model with its data set and the runs that used it (see :meth:`Registry.models`)."""
    rows = conn.execute(
        select(Model, Dataset.name)
        .join(Dataset, Dataset.fingerprint == Model.dataset_fingerprint)
        .order_by(Model.id)).all()
    uses: dict[int, dict[str, list[str]]] = {}
    for model_id, run_id, role in conn.execute(
            select(RunModel.model_id, RunModel.run_id, RunModel.role)
            .order_by(RunModel.run_id)):
        uses.setdefault(model_id, {"target": [], "reference": []}).setdefault(
            role, []).append(run_id)
    out = []
    for m, data in rows:
        use = uses.get(m.id, {})
        out.append(_model_dict(m) | {"data": data, "runs": use.get("target", []),
                                     "reference_in": use.get("reference", [])})
    return out


def resolve(conn: Session, key: str) -> str:
    """The full ID of the run with ID or unique prefix ``key`` (not empty); ConfigError
    when none or several match."""
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if conn.scalar(select(Run.id).where(Run.id == key)) is not None:
        return key
    found = list(conn.scalars(select(Run.id).where(
        Run.id.like(f"{escaped}%", escape="\\")).order_by(Run.id).limit(6)))
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ConfigError(f"Run ID prefix {key!r} is ambiguous: it matches {shown}; "
                          f"give more characters.")
    every = list(conn.scalars(select(Run.id).order_by(Run.created.desc()).limit(5000)))
    close = difflib.get_close_matches(key, every, n=3, cutoff=0.6)
    hint = (f" Did you mean {' or '.join(close)}?" if close
            else " List the runs with 'miaudit runs'.")
    raise ConfigError(f"Unknown run ID {key!r} in the registry.{hint}")


def stored_run_dir(conn: Session, full: str) -> tuple[str | None, dict | None]:
    """The folder and summary stored for run ``full``."""
    path, summary = conn.execute(select(Run.run_dir, Run.summary).where(Run.id == full)).one()
    return path, summary


def check_run_dir(full: str, path: str | None, summary: dict | None) -> Path:
    """The folder of run ``full``, unless it was not stored or now holds another run."""
    if not path:
        raise ConfigError(f"Run {full} was recorded without a run folder.")
    saved = Path(path) / "summary.json"
    try:
        current = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None  # a moved or damaged folder: the caller's error says so
    if current is not None and summary is not None and not _same_run(current, summary):
        raise ConfigError(
            f"Run {full} was recorded from {path}, but that folder now holds another "
            "run (written over with --overwrite?); give the folder itself, or re-record "
            f"it with 'miaudit registry record {path}'.")
    return Path(path)


def _risk(conn: Session, run: Run) -> dict[str, Any]:
    """The record-risk summary of a run: counts and the 10 most exposed members."""
    full = run.id
    member = (RecordRisk.run_id == full) & RecordRisk.is_member
    counts = conn.execute(select(
        func.count(),
        func.count().filter(RecordRisk.is_member),
        func.count().filter(member & (RecordRisk.risk >= 0.99)),
        func.count().filter(member & (RecordRisk.risk >= 0.999)),
    ).where(RecordRisk.run_id == full)).one()
    top = conn.execute(
        select(RecordRisk.model_id, RecordRisk.record_fingerprint, RecordRisk.risk,
               Record.record_id)
        .outerjoin(Record, (Record.fingerprint == RecordRisk.record_fingerprint)
                   & (Record.dataset_fingerprint == run.dataset_fingerprint))
        .where(member, RecordRisk.risk.is_not(None))
        .order_by(RecordRisk.risk.desc(), RecordRisk.record_fingerprint)
        .limit(10)).all()
    return {"attack": run.risk_attack, "n_records": counts[0],
            "n_members": counts[1], "members_at_risk_0_99": counts[2],
            "members_at_risk_0_999": counts[3],
            "top_members": [{"model_id": r.model_id, "record_id": r.record_id,
                             "fingerprint": r.record_fingerprint, "risk": r.risk}
                            for r in top]}


def show(conn: Session, full: str) -> dict:
    """Everything about run ``full`` (a full ID; see :meth:`Registry.show`)."""
    run = conn.scalar(select(Run).where(Run.id == full))
    assert run is not None
    dataset = conn.scalar(select(Dataset).where(
        Dataset.fingerprint == run.dataset_fingerprint))
    models = conn.execute(
        select(Model, RunModel.role, RunModel.target_index)
        .join(RunModel, RunModel.model_id == Model.id)
        .where(RunModel.run_id == full)
        .order_by(RunModel.role.desc(), RunModel.target_index, Model.id)).all()
    attacks = conn.scalars(select(RunAttack).where(RunAttack.run_id == full)
                           .order_by(RunAttack.attack)).all()
    risk = _risk(conn, run)
    return {
        "id": run.id, "created": _iso(run.created), "run_dir": run.run_dir,
        "miaudit_version": run.miaudit_version, "exposure": run.exposure,
        "settings": run.settings, "spec": run.spec, "summary": run.summary,
        "headline": {"best_auc": run.best_auc, "best_tpr_at_0_1": run.best_tpr_at_0_1,
                     "best_tpr_attack": run.best_tpr_attack,
                     "max_epsilon_lb": run.max_epsilon_lb},
        "dataset": None if dataset is None else {
            "fingerprint": dataset.fingerprint, "name": dataset.name,
            "source": dataset.source, "n_records": dataset.n_records},
        "models": [_model_dict(m) | {"role": role, "target_index": t}
                   for m, role, t in models],
        "attacks": [{c.key: getattr(a, c.key) for c in RunAttack.__table__.columns
                     if c.key != "run_id"} for a in attacks],
        "risk": risk,
    }


def _record_ids(conn: Session, fp: str) -> list[str]:
    """``data set:ID`` of every stored record with fingerprint ``fp``."""
    return [f"{name or ds[:12]}:{rid}" for name, ds, rid in conn.execute(
        select(Dataset.name, Record.dataset_fingerprint, Record.record_id)
        .join(Dataset, Dataset.fingerprint == Record.dataset_fingerprint)
        .where(Record.fingerprint == fp).order_by(Dataset.name))]


def _model_runs(conn: Session, m: Model, fp: str) -> list[dict]:
    """The runs auditing or using model ``m``, with the risk of record ``fp`` in each."""
    rows = conn.execute(
        select(Run.id, Run.created, Run.exposure, Run.risk_attack,
               RunModel.role, RecordRisk.risk)
        .join(RunModel, RunModel.run_id == Run.id)
        .outerjoin(RecordRisk, (RecordRisk.run_id == Run.id)
                   & (RecordRisk.model_id == m.id)
                   & (RecordRisk.record_fingerprint == fp))
        .where(RunModel.model_id == m.id)
        .order_by(Run.created, Run.id)).all()
    return [{"run_id": r.id, "created": _iso(r.created), "role": r.role,
             "exposure": r.exposure, "attack": r.risk_attack, "risk": r.risk} for r in rows]


def trace(conn: Session, key: str) -> list[dict]:
    """Every model trained on record ``key`` (fingerprint or ID), with the runs of each
    (see :meth:`Registry.trace`)."""
    if _HEX64.match(key.lower()):
        fingerprints = [key.lower()]
    else:
        fingerprints = sorted(set(conn.scalars(
            select(Record.fingerprint).where(Record.record_id == key))))
    out = []
    for fp in fingerprints:
        ids = _record_ids(conn, fp)
        models = conn.execute(
            select(Model, Dataset.name)
            .join(ModelRecord, ModelRecord.model_id == Model.id)
            .join(Dataset, Dataset.fingerprint == Model.dataset_fingerprint)
            .where(ModelRecord.record_fingerprint == fp).order_by(Model.id)).all()
        for m, data in models:
            out.append({
                "record_fingerprint": fp, "record_ids": ids,
                "model": _model_dict(m) | {"data": data},
                "runs": _model_runs(conn, m, fp),
            })
    return out


def known_record(conn: Session, key: str) -> list[str]:
    """The ``data set:ID`` of every record with fingerprint or ID ``key`` (at most 20)."""
    cond = (Record.fingerprint == key.lower()) if _HEX64.match(key.lower()) \
        else (Record.record_id == key)
    return [f"{name or ds[:12]}:{rid}" for name, ds, rid in conn.execute(
        select(Dataset.name, Record.dataset_fingerprint, Record.record_id)
        .join(Dataset, Dataset.fingerprint == Record.dataset_fingerprint)
        .where(cond).order_by(Dataset.name, Record.record_id).limit(20))]
