"""Group commit: one thread writes the events of all concurrent requests in one transaction each round.

A request hands its event to :meth:`EventWriter.submit` and waits for the returned future; the writer takes
everything queued (up to ``max_batch``), inserts it in one transaction, commits, and only then resolves the
futures. So a response is sent only after its event is durable, and under load one commit (one fsync)
serves many requests: the batch is whatever queued while the previous commit ran, no timer is waited on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from .store import EventIn, Store

__all__ = ["DuplicateRequest", "EventWriter", "StoreUnavailable"]

log = logging.getLogger("unseen.service")


class DuplicateRequest(Exception):
    """The request id is already in the store (a retry): answer from the stored event."""


class StoreUnavailable(Exception):
    """The transaction failed: nothing of this event was stored."""


_STOP = object()


class EventWriter:
    """The writer thread of one process (see the module docstring).

    Parameters
    ----------
    store : Store
    max_batch : int, default 256
        Most events per transaction.
    on_commit : callable, optional
        ``on_commit(n_events, seconds)`` after each commit (metrics).
    """

    def __init__(self, store: Store, *, max_batch: int = 256, on_commit: Any = None):
        self.store = store
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="unseen-event-writer", daemon=True)
        self._started = False

    def start(self) -> EventWriter:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def submit(self, event: EventIn) -> Future:
        """Queue an event; the future gives its id once committed, or raises :class:`DuplicateRequest` /
        :class:`StoreUnavailable`."""
        if not self._started:
            raise StoreUnavailable("the event writer is not running")
        fut: Future = Future()
        self._queue.put((event, fut))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._started = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[EventIn, Future]]) -> None:
        t0 = time.perf_counter()
        try:
            ids = self.store.insert_events([ev for ev, _ in batch])
        except Exception as exc:  # the transaction rolled back: none of these events is stored
            log.error("store write failed for %d events: %s", len(batch), exc)
            for _, fut in batch:
                fut.set_exception(StoreUnavailable(f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"))
            return
        if self.on_commit is not None:
            try:
                self.on_commit(len(batch), time.perf_counter() - t0)
            except Exception:  # pragma: no cover - metrics never break writes
                log.exception("on_commit failed")
        for (ev, fut), eid in zip(batch, ids):
            if eid is None:
                fut.set_exception(DuplicateRequest(ev.request_id))
            else:
                fut.set_result(eid)
