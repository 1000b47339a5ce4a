"""The event store: SQLite (embedded default) or PostgreSQL (production), one schema, migrated with Alembic.

>>> store = Store("sqlite:///unseen.db")          # doctest: +SKIP
>>> store.upgrade()                                # doctest: +SKIP

``upgrade`` creates or migrates the tables; it is safe to run again.

Durability: a write returns only after its transaction committed. SQLite runs in WAL mode with
``synchronous=FULL`` (a committed event survives a process kill and a power cut) and ``BEGIN IMMEDIATE``
for writes, so concurrent writer processes queue on the write lock (``busy_timeout``) instead of failing;
PostgreSQL uses its defaults (``synchronous_commit=on``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from ..exceptions import InputError, UnseenError
from .schema import api_keys, events, metadata, model_versions, samples

__all__ = ["EventIn", "SampleIn", "Store", "StoreError", "hash_key", "now_ms"]

log = logging.getLogger("unseen.service")
MIGRATIONS = Path(__file__).with_name("migrations")
#: How long a writer waits for SQLite's write lock before giving up (another process is writing).
SQLITE_BUSY_MS = 30_000


class StoreError(UnseenError):
    """The store cannot be reached, is not migrated, or refused a write; the message says which."""


def now_ms() -> int:
    """Unix time in milliseconds (UTC), the store's clock."""
    return int(time.time() * 1000)


def hash_key(key: str) -> str:
    """SHA-256 of an API key, as stored (keys are 256-bit random tokens, so a fast hash is enough)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def to_npy(arr: np.ndarray | None) -> bytes | None:
    """An array as ``.npy`` bytes (no pickle)."""
    if arr is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def from_npy(blob: bytes | None) -> np.ndarray | None:
    """Read ``.npy`` bytes written by :func:`to_npy`; never unpickles."""
    if blob is None:
        return None
    return np.load(io.BytesIO(bytes(blob)), allow_pickle=False)


@dataclass
class SampleIn:
    """A feature vector kept with an event: ``kind`` is ``"random"`` (drift) or ``"flagged"`` (triage)."""

    row: int
    kind: str
    score: float
    features: bytes
    text: str | None = None


@dataclass
class EventIn:
    """One scored request, as the service writes it."""

    request_id: str
    ts_ms: int
    model: str
    version: str
    model_version_id: int
    scores: list[float]
    flags: list[bool]
    input_digest: str
    decisions: list[float] | None = None
    p_values: list[float] | None = None
    labels: list[Any] | None = None
    key_id: int | None = None
    samples: list[SampleIn] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.scores)


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3; ``sqlite:///path`` is a file (made absolute)."""
    if not isinstance(url, str) or "://" not in url:
        raise InputError(f"Expected a store URL such as sqlite:///unseen.db or postgresql://user@host/db, got {url!r}.")
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    if scheme == "postgresql+psycopg" or scheme == "sqlite":
        return url
    raise InputError(
        f"Unsupported store {scheme!r} in {url!r}: use sqlite:///path/to/file.db (embedded) or "
        "postgresql://user:password@host:port/dbname (production)."
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _sqlite_engine(url: str, autocheckpoint: bool = True) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.database in (None, "", ":memory:"):
        raise InputError("An in-memory SQLite store would lose every event at exit; give a file: sqlite:///unseen.db.")
    Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=False,
    )

    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        if not autocheckpoint:  # the store's checkpoint thread folds the log in; commits never pay for it
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @sa_event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class Store:
    """The event store at ``url`` (see the module docstring).

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/file.db`` or ``postgresql://user:password@host:port/dbname``.
    pool_size : int, default 8
        Connections kept open (PostgreSQL).

    Examples
    --------
    >>> store = Store("sqlite:///unseen.db"); store.upgrade()        # doctest: +SKIP
    >>> key = store.add_api_key("ci", ["model:*"])                    # doctest: +SKIP
    """

    def __init__(self, url: str, *, pool_size: int = 8, background_checkpoints: bool = False):
        self.url = normalise_url(url)
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self.background_checkpoints = background_checkpoints and self.dialect == "sqlite"
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(self.url, autocheckpoint=not self.background_checkpoints)
        else:
            self.engine = sa.create_engine(self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    def close(self) -> None:
        """Stop the checkpoint thread (after a last checkpoint) and close every pooled connection."""
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(30)
            self._checkpointer = None
        self.engine.dispose()

    def start_checkpoints(self, interval: float = 1.0) -> None:
        """SQLite with ``background_checkpoints``: a thread copies the write-ahead log into the database file every
        ``interval`` seconds (PASSIVE: it never blocks a writer), instead of the commit that happens to cross
        SQLite's 1000-page mark doing it (100 ms and more with ``synchronous=FULL``, in a request's latency)."""
        if not self.background_checkpoints or self._checkpointer is not None:
            return

        def run() -> None:
            while True:
                stop = self._stop_checkpoints.wait(interval)
                try:
                    self.checkpoint()
                except Exception as exc:  # busy or gone: the next round tries again
                    log.debug("checkpoint skipped: %s", exc)
                if stop:
                    return

        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(target=run, name="unseen-sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _write(self) -> Any:
        return self.engine.connect().execution_options(write=True)

    # ------------------------------------------------------------------------------------ schema

    def _alembic(self, conn: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def upgrade(self) -> str:
        """Create the tables or migrate them to the newest schema (idempotent); returns the revision."""
        from alembic import command

        try:
            with self._write() as conn:
                command.upgrade(self._alembic(conn), "head")
                conn.commit()
        except sa.exc.OperationalError as exc:
            raise StoreError(f"Cannot reach the store {redact(self.url)}: {exc.orig}") from None
        return self.revision() or ""

    def revision(self) -> str | None:
        """The schema revision the store is at (None: not created)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head(self) -> str:
        """The newest schema revision this version of unseen knows."""
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            return ScriptDirectory.from_config(self._alembic(conn)).get_current_head() or ""

    def check(self) -> None:
        """Raise :class:`StoreError` unless the store is reachable and at the newest schema."""
        try:
            current = self.revision()
        except sa.exc.OperationalError as exc:
            raise StoreError(f"Cannot reach the store {redact(self.url)}: {exc.orig}") from None
        head = self.head()
        if current != head:
            raise StoreError(
                f"The store {redact(self.url)} is at schema {current or 'none'}, this unseen needs {head}: "
                f"run 'python -m unseen.service migrate --store URL' (unseen serve does it at start)."
            )

    def ping(self) -> None:
        """Raise :class:`StoreError` when the store does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"The store {redact(self.url)} does not answer: {getattr(exc, 'orig', exc)}") from None

    # ------------------------------------------------------------------------------------ model versions

    def register_model_version(
        self,
        *,
        name: str,
        version: str,
        sha256: str,
        kind: str,
        detector: str,
        input: str,
        n_features: int,
        info: dict[str, Any],
        reference_scores: np.ndarray | None = None,
        reference_features: np.ndarray | None = None,
        reference_label_counts: dict[str, Any] | None = None,
    ) -> int:
        """Record a loaded artifact (once per name, version and SHA-256) and return its id."""
        key = (
            (model_versions.c.name == name)
            & (model_versions.c.version == version)
            & (model_versions.c.sha256 == sha256)
        )
        row = {
            "name": name,
            "version": version,
            "sha256": sha256,
            "kind": kind,
            "detector": detector,
            "input": input,
            "n_features": int(n_features),
            "info": info,
            "reference_scores": to_npy(reference_scores),
            "reference_features": to_npy(reference_features),
            "reference_label_counts": reference_label_counts,
            "created_ms": now_ms(),
        }
        with self._write() as conn:
            found = conn.execute(sa.select(model_versions.c.id).where(key)).scalar()
            if found is None:
                stmt = self._insert(model_versions).values(row).on_conflict_do_nothing()
                conn.execute(stmt)
                found = conn.execute(sa.select(model_versions.c.id).where(key)).scalar_one()
            conn.commit()
        return int(found)

    def model_versions(self) -> list[dict[str, Any]]:
        """Every registered model version (without the reference arrays), oldest first."""
        cols = [c for c in model_versions.c if c.name not in ("reference_scores", "reference_features")]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).order_by(model_versions.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def model_version(self, version_id: int) -> dict[str, Any]:
        """One model version with its reference arrays decoded."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(model_versions).where(model_versions.c.id == version_id)).mappings().first()
        if row is None:
            raise StoreError(f"No model version with id {version_id} in the store.")
        out = dict(row)
        out["reference_scores"] = from_npy(out["reference_scores"])
        out["reference_features"] = from_npy(out["reference_features"])
        return out

    # ------------------------------------------------------------------------------------ events

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        return insert(table)

    def insert_events(self, batch: Sequence[EventIn]) -> list[int | None]:
        """Write events (and their samples) in one transaction; returns each event's id, or None for an event
        whose request id is already stored (also when it repeats an earlier one in ``batch``).

        Returns only after the commit: a returned id is durable.
        """
        if not batch:
            return []
        first: dict[str, int] = {}
        for i, ev in enumerate(batch):
            first.setdefault(ev.request_id, i)
        unique = [batch[i] for i in sorted(first.values())]
        rows = [
            {
                "request_id": ev.request_id,
                "ts_ms": ev.ts_ms,
                "model": ev.model,
                "version": ev.version,
                "model_version_id": ev.model_version_id,
                "n_rows": ev.n_rows,
                "n_flagged": int(sum(ev.flags)),
                "scores": _floats(ev.scores),
                "decisions": _floats(ev.decisions),
                "flags": [bool(f) for f in ev.flags],
                "p_values": _floats(ev.p_values),
                "labels": ev.labels,
                "input_digest": ev.input_digest,
                "key_id": ev.key_id,
            }
            for ev in unique
        ]
        stmt = (
            self._insert(events)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(events.c.id, events.c.request_id)
        )
        with self._write() as conn:
            ids: dict[str, int] = {}
            for start in range(0, len(rows), 500):
                for eid, rid in conn.execute(stmt, rows[start : start + 500]).all():
                    ids[rid] = int(eid)
            sample_rows = [
                {
                    "event_id": ids[ev.request_id],
                    "model_version_id": ev.model_version_id,
                    "ts_ms": ev.ts_ms,
                    "row": s.row,
                    "kind": s.kind,
                    "score": float(s.score),
                    "features": s.features,
                    "text": s.text,
                }
                for ev in unique
                if ev.request_id in ids
                for s in ev.samples
            ]
            if sample_rows:
                conn.execute(samples.insert(), sample_rows)
            conn.commit()
        return [ids.get(ev.request_id) if first[ev.request_id] == i else None for i, ev in enumerate(batch)]

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database file (PASSIVE: never waits for readers or writers).
        PostgreSQL: nothing (its checkpointer does it)."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def get_event(self, request_id: str) -> dict[str, Any] | None:
        """The stored event with this request id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(events).where(events.c.request_id == request_id)).mappings().first()
        return dict(row) if row is not None else None

    def count_events(self) -> int:
        """Number of stored events."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())

    def request_ids(self) -> list[str]:
        """Every stored request id (tests and audits)."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(events.c.request_id).order_by(events.c.id))]

    def window_counts(
        self, model_version_id: int, *, since_ms: int, until_ms: int, window_ms: int
    ) -> list[dict[str, int]]:
        """Events, rows and flagged rows per time window ``[since + i w, since + (i + 1) w)`` (SQL aggregation)."""
        bucket = ((events.c.ts_ms - int(since_ms)) // int(window_ms)).label("bucket")  # integer division on both
        q = (
            sa.select(
                bucket,
                sa.func.count().label("events"),
                sa.func.sum(events.c.n_rows).label("rows"),
                sa.func.sum(events.c.n_flagged).label("flagged"),
            )
            .where(events.c.model_version_id == model_version_id, events.c.ts_ms >= since_ms, events.c.ts_ms < until_ms)
            .group_by(bucket)
            .order_by(bucket)
        )
        with self.engine.connect() as conn:
            return [
                {"bucket": int(b), "events": int(e), "rows": int(r), "flagged": int(f)}
                for b, e, r, f in conn.execute(q)
            ]

    def window_events(
        self,
        model_version_id: int,
        *,
        since_ms: int,
        until_ms: int,
        columns: Iterable[str] = ("ts_ms", "scores", "flags", "labels"),
        limit: int = 100_000,
    ) -> list[dict[str, Any]]:
        """The events of one model version in ``[since, until)``, oldest first (at most ``limit``)."""
        cols = [events.c[c] for c in columns]
        q = (
            sa.select(*cols)
            .where(events.c.model_version_id == model_version_id, events.c.ts_ms >= since_ms, events.c.ts_ms < until_ms)
            .order_by(events.c.ts_ms)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def window_samples(
        self,
        model_version_id: int,
        *,
        since_ms: int,
        until_ms: int,
        kind: str = "random",
        limit: int = 10_000,
        order: str = "time",
    ) -> list[dict[str, Any]]:
        """Kept feature vectors of one model version in ``[since, until)``: ``order="time"`` (oldest first) or
        ``"score"`` (least familiar first)."""
        q = sa.select(
            samples.c.id,
            samples.c.ts_ms,
            samples.c.row,
            samples.c.score,
            samples.c.features,
            samples.c.text,
            samples.c.event_id,
        ).where(
            samples.c.model_version_id == model_version_id,
            samples.c.kind == kind,
            samples.c.ts_ms >= since_ms,
            samples.c.ts_ms < until_ms,
        )
        q = q.order_by(samples.c.score if order == "score" else samples.c.ts_ms).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
            if rows:
                ids = {r["event_id"] for r in rows}
                rid = dict(conn.execute(sa.select(events.c.id, events.c.request_id).where(events.c.id.in_(ids))).all())
                for r in rows:
                    r["request_id"] = rid.get(r["event_id"])
        return rows

    def get_samples(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """Kept samples by id (with their event's request id)."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        q = (
            sa.select(samples, events.c.request_id)
            .join(events, events.c.id == samples.c.event_id)
            .where(samples.c.id.in_(ids))
            .order_by(samples.c.score)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def verify(self) -> list[str]:
        """Consistency problems (empty when sound): array lengths against ``n_rows``, ``n_flagged`` against the
        flags, samples pointing at rows that do not exist, SQLite's own integrity check."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                result = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
                if result != "ok":
                    problems.append(f"sqlite integrity_check: {result}")
            q = sa.select(
                events.c.id,
                events.c.request_id,
                events.c.n_rows,
                events.c.n_flagged,
                events.c.scores,
                events.c.flags,
                events.c.decisions,
                events.c.p_values,
                events.c.labels,
            )
            n_rows = {}
            for r in conn.execute(q).mappings():
                n_rows[r["id"]] = r["n_rows"]
                for col in ("scores", "flags", "decisions", "p_values", "labels"):
                    if r[col] is not None and len(r[col]) != r["n_rows"]:
                        problems.append(f"event {r['request_id']}: {len(r[col])} {col} for {r['n_rows']} rows")
                if sum(bool(f) for f in r["flags"]) != r["n_flagged"]:
                    problems.append(f"event {r['request_id']}: n_flagged {r['n_flagged']} disagrees with its flags")
            for eid, row in conn.execute(sa.select(samples.c.event_id, samples.c.row)):
                if eid not in n_rows or not 0 <= row < n_rows[eid]:
                    problems.append(f"sample of event {eid} row {row} points at no stored row")
        return problems

    def prune(self, before_ms: int) -> int:
        """Delete events (and their samples) older than ``before_ms``; returns how many events went."""
        with self._write() as conn:
            old = sa.select(events.c.id).where(events.c.ts_ms < before_ms)
            conn.execute(samples.delete().where(samples.c.event_id.in_(old)))
            n = conn.execute(events.delete().where(events.c.ts_ms < before_ms)).rowcount
            conn.commit()
        return int(n or 0)

    # ------------------------------------------------------------------------------------ API keys

    def add_api_key(self, name: str, scopes: Sequence[str]) -> str:
        """Create an API key with ``scopes`` and return it; only its SHA-256 is stored, so show it once."""
        key = "unseen_" + secrets.token_urlsafe(32)
        with self._write() as conn:
            conn.execute(
                api_keys.insert().values(
                    name=name, key_hash=hash_key(key), prefix=key[:14], scopes=list(scopes), created_ms=now_ms()
                )
            )
            conn.commit()
        return key

    def find_api_key(self, key: str) -> dict[str, Any] | None:
        """The live (not revoked) key record for a presented key, or None."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_ms.is_(None))
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key record (prefix, name, scopes, dates; never the key)."""
        cols = [c for c in api_keys.c if c.name != "key_hash"]
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(*cols).order_by(api_keys.c.id)).mappings()]

    def revoke_api_key(self, name_or_prefix: str) -> int:
        """Revoke the live keys with this name or key prefix; returns how many."""
        match = (api_keys.c.name == name_or_prefix) | (api_keys.c.prefix == name_or_prefix)
        with self._write() as conn:
            n = conn.execute(
                api_keys.update().where(match, api_keys.c.revoked_ms.is_(None)).values(revoked_ms=now_ms())
            ).rowcount
            conn.commit()
        return int(n or 0)


__all__ += ["from_npy", "metadata", "normalise_url", "redact", "to_npy"]
