"""API keys: ``Authorization: Bearer KEY``, stored as SHA-256 digests, each with scopes.

Scopes
    ``model:NAME``  infer with and read the metadata of model NAME (every version);
    ``model:*``     every model;
    ``monitor``     the dashboard's data, ``/metrics`` and the monitoring summary;
    ``admin``       all of the above, and reloading the repository.

No key: 401 (with ``WWW-Authenticate: Bearer``); an unknown or revoked key: 401; a key outside its scope:
403. Keys are looked up by digest and cached for ``ttl`` seconds per process, so a revoked key stops
working within that time.

>>> Principal(1, "ci", ["model:knn"]).may_use("knn"), Principal(1, "ci", ["model:knn"]).may_use("other")
(True, False)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..exceptions import InputError
from .repository import NAME_RULE

__all__ = ["KeyCache", "Principal", "check_scopes"]

SCOPES = ("monitor", "admin")


def check_scopes(scopes: list[str]) -> list[str]:
    """Validate scope strings (see the module docstring)."""
    if not scopes:
        raise InputError("Give a key at least one scope: model:NAME, model:*, monitor or admin.")
    for s in scopes:
        if s in SCOPES or s == "model:*":
            continue
        if s.startswith("model:") and NAME_RULE.match(s[6:]):
            continue
        raise InputError(f"Unknown scope {s!r}: use model:NAME, model:*, monitor or admin.")
    return list(scopes)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name and scopes (``key_id`` None when auth is off)."""

    key_id: int | None
    name: str
    scopes: list[str]

    def may_use(self, model: str) -> bool:
        s = self.scopes
        return "admin" in s or "model:*" in s or f"model:{model}" in s

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def models(self) -> str:
        names = [s[6:] for s in self.scopes if s.startswith("model:")]
        return "every model" if "admin" in self.scopes or "*" in names else (", ".join(names) or "no models")


ANONYMOUS = Principal(None, "anonymous", ["admin"])


class KeyCache:
    """Key lookups of one process, cached for ``ttl`` seconds (misses for ``miss_ttl``)."""

    def __init__(self, store: Any, ttl: float = 5.0, miss_ttl: float = 1.0, max_entries: int = 10_000):
        self.store = store
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = self.store.find_api_key(key)
        principal = Principal(int(row["id"]), row["name"], list(row["scopes"])) if row else None
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = (now + (self.ttl if principal else self.miss_ttl), principal)
        return principal
