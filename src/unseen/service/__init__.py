"""``unseen serve``: score every request over HTTP (Open Inference Protocol v2), store every verdict, watch the
OOD rate and drift, show them on a dashboard. Needs the ``service`` extra: ``pip install "unseen[service]"``.

* :func:`create_app` — the FastAPI application (in-process for tests; ``unseen serve`` runs it under uvicorn);
* :class:`Settings` — how it runs (model repository, store URL, auth, limits);
* :class:`Store` — the event store (SQLite or PostgreSQL), :class:`ModelRepository` — the loaded models;
* ``python -m unseen.service serve|monitor|keys|migrate`` — the commands (see :mod:`unseen.service.commands`).

>>> from unseen.service import create_app, Settings                              # doctest: +SKIP
>>> app = create_app(Settings(models="models/", store="sqlite:///unseen.db"))     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..exceptions import MissingDependencyError

__all__ = ["ModelRepository", "Settings", "Store", "create_app"]

_LAZY = {"create_app": ".app", "ModelRepository": ".repository", "Store": ".store", "Settings": ".settings"}
HINT = 'unseen serve needs the service extra: pip install "unseen[service]"'


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        try:
            value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in {
                "fastapi",
                "sqlalchemy",
                "alembic",
                "uvicorn",
                "orjson",
                "prometheus_client",
                "psycopg",
                "typer",
                "starlette",
                "pydantic",
            }:
                raise MissingDependencyError(f"{HINT} (missing: {exc.name}).") from None
            raise
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
