"""The store's tables (SQLAlchemy Core). The migrations in ``migrations/versions`` create exactly these; a test
compares the two on SQLite and PostgreSQL.

``model_versions``
    One row per loaded artifact (name, version, SHA-256): what it is and the reference it is monitored
    against (held-out ID scores, a training-feature sample, predicted-class counts), so that ``unseen
    monitor`` needs the store only.
``events``
    One row per scored request: time (Unix milliseconds, UTC), model, version, request id (unique: a retry
    with the same id is answered from here, never stored twice), the per-row scores, decisions, flags,
    p-values and labels (JSON arrays), and the SHA-256 of the input tensor.
``samples``
    Feature vectors kept for drift tests and triage: a random sample of rows (``kind="random"``, unbiased,
    used by the MMD test) and the least familiar flagged row of a request (``kind="flagged"``, shown on
    the dashboard with its explanation; never used for drift).
``api_keys``
    API keys as SHA-256 digests (a key is shown once, when created) with their scopes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import BYTEA

__all__ = ["api_keys", "events", "metadata", "model_versions", "samples"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only
# Plain JSON, also on PostgreSQL: JSONB keeps numbers as NUMERIC and gives -1e300 back as an integer; JSON keeps
# the text, so every float64 comes back bit for bit.
_JSON = JSON()
_BLOB = LargeBinary().with_variant(BYTEA(), "postgresql")

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("detector", String(64), nullable=False),
    Column("input", String(16), nullable=False),
    Column("n_features", Integer, nullable=False),
    Column("info", _JSON, nullable=False),
    Column("reference_scores", _BLOB, nullable=True),
    Column("reference_features", _BLOB, nullable=True),
    Column("reference_label_counts", _JSON, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("name", "version", "sha256"),
)

events = Table(
    "events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("model", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("n_flagged", Integer, nullable=False),
    Column("scores", _JSON, nullable=False),
    Column("decisions", _JSON, nullable=True),
    Column("flags", _JSON, nullable=False),
    Column("p_values", _JSON, nullable=True),
    Column("labels", _JSON, nullable=True),
    Column("input_digest", String(64), nullable=False),
    Column("key_id", Integer, nullable=True),
    UniqueConstraint("request_id"),
    Index(None, "model_version_id", "ts_ms"),
    Index(None, "ts_ms"),
)

samples = Table(
    "samples",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", _ID, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("row", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("score", Double, nullable=False),
    Column("features", _BLOB, nullable=False),
    Column("text", Text, nullable=True),
    Index(None, "model_version_id", "kind", "ts_ms"),
    Index(None, "event_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("scopes", _JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    UniqueConstraint("key_hash"),
)
