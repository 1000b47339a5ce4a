"""The event store on SQLite and on a real PostgreSQL server: schema from the migrations, durable and idempotent
writes, window aggregation, samples, API keys, retention, consistency, concurrent writers, the monitor summary."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa

from unseen.monitor import summarize
from unseen.service.schema import api_keys, events, metadata
from unseen.service.store import EventIn, SampleIn, Store, StoreError, hash_key


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    s.upgrade()
    yield s
    s.close()


def register(store, name="knn", version="1", **kw):
    opts = dict(
        sha256="a" * 64,
        kind="detector",
        detector="knn",
        input="features",
        n_features=4,
        info={"monitor": {"rate": 0.05}, "threshold": 0.0},
    )
    opts.update(kw)
    return store.register_model_version(name=name, version=version, **opts)


def event(i, mv, ts, scores, flags=None, **kw):
    flags = [s < 0 for s in scores] if flags is None else flags
    return EventIn(
        request_id=f"req-{i}",
        ts_ms=ts,
        model="knn",
        version="1",
        model_version_id=mv,
        scores=list(scores),
        flags=list(flags),
        input_digest="d" * 64,
        **kw,
    )


def test_migrations_create_exactly_the_schema(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diffs == []
    assert store.revision() == store.head() == store.upgrade()  # idempotent
    store.check()


def test_an_unmigrated_store_is_refused_with_the_command(store_url):
    fresh = Store(store_url)
    with pytest.raises(StoreError, match="is at schema none.*migrate"):
        fresh.check()
    fresh.close()


def test_events_round_trip_and_repeated_ids_are_not_stored_twice(store):
    mv = register(store)
    assert register(store) == mv  # one row per name, version and artifact
    rng = np.random.default_rng(0)
    vec = rng.normal(size=4).astype(np.float32)
    scores = [0.1, -0.25, 1 / 3, 2.0**-40, -1e300]
    evs = [
        event(
            0,
            mv,
            1000,
            scores,
            p_values=[0.5] * 5,
            decisions=scores,
            labels=[0, 1, 2, 0, 1],
            samples=[SampleIn(1, "flagged", -0.25, vec.tobytes(), "some text")],
        )
    ]
    evs += [event(i, mv, 1000 + i, [0.5]) for i in range(1, 4)]
    evs.append(event(2, mv, 2000, [9.0]))  # a repeat inside the batch
    ids = store.insert_events(evs)
    assert ids[:4] == sorted(ids[:4]) and None not in ids[:4] and ids[4] is None
    assert store.insert_events([event(1, mv, 3000, [7.0])]) == [None]  # a retry after the commit
    assert store.count_events() == 4
    got = store.get_event("req-0")
    assert got["scores"] == scores and got["flags"] == [False, True, False, False, True]  # floats exact
    assert got["n_flagged"] == 2 and got["labels"] == [0, 1, 2, 0, 1] and got["p_values"] == [0.5] * 5
    assert store.get_event("req-2")["scores"] == [0.5]  # the first write wins
    (sample,) = store.window_samples(mv, since_ms=0, until_ms=10_000, kind="flagged")
    assert np.array_equal(np.frombuffer(sample["features"], dtype=np.float32), vec)
    assert sample["text"] == "some text" and sample["request_id"] == "req-0"
    assert store.verify() == []


def test_window_counts_aggregate_in_sql(store):
    mv = register(store)
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(10_000, 70_000, 200))
    flags = [list(rng.random(int(n)) < 0.3) for n in rng.integers(1, 6, 200)]
    store.insert_events([event(i, mv, int(t), [0.0] * len(f), flags=f) for i, (t, f) in enumerate(zip(ts, flags))])
    got = store.window_counts(mv, since_ms=10_000, until_ms=70_000, window_ms=15_000)
    bucket = (ts - 10_000) // 15_000
    want = [
        {
            "bucket": b,
            "events": int((bucket == b).sum()),
            "rows": sum(len(f) for f, c in zip(flags, bucket) if c == b),
            "flagged": sum(sum(f) for f, c in zip(flags, bucket) if c == b),
        }
        for b in np.unique(bucket)
    ]
    assert got == want


def test_model_version_keeps_its_reference(store):
    ref = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    mv = register(
        store,
        reference_scores=np.arange(5.0),
        reference_features=ref,
        reference_label_counts={"labels": [0, 1], "counts": [3, 4]},
    )
    row = store.model_version(mv)
    assert np.array_equal(row["reference_features"], ref) and row["reference_features"].dtype == np.float32
    assert row["reference_scores"].tolist() == [0, 1, 2, 3, 4] and row["reference_label_counts"]["counts"] == [3, 4]
    assert [m["name"] for m in store.model_versions()] == ["knn"]


def test_api_keys_are_stored_as_digests_and_can_be_revoked(store):
    key = store.add_api_key("ci", ["model:knn", "monitor"])
    assert key.startswith("unseen_") and len(key) > 40
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys)).mappings().all()
    assert len(rows) == 1 and rows[0]["key_hash"] == hash_key(key) and key not in str(dict(rows[0]))
    assert store.find_api_key(key)["scopes"] == ["model:knn", "monitor"]
    assert store.find_api_key(key + "x") is None
    assert store.revoke_api_key("ci") == 1 and store.find_api_key(key) is None
    assert store.list_api_keys()[0]["revoked_ms"] is not None


def test_prune_deletes_old_events_with_their_samples(store):
    mv = register(store)
    s = [SampleIn(0, "random", 0.0, b"\0" * 16)]
    store.insert_events([event(0, mv, 1_000, [0.0], samples=s), event(1, mv, 5_000, [0.0], samples=s)])
    assert store.prune(2_000) == 1
    assert store.request_ids() == ["req-1"]
    assert len(store.window_samples(mv, since_ms=0, until_ms=10_000)) == 1
    assert store.verify() == []


def test_verify_reports_an_inconsistent_event(store):
    mv = register(store)
    store.insert_events([event(0, mv, 1_000, [0.5, -0.5])])
    with store.engine.begin() as conn:
        conn.execute(events.update().values(n_flagged=2))
    assert store.verify() == ["event req-0: n_flagged 2 disagrees with its flags"]


def test_concurrent_writers_lose_nothing(store_url, store):
    """Four writers, each with its own engine (as separate processes would have), 25 transactions each."""
    mv = register(store)
    errors = []

    def writer(w):
        s = Store(store_url)
        try:
            for j in range(25):
                batch = [event(f"{w}-{j}-{r}", mv, 1_000 + j, [0.1, -0.1]) for r in range(3)]
                assert None not in s.insert_events(batch)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = store.request_ids()
    assert len(ids) == len(set(ids)) == 4 * 25 * 3
    assert store.verify() == []


def test_summary_finds_the_drifting_window(store):
    """Windows of 10 s: ID traffic (5 % flagged, scores like the reference), then one window with 30 % flagged
    and lower scores: only that window alerts, on the OOD rate and on KS."""
    rng = np.random.default_rng(3)
    ref_scores = rng.normal(size=500)
    mv = register(store, reference_scores=ref_scores, info={"monitor": {"rate": 0.05}, "threshold": -1.64})
    start = 1_700_000_000_000
    evs, i = [], 0
    for w in range(6):
        for r in range(20):
            scores = rng.normal(size=10) if w != 4 else np.r_[rng.normal(size=7), rng.normal(-4, 1, size=3)]
            flags = list(scores < -1.64) if w != 4 else list(scores < -2.5)
            evs.append(event(i, mv, start + w * 10_000 + r * 400, scores.tolist(), flags=flags))
            i += 1
    store.insert_events(evs)
    report = summarize(store, window_seconds=10, n_windows=6, until_ms=start + 59_000, level=0.01)
    (m,) = report["models"]
    assert [w["rows"] for w in m["windows"]] == [200] * 6
    alerting = {(a["test"], (a["start_ms"] - start) // 10_000) for a in report["alerts"]}
    assert ("ood_rate", 4) in alerting and ("ks", 4) in alerting
    assert {w for _, w in alerting} == {4}
    w4 = m["windows"][4]
    assert w4["rate"] == pytest.approx(w4["flagged"] / 200) and w4["rate"] > w4["bound_rate"] > 0.05
    assert m["histogram"]["n_window"] == 200 and m["histogram"]["n_reference"] == 500
