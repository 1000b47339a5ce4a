"""The first schema: model versions, events, sampled feature vectors, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON()
BLOB = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("input", sa.String(16), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("info", JSON, nullable=False),
        sa.Column("reference_scores", BLOB, nullable=True),
        sa.Column("reference_features", BLOB, nullable=True),
        sa.Column("reference_label_counts", JSON, nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", "sha256", name="uq_model_versions_name_version_sha256"),
    )
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_flagged", sa.Integer(), nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("decisions", JSON, nullable=True),
        sa.Column("flags", JSON, nullable=False),
        sa.Column("p_values", JSON, nullable=True),
        sa.Column("labels", JSON, nullable=True),
        sa.Column("input_digest", sa.String(64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_events_model_version_id_model_versions"
        ),
        sa.UniqueConstraint("request_id", name="uq_events_request_id"),
    )
    op.create_index("ix_events_model_version_id_ts_ms", "events", ["model_version_id", "ts_ms"])
    op.create_index("ix_events_ts_ms", "events", ["ts_ms"])
    op.create_table(
        "samples",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("features", BLOB, nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_samples_event_id_events", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_samples_model_version_id_model_versions"
        ),
    )
    op.create_index("ix_samples_model_version_id_kind_ts_ms", "samples", ["model_version_id", "kind", "ts_ms"])
    op.create_index("ix_samples_event_id", "samples", ["event_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_samples_event_id", table_name="samples")
    op.drop_index("ix_samples_model_version_id_kind_ts_ms", table_name="samples")
    op.drop_table("samples")
    op.drop_index("ix_events_ts_ms", table_name="events")
    op.drop_index("ix_events_model_version_id_ts_ms", table_name="events")
    op.drop_table("events")
    op.drop_table("model_versions")
