"""Writing a run into the registry: the inserts of one prepared run (:mod:`._prepare`), done
inside one write transaction (:meth:`miaudit.registry.database.Database.write`).

Data sets, records and models are inserted only when absent (``ON CONFLICT DO NOTHING``), so
that processes recording runs of the same data and models at once do not collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.engine import Connection

from miaudit.registry._prepare import RunRows
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


def _now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def insert_ignore(conn: Connection, dialect: str, table: Any, rows: Sequence[dict],
                  returning: Any = None) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING. With ``returning`` (one row): that column of
    the inserted row, None when the row existed."""
    if not rows:
        return None
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).on_conflict_do_nothing()
    if returning is not None:
        return conn.execute(statement.returning(returning), rows[0]).scalar()
    for chunk in _chunks(rows):
        conn.execute(statement, list(chunk))
    return None


def _insert_dataset(conn: Connection, dialect: str, rows: RunRows, now: datetime) -> None:
    """Insert the run's data set and those of its records not stored yet."""
    insert_ignore(conn, dialect, Dataset.__table__, [rows.dataset | {"created": now}])
    known = set(conn.scalars(select(Record.fingerprint).where(
        Record.dataset_fingerprint == rows.dataset["fingerprint"])))
    insert_ignore(conn, dialect, Record.__table__,
                  [r for r in rows.records if r["fingerprint"] not in known])


def _insert_models(conn: Connection, dialect: str, rows: RunRows, now: datetime
                   ) -> dict[str, int]:
    """Insert the run's new models with their training sets; the ID of each content hash."""
    model_ids: dict[str, int] = {}
    for m in sorted(rows.models, key=lambda m: m.content_hash):
        if m.content_hash in model_ids:
            continue
        created = insert_ignore(conn, dialect, Model.__table__, [
            m.fields | {"content_hash": m.content_hash, "created": now}],
            returning=Model.id)
        if created is None:  # registered before (by this or another process)
            model_ids[m.content_hash] = conn.scalar(
                select(Model.id).where(Model.content_hash == m.content_hash))
            continue
        model_ids[m.content_hash] = created
        insert_ignore(conn, dialect, ModelRecord.__table__, [
            {"model_id": created, "record_fingerprint": fp} for fp in m.members])
    return model_ids


def _insert_run_rows(conn: Connection, rows: RunRows, run_id: str,
                     model_ids: dict[str, int]) -> None:
    """Insert the run's models (with their roles), attacks and record risks."""
    roles: dict[int, dict] = {}
    for m in rows.models:  # a target that is also another target's reference
        mid = model_ids[m.content_hash]
        if mid not in roles or (m.role == "target" and roles[mid]["role"] != "target"):
            roles[mid] = {"run_id": run_id, "model_id": mid, "role": m.role,
                          "target_index": m.target_index}
    conn.execute(sa.insert(RunModel), list(roles.values()))
    if rows.attacks:
        conn.execute(sa.insert(RunAttack), [a | {"run_id": run_id} for a in rows.attacks])
    risks = {}
    for m in rows.models:
        for r in m.risks:
            risks[(model_ids[m.content_hash], r["record_fingerprint"])] = r | {
                "run_id": run_id, "model_id": model_ids[m.content_hash]}
    for chunk in _chunks(list(risks.values())):
        conn.execute(sa.insert(RecordRisk), list(chunk))


def insert_run(conn: Connection, dialect: str, rows: RunRows) -> str:
    """Insert a prepared run (in the caller's write transaction); returns its new run ID."""
    now = _now()
    _insert_dataset(conn, dialect, rows, now)
    model_ids = _insert_models(conn, dialect, rows, now)
    run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    conn.execute(sa.insert(Run), [rows.run | {"id": run_id, "created": now}])
    _insert_run_rows(conn, rows, run_id, model_ids)
    return run_id
