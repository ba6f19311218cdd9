"""Initial schema: data sets, records, models, runs, attacks and record risks.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HEX64 = sa.String(length=64)
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
CREATED = sa.DateTime(timezone=True)


def _fk(table: str, column: str, ref: str, ondelete: str) -> sa.ForeignKeyConstraint:
    ref_table = ref.split(".")[0]
    return sa.ForeignKeyConstraint([column], [ref], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{ref_table}"))


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("fingerprint", HEX64, nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=2000), nullable=True),
        sa.Column("n_records", sa.Integer(), nullable=True),
        sa.Column("created", CREATED, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_datasets")),
    )
    op.create_table(
        "records",
        sa.Column("dataset_fingerprint", HEX64, nullable=False),
        sa.Column("fingerprint", HEX64, nullable=False),
        sa.Column("record_id", sa.String(length=500), nullable=False),
        _fk("records", "dataset_fingerprint", "datasets.fingerprint", "CASCADE"),
        sa.PrimaryKeyConstraint("dataset_fingerprint", "fingerprint", name=op.f("pk_records")),
    )
    op.create_index("ix_records_fingerprint", "records", ["fingerprint"])
    op.create_index("ix_records_record_id", "records", ["record_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", HEX64, nullable=False),
        sa.Column("dataset_fingerprint", HEX64, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("recipe", JSONType, nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("n_members", sa.Integer(), nullable=False),
        sa.Column("created", CREATED, nullable=False),
        _fk("models", "dataset_fingerprint", "datasets.fingerprint", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_models_content_hash")),
    )
    op.create_index(op.f("ix_models_dataset_fingerprint"), "models", ["dataset_fingerprint"])
    op.create_table(
        "model_records",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("record_fingerprint", HEX64, nullable=False),
        _fk("model_records", "model_id", "models.id", "CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "record_fingerprint",
                                name=op.f("pk_model_records")),
    )
    op.create_index("ix_model_records_record_fingerprint", "model_records",
                    ["record_fingerprint"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created", CREATED, nullable=False),
        sa.Column("run_dir", sa.String(length=4000), nullable=True),
        sa.Column("miaudit_version", sa.String(length=50), nullable=True),
        sa.Column("dataset_fingerprint", HEX64, nullable=True),
        sa.Column("exposure", sa.String(length=200), nullable=True),
        sa.Column("settings", JSONType, nullable=True),
        sa.Column("spec", JSONType, nullable=True),
        sa.Column("summary", JSONType, nullable=False),
        sa.Column("best_auc", sa.Float(), nullable=True),
        sa.Column("best_tpr_at_0_1", sa.Float(), nullable=True),
        sa.Column("best_tpr_attack", sa.String(length=100), nullable=True),
        sa.Column("max_epsilon_lb", sa.Float(), nullable=True),
        sa.Column("risk_attack", sa.String(length=100), nullable=True),
        _fk("runs", "dataset_fingerprint", "datasets.fingerprint", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_created"), "runs", ["created"])
    op.create_index(op.f("ix_runs_dataset_fingerprint"), "runs", ["dataset_fingerprint"])
    op.create_table(
        "run_models",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("target_index", sa.Integer(), nullable=True),
        _fk("run_models", "run_id", "runs.id", "CASCADE"),
        _fk("run_models", "model_id", "models.id", "CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_run_models")),
    )
    op.create_index("ix_run_models_model_id", "run_models", ["model_id"])
    op.create_table(
        "run_attacks",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("attack", sa.String(length=100), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in (
            "auc", "auc_lo", "auc_hi", "tpr_at_1", "tpr_at_1_lo", "tpr_at_1_hi",
            "tpr_at_0_1", "tpr_at_0_1_lo", "tpr_at_0_1_hi", "epsilon_lb")),
        _fk("run_attacks", "run_id", "runs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "attack", name=op.f("pk_run_attacks")),
    )
    op.create_table(
        "record_risk",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("record_fingerprint", HEX64, nullable=False),
        sa.Column("is_member", sa.Boolean(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=True),
        _fk("record_risk", "run_id", "runs.id", "CASCADE"),
        _fk("record_risk", "model_id", "models.id", "CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "model_id", "record_fingerprint",
                                name=op.f("pk_record_risk")),
    )
    op.create_index("ix_record_risk_record_fingerprint", "record_risk", ["record_fingerprint"])


def downgrade() -> None:
    for table in ("record_risk", "run_attacks", "run_models", "runs", "model_records",
                  "models", "records", "datasets"):
        op.drop_table(table)
