"""The service: :func:`create_app` builds the FastAPI application (tests use it in-process; ``unseen serve``
runs it under uvicorn).

Endpoints (Open Inference Protocol v2 where one exists):

=====================================================  ==============================================  ==========
route                                                  what                                            key scope
=====================================================  ==============================================  ==========
``GET  /v2/health/live``, ``/v2/health/ready``         liveness; readiness (store answers, models      none
                                                       loaded, writer running)
``GET  /v2``                                           server metadata                                 none
``GET  /v2/models/{name}[/versions/{v}]``              model metadata: input width, head, threshold,   model
                                                       calibration size, alpha, outputs
``GET  /v2/models/{name}[/versions/{v}]/ready``        whether that model is loaded                    model
``POST /v2/models/{name}[/versions/{v}]/infer``        score: score, decision or p-value, label,       model
                                                       verdict; ``parameters.explain``: explanations
``POST /v2/repository/index``                          the repository's versions and their state       any key
``POST /v2/repository/models/{name}/load``             reload the repository from disk                 admin
``GET  /v2/monitor/summary``                           OOD rate and drift per window (the dashboard)   monitor
``GET  /v2/monitor/unfamiliar``                        least familiar recent inputs, explained         monitor
``GET  /metrics``                                      Prometheus                                      monitor
``GET  /dashboard``                                    the dashboard (static; it asks for a key)       none
=====================================================  ==============================================  ==========

Errors are JSON ``{"error": "..."}`` with a 4xx status that names what was expected; a 500 is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..exceptions import InputError, UnseenError
from .auth import ANONYMOUS, KeyCache, Principal
from .metrics import ServiceMetrics
from .protocol import InferRequest, InferResponse, ParsedRequest, RequestError, output_tensors, parse_infer
from .repository import LoadedModel, ModelNotFound, ModelRepository, check_name, sample_rows
from .settings import Settings
from .store import EventIn, SampleIn, Store, StoreError, now_ms
from .writer import DuplicateRequest, EventWriter, StoreUnavailable

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("unseen.service")
STATIC = Path(__file__).with_name("static")


def scoring_slots() -> int:
    """Concurrent scorings per process: cores divided by the threads one scoring uses (``OMP_NUM_THREADS``, which
    ``unseen serve --threads`` sets; all cores when unset)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        per_call = int(os.environ.get("OMP_NUM_THREADS") or cores)
    except ValueError:
        per_call = cores
    return max(1, cores // max(1, per_call))


class BodyTooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI middleware: refuse bodies over the limit (413) and time every request."""

    def __init__(self, app: Any, *, max_body: int, metrics: ServiceMetrics):
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                too_big = False
            if too_big:
                await _send_json(
                    send,
                    413,
                    {
                        "error": f"The request body has {int(length)} bytes; the limit is {self.max_body}. "
                        "Split the batch."
                    },
                )
                return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await self.app(scope, limited_receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or (
                "/dashboard/static" if scope["path"].startswith("/dashboard/static") else "other"
            )
            self.metrics.latency.labels(path, scope.get("method", "")).observe(loop.time() - t0)


async def _send_json(send: Any, status: int, payload: dict) -> None:
    import orjson

    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Service:
    """The state of one service process: store, repository, writer, metrics, keys."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.store, background_checkpoints=True)
        self.repo = ModelRepository(settings.models, on_load=self._register)
        self.metrics = ServiceMetrics(self._metrics_summary)
        self.writer = EventWriter(self.store, on_commit=self.metrics.observe_commit)
        self.keys = KeyCache(self.store)
        self.rng = np.random.default_rng()
        # Scoring is CPU-bound and each call may use OpenMP/BLAS threads: at most cores / threads-per-call scorings
        # run at once (the rest queue), so concurrent requests never oversubscribe the cores.
        self.scoring = ThreadPoolExecutor(max_workers=scoring_slots(), thread_name_prefix="unseen-score")
        self._reload_task: asyncio.Task | None = None
        self._reload_lock = asyncio.Lock()

    # ------------------------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self.settings.migrate:
            self.store.upgrade()
        else:
            self.store.check()
        self.repo.reload()
        self.store.start_checkpoints()
        self.writer.start()
        gc.freeze()  # the models and modules loaded so far are permanent: keep them out of every GC pass

    def stop(self) -> None:
        self.scoring.shutdown(wait=True)
        self.writer.close()
        self.store.close()

    def _register(self, entry: LoadedModel) -> None:
        ref = entry.reference_features
        if ref is not None and ref.shape[0] > 1000:
            ref = ref[np.sort(np.random.default_rng(0).choice(ref.shape[0], 1000, replace=False))]
        info = entry.metadata()["parameters"]
        entry.version_id = self.store.register_model_version(
            name=entry.name,
            version=entry.version,
            sha256=entry.sha256,
            kind=entry.kind,
            detector=entry.detector.name,
            input=entry.input,
            n_features=entry.n_features,
            info=info,
            reference_scores=entry.reference_scores,
            reference_features=None if ref is None else np.asarray(ref, dtype=np.float32),
            reference_label_counts=entry.reference_classes,
        )

    async def poll_repository(self) -> None:
        interval = float(self.settings.reload_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                if await run_in_threadpool(self.repo.changed):
                    await self.reload()
            except Exception:  # keep polling; the index shows the reason
                log.exception("repository reload failed")

    async def reload(self) -> list:
        async with self._reload_lock:
            return await run_in_threadpool(self.repo.reload)

    # ------------------------------------------------------------------------------------ auth

    async def authorize(self, request: Request, *, model: str | None = None, scope: str | None = None) -> Principal:
        if not self.settings.auth:
            return ANONYMOUS
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="unseen"'}
        if not header:
            raise RequestError(
                401,
                "This endpoint needs an API key: send 'Authorization: Bearer KEY' "
                "(create one with 'python -m unseen.service keys create').",
                challenge,
            )
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise RequestError(401, "Expected 'Authorization: Bearer KEY'.", challenge)
        if len(key) > 200:
            raise RequestError(401, "Unknown or revoked API key.", challenge)
        principal = await run_in_threadpool(self.keys.lookup, key)
        if principal is None:
            raise RequestError(401, "Unknown or revoked API key.", challenge)
        if model is not None and not principal.may_use(model):
            raise RequestError(403, f"The key {principal.name!r} may use {principal.models()}, not model {model!r}.")
        if scope is not None and not principal.may(scope):
            raise RequestError(
                403, f"The key {principal.name!r} lacks the {scope!r} scope (it has {principal.scopes})."
            )
        return principal

    # ------------------------------------------------------------------------------------ inference

    def _score(
        self, entry: LoadedModel, parsed: ParsedRequest
    ) -> tuple[dict[str, tuple[str, list]], EventIn, list | None]:
        """Score, sample and (on request) explain; runs in a worker thread."""
        X = entry.encode(parsed.texts) if parsed.texts is not None else parsed.X
        assert X is not None  # a parsed request holds texts or X
        try:
            result = entry.score(X)
        except InputError as exc:  # the detector's own checks: a 400, with its message
            raise RequestError(400, str(exc)) from None
        verdicts = ["unfamiliar" if f else "known" for f in result.flags.tolist()]
        values: dict[str, tuple[str, list]] = {"score": ("FP64", result.scores.tolist())}
        if result.p_values is not None:
            values["p_value"] = ("FP64", result.p_values.tolist())
        if result.decisions is not None:
            values["decision"] = ("FP64", result.decisions.tolist())
        types = entry.output_types()
        if "label" in types:
            values["label"] = (types["label"], [_plain(v) for v in cast(np.ndarray, result.labels).tolist()])
        if "class" in types and result.classes is not None:
            values["class"] = ("INT64", [int(v) for v in result.classes.tolist()])
        if "class_name" in types and result.classes is not None:
            values["class_name"] = (
                "BYTES",
                entry.class_name([_plain(v) for v in result.classes.tolist()], result.flags.tolist()),
            )
        values["verdict"] = ("BYTES", verdicts)
        values = {k: values[k] for k in types if k in values}
        rate = float(entry.config.get("sample_rate", self.settings.sample_rate))
        keep = sample_rows(X.shape[0], rate, self.settings.max_samples_per_request, self.rng)
        texts = parsed.texts if (parsed.texts is not None and entry.config.get("store_text")) else None
        X32 = np.asarray(X, dtype=np.float32)
        kept = [
            SampleIn(int(i), "random", float(result.scores[i]), X32[i].tobytes(), texts[i] if texts else None)
            for i in keep
        ]
        if result.flags.any():
            i = int(np.flatnonzero(result.flags)[np.argmin(result.scores[result.flags])])
            kept.append(SampleIn(i, "flagged", float(result.scores[i]), X32[i].tobytes(), texts[i] if texts else None))
        classes = None if result.classes is None else [_plain(v) for v in result.classes.tolist()]
        event = EventIn(
            request_id=parsed.request_id,
            ts_ms=now_ms(),
            model=entry.name,
            version=entry.version,
            model_version_id=entry.store_id,
            scores=result.scores.tolist(),
            flags=result.flags.tolist(),
            input_digest=parsed.digest,
            decisions=None if result.decisions is None else result.decisions.tolist(),
            p_values=None if result.p_values is None else result.p_values.tolist(),
            labels=classes,
            samples=kept,
        )
        explanations = None
        if parsed.explain:
            try:
                explanations = entry.explain(np.asarray(X), parsed.explain)
            except UnseenError as exc:
                explanations = [{"error": str(exc)}]
        return values, event, explanations

    def _replay(self, entry: LoadedModel, parsed: ParsedRequest, stored: dict[str, Any]) -> dict[str, Any]:
        if stored["input_digest"] != parsed.digest or stored["model"] != entry.name:
            raise RequestError(
                409,
                f"Request id {parsed.request_id!r} was already used for a different request "
                f"({stored['model']}/{stored['version']}); use a new id for new inputs.",
            )
        types = entry.output_types() if stored["version"] == entry.version else None
        values: dict[str, tuple[str, list]] = {"score": ("FP64", stored["scores"])}
        if stored["p_values"] is not None:
            values["p_value"] = ("FP64", stored["p_values"])
        if stored["decisions"] is not None:
            values["decision"] = ("FP64", stored["decisions"])
        flags = stored["flags"]
        if types is not None and "label" in types and entry.kind == "openset":
            unknown = _plain(entry.model.unknown_label_)
            values["label"] = (types["label"], [unknown if f else c for f, c in zip(flags, stored["labels"])])
        elif types is not None and "class" in types and stored["labels"] is not None:
            values["class"] = ("INT64", stored["labels"])
        if types is not None and "class_name" in types and stored["labels"] is not None:
            values["class_name"] = ("BYTES", entry.class_name(stored["labels"], flags))
        values["verdict"] = ("BYTES", ["unfamiliar" if f else "known" for f in flags])
        if types is not None:
            values = {k: values[k] for k in types if k in values}
        return {
            "model_name": stored["model"],
            "model_version": stored["version"],
            "id": parsed.request_id,
            "parameters": {"durable": True, "event_id": int(stored["id"]), "replayed": True},
            "outputs": output_tensors(values, [w for w in parsed.outputs if w in values] if parsed.outputs else None),
        }

    async def infer(self, request: Request, name: str, version: str | None) -> JSONResponse:
        check_name(name)
        principal = await self.authorize(request, model=name)
        entry = self.repo.get(name, version)
        body = await request.body()
        status = 200
        try:

            def work() -> tuple[ParsedRequest, Any]:
                parsed = parse_infer(
                    body,
                    n_features=entry.n_features,
                    takes_text=entry.input == "text",
                    output_names=list(entry.output_types()),
                    max_rows=self.settings.max_rows,
                    max_text_chars=self.settings.max_text_chars,
                    max_explain=self.settings.max_explain,
                    header_id=request.headers.get("x-request-id"),
                    model_key=entry.name,
                )
                return parsed, self._score(entry, parsed)

            parsed, (values, event, explanations) = await asyncio.get_running_loop().run_in_executor(self.scoring, work)
            event.key_id = principal.key_id
            try:
                event_id = await asyncio.wrap_future(self.writer.submit(event))
            except DuplicateRequest:
                stored = await run_in_threadpool(self.store.get_event, parsed.request_id)
                assert stored is not None  # the duplicate's original is committed
                payload = self._replay(entry, parsed, stored)
                return JSONResponse(payload, headers={"X-Request-Id": parsed.request_id})
            except StoreUnavailable as exc:
                self.metrics.store_errors.inc()
                raise RequestError(
                    503,
                    f"The store did not record the event ({exc}); nothing was kept. Retry with the "
                    f"same id ({parsed.request_id}).",
                ) from None
            for verdict in ("known", "unfamiliar"):
                n = values["verdict"][1].count(verdict) if "verdict" in values else 0
                if n:
                    self.metrics.rows.labels(entry.name, entry.version, verdict).inc(n)
            params: dict[str, Any] = {"durable": True, "event_id": int(event_id)}
            if explanations is not None:
                params["explanations"] = explanations
            payload = {
                "model_name": entry.name,
                "model_version": entry.version,
                "id": parsed.request_id,
                "parameters": params,
                "outputs": output_tensors(values, parsed.outputs),
            }
            return JSONResponse(payload, headers={"X-Request-Id": parsed.request_id})
        except RequestError as exc:
            status = exc.status
            raise
        finally:
            self.metrics.requests.labels(entry.name, entry.version, str(status)).inc()

    # ------------------------------------------------------------------------------------ monitoring

    def summary(self, **kw: Any) -> dict[str, Any]:
        from ..monitor.report import summarize

        opts = {
            "window_seconds": self.settings.window_seconds,
            "n_windows": self.settings.n_windows,
            "level": self.settings.alert_level,
            **kw,
        }
        return summarize(self.store, **opts)

    def _metrics_summary(self) -> dict[str, Any]:
        try:
            return self.summary(n_windows=2)
        except Exception:  # metrics must render even when the store is down
            log.exception("monitoring summary for /metrics failed")
            return {"models": []}

    def unfamiliar(
        self,
        name: str,
        version: str | None,
        limit: int,
        window_seconds: int,
        n_windows: int,
        k: int,
        until: int | None = None,
    ) -> dict[str, Any]:
        entry = self.repo.get(name, version)
        until = now_ms() if until is None else until
        since = until - window_seconds * n_windows * 1000
        rows = self.store.window_samples(
            entry.store_id, since_ms=since, until_ms=until + 1, kind="flagged", limit=limit, order="score"
        )
        items = []
        if rows:
            X = np.stack([np.frombuffer(r["features"], dtype=np.float32) for r in rows])
            try:
                explained = entry.explain(X, k)
            except UnseenError as exc:
                explained = [{"error": str(exc)}] * len(rows)
            for r, ex in zip(rows, explained):
                items.append(
                    {
                        "sample_id": int(r["id"]),
                        "request_id": r["request_id"],
                        "ts_ms": int(r["ts_ms"]),
                        "row": int(r["row"]),
                        "score": float(r["score"]),
                        "text": r["text"],
                        "explanation": ex,
                    }
                )
        return {"model": entry.name, "version": entry.version, "class_names": entry.class_names, "items": items}


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(
            400, f"Query parameter {name} must be an integer from {low} to {high}, got {raw[:40]!r}."
        ) from None
    if not low <= value <= high:
        raise RequestError(400, f"Query parameter {name} must be from {low} to {high}, got {value}.")
    return value


def create_app(settings: Settings | None = None, **overrides: Any) -> FastAPI:
    """Build the service application.

    Parameters
    ----------
    settings : Settings, optional
        Default :class:`Settings()`; keyword arguments override single fields.

    Returns
    -------
    fastapi.FastAPI
        The store is migrated (or checked), the repository loaded and the writer started when the application
        starts (``with TestClient(app)``, or uvicorn's startup).

    Examples
    --------
    >>> from fastapi.testclient import TestClient                                          # doctest: +SKIP
    >>> app = create_app(models="models/", store="sqlite:///unseen.db", auth=False)        # doctest: +SKIP
    >>> with TestClient(app) as client:                                                    # doctest: +SKIP
    ...     client.post("/v2/models/knn/infer", json={"inputs": [...]}).json()["outputs"]
    """
    settings = dataclasses.replace(settings or Settings(), **overrides)
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await run_in_threadpool(service.start)
        if settings.reload_interval > 0 and settings.models:
            service._reload_task = asyncio.create_task(service.poll_repository())
        try:
            yield
        finally:
            if service._reload_task is not None:
                service._reload_task.cancel()
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="unseen",
        version=__version__,
        lifespan=lifespan,
        redoc_url=None,
        description="Scores every input: has the model seen anything like it? Open Inference Protocol v2.",
    )
    app.state.service = service

    # ---------------------------------------------------------------------------- errors

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.message, getattr(exc, "headers", None))

    @app.exception_handler(ModelNotFound)
    async def _not_found(request: Request, exc: ModelNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return _error(413, f"The request body exceeds {settings.max_body_bytes} bytes; split the batch.")

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API."
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(400, f"Invalid request: {where}: {first.get('msg', 'invalid')}.")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"Internal error ({type(exc).__name__}); this is a bug in unseen, please report it.")

    # ---------------------------------------------------------------------------- health and metadata

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        reasons = []
        try:
            await run_in_threadpool(service.store.ping)
        except StoreError as exc:
            reasons.append(str(exc))
        ok, problems = service.repo.ready()
        reasons.extend(problems)
        if not service.writer._started:
            reasons.append("the event writer is not running")
        return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=200 if not reasons else 503)

    @app.get("/v2", tags=["metadata"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "unseen", "version": __version__, "extensions": ["model_repository", "unseen_monitoring"]}

    async def model_metadata(request: Request, name: str, version: str | None) -> dict[str, Any]:
        check_name(name)
        await service.authorize(request, model=name)
        entry = service.repo.get(name, version)
        meta = entry.metadata()
        meta["versions"] = service.repo.versions(name)
        meta["parameters"]["version"] = entry.version
        return meta

    @app.get("/v2/models/{name}", tags=["metadata"])
    async def metadata(request: Request, name: str) -> dict[str, Any]:
        return await model_metadata(request, name, None)

    @app.get("/v2/models/{name}/versions/{version}", tags=["metadata"])
    async def metadata_version(request: Request, name: str, version: str) -> dict[str, Any]:
        return await model_metadata(request, name, version)

    async def model_ready(request: Request, name: str, version: str | None) -> dict[str, Any]:
        check_name(name)
        await service.authorize(request, model=name)
        entry = service.repo.get(name, version)
        return {"name": entry.name, "version": entry.version, "ready": True}

    @app.get("/v2/models/{name}/ready", tags=["health"])
    async def ready_model(request: Request, name: str) -> dict[str, Any]:
        return await model_ready(request, name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["health"])
    async def ready_model_version(request: Request, name: str, version: str) -> dict[str, Any]:
        return await model_ready(request, name, version)

    # ---------------------------------------------------------------------------- inference

    infer_doc = {"requestBody": {"content": {"application/json": {"schema": InferRequest.model_json_schema()}}}}

    @app.post("/v2/models/{name}/infer", tags=["inference"], response_model=InferResponse, openapi_extra=infer_doc)
    async def infer(request: Request, name: str) -> JSONResponse:
        return await service.infer(request, name, None)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["inference"],
        response_model=InferResponse,
        openapi_extra=infer_doc,
    )
    async def infer_version(request: Request, name: str, version: str) -> JSONResponse:
        return await service.infer(request, name, version)

    # ---------------------------------------------------------------------------- repository

    @app.post("/v2/repository/index", tags=["repository"])
    async def repository_index(request: Request) -> list[dict[str, Any]]:
        principal = await service.authorize(request)
        return [dataclasses.asdict(e) for e in service.repo.index() if principal.may_use(e.name)]

    @app.post("/v2/repository/models/{name}/load", tags=["repository"])
    async def repository_load(request: Request, name: str) -> dict[str, Any]:
        check_name(name)
        await service.authorize(request, scope="admin")
        index = await service.reload()
        found = [dataclasses.asdict(e) for e in index if e.name == name]
        if not found:
            raise ModelNotFound(
                f"After reloading, the repository has no model {name!r}; it has {sorted({e.name for e in index})}."
            )
        return {
            "name": name,
            "versions": found,
            "note": "reloaded in this worker; other workers pick changes up within reload_interval seconds",
        }

    # ---------------------------------------------------------------------------- monitoring

    @app.get("/v2/monitor/summary", tags=["monitoring"])
    async def monitor_summary(request: Request) -> JSONResponse:
        await service.authorize(request, scope="monitor")
        model = request.query_params.get("model")
        version = request.query_params.get("version")
        if model is not None:
            check_name(model)
        if version is not None:
            check_name(version, "version")
        window = _int_query(request, "window", settings.window_seconds, 1, 7 * 86400)
        windows = _int_query(request, "windows", settings.n_windows, 1, 200)
        until = _int_query(request, "until", now_ms(), 0, 2**62)
        report = await run_in_threadpool(
            service.summary, model=model, version=version, window_seconds=window, n_windows=windows, until_ms=until
        )
        return JSONResponse(report)

    @app.get("/v2/monitor/unfamiliar", tags=["monitoring"])
    async def monitor_unfamiliar(request: Request) -> JSONResponse:
        await service.authorize(request, scope="monitor")
        name = request.query_params.get("model")
        if not name:
            raise RequestError(400, "Query parameter model is required, e.g. /v2/monitor/unfamiliar?model=knn.")
        check_name(name)
        version = request.query_params.get("version")
        limit = _int_query(request, "limit", 8, 1, 50)
        k = _int_query(request, "k", 3, 1, settings.max_explain)
        window = _int_query(request, "window", settings.window_seconds, 1, 7 * 86400)
        windows = _int_query(request, "windows", settings.n_windows, 1, 200)
        until = _int_query(request, "until", now_ms(), 0, 2**62)
        out = await run_in_threadpool(service.unfamiliar, name, version, limit, window, windows, k, until)
        return JSONResponse(out)

    @app.get("/metrics", tags=["monitoring"])
    async def metrics(request: Request) -> Response:
        if not settings.public_metrics:
            await service.authorize(request, scope="monitor")
        body = await run_in_threadpool(service.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # ---------------------------------------------------------------------------- dashboard

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse(
            {
                "name": "unseen",
                "version": __version__,
                "dashboard": "/dashboard",
                "docs": "/docs",
                "health": "/v2/health/ready",
            }
        )

    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        )
    app.add_middleware(_Guard, max_body=settings.max_body_bytes, metrics=service.metrics)
    return app


def create_app_from_env() -> FastAPI:
    """The application with :class:`Settings` from ``UNSEEN_SERVICE_SETTINGS`` (uvicorn's factory in each worker)."""
    return create_app(Settings.from_env())
