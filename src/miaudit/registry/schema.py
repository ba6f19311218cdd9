"""The registry's tables (SQLAlchemy 2 ORM), created and upgraded by the Alembic migrations
in ``miaudit/registry/migrations``.

A change here needs a new migration: the schema is never created from this module directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "VERSION_TABLE",
    "Base",
    "Dataset",
    "Model",
    "ModelRecord",
    "Record",
    "RecordRisk",
    "Run",
    "RunAttack",
    "RunModel",
]

#: Alembic's version table (named so that it cannot clash with another application's).
VERSION_TABLE = "miaudit_alembic_version"

#: Hex SHA-256 (data sets, records, model contents).
HEX64 = String(64)
#: JSON, stored as JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""

    metadata = MetaData(naming_convention=NAMING)


class Dataset(Base):
    """A data set, identified by its content fingerprint."""

    __tablename__ = "datasets"

    fingerprint: Mapped[str] = mapped_column(HEX64, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str | None] = mapped_column(String(2000))
    n_records: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Record(Base):
    """A record of a data set: its ID there and its content fingerprint."""

    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_fingerprint", "fingerprint"),
        Index("ix_records_record_id", "record_id"),
    )

    # the primary key makes (data set, record fingerprint) unique
    dataset_fingerprint: Mapped[str] = mapped_column(
        HEX64, ForeignKey("datasets.fingerprint", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(HEX64, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(500))


class Model(Base):
    """A trained model: data set, recipe, seed and training set (``content_hash`` over all
    four identifies it)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(HEX64, unique=True)
    dataset_fingerprint: Mapped[str] = mapped_column(
        HEX64, ForeignKey("datasets.fingerprint", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    recipe: Mapped[Any | None] = mapped_column(JSONType)
    seed: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(2000))
    n_members: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelRecord(Base):
    """Training-set membership: the model was trained on the record."""

    __tablename__ = "model_records"
    __table_args__ = (Index("ix_model_records_record_fingerprint", "record_fingerprint"),)

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    record_fingerprint: Mapped[str] = mapped_column(HEX64, primary_key=True)


class Run(Base):
    """An audit run with its settings, summary and headline figures."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    run_dir: Mapped[str | None] = mapped_column(String(4000))
    miaudit_version: Mapped[str | None] = mapped_column(String(50))
    dataset_fingerprint: Mapped[str | None] = mapped_column(
        HEX64, ForeignKey("datasets.fingerprint", ondelete="SET NULL"), index=True)
    exposure: Mapped[str | None] = mapped_column(String(200))
    settings: Mapped[Any | None] = mapped_column(JSONType)
    spec: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    summary: Mapped[Any] = mapped_column(JSONType)
    best_auc: Mapped[float | None] = mapped_column(Float)
    best_tpr_at_0_1: Mapped[float | None] = mapped_column(Float)
    best_tpr_attack: Mapped[str | None] = mapped_column(String(100))
    max_epsilon_lb: Mapped[float | None] = mapped_column(Float)
    risk_attack: Mapped[str | None] = mapped_column(String(100))


class RunModel(Base):
    """A model a run audited (``role`` target) or used as a reference."""

    __tablename__ = "run_models"
    __table_args__ = (Index("ix_run_models_model_id", "model_id"),)

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    target_index: Mapped[int | None] = mapped_column(Integer)


class RunAttack(Base):
    """An attack's figures in a run (first exposure, pooled over targets)."""

    __tablename__ = "run_attacks"

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    attack: Mapped[str] = mapped_column(String(100), primary_key=True)
    auc: Mapped[float | None] = mapped_column(Float)
    auc_lo: Mapped[float | None] = mapped_column(Float)
    auc_hi: Mapped[float | None] = mapped_column(Float)
    tpr_at_1: Mapped[float | None] = mapped_column(Float)
    tpr_at_1_lo: Mapped[float | None] = mapped_column(Float)
    tpr_at_1_hi: Mapped[float | None] = mapped_column(Float)
    tpr_at_0_1: Mapped[float | None] = mapped_column(Float)
    tpr_at_0_1_lo: Mapped[float | None] = mapped_column(Float)
    tpr_at_0_1_hi: Mapped[float | None] = mapped_column(Float)
    epsilon_lb: Mapped[float | None] = mapped_column(Float)


class RecordRisk(Base):
    """A record's risk in a run under the run's strongest attack (``runs.risk_attack``):
    the share of the model's non-members that the attack scores lower (ties count half)."""

    __tablename__ = "record_risk"
    __table_args__ = (Index("ix_record_risk_record_fingerprint", "record_fingerprint"),)

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    record_fingerprint: Mapped[str] = mapped_column(HEX64, primary_key=True)
    is_member: Mapped[bool] = mapped_column()
    risk: Mapped[float | None] = mapped_column(Float)
