"""The service's commands (typer): ``serve``, ``keys``, ``migrate``, ``prune``, and ``monitor`` from
:mod:`unseen.monitor.command`. Run them as ``python -m unseen.service COMMAND``; ``unseen`` registers them as
``unseen serve``, ``unseen monitor`` and ``unseen keys``.

    python -m unseen.service serve --models models/ --store sqlite:///unseen.db
    python -m unseen.service serve --demo
    python -m unseen.service keys create --store sqlite:///unseen.db --name ci --scope 'model:*' --scope monitor
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ..exceptions import UnseenError
from ..monitor.command import parse_duration

__all__ = ["app", "demo_traffic", "keys_app", "limit_threads", "migrate", "prune", "serve"]

app = typer.Typer(
    help="Serve unseen models over HTTP, monitor what they saw, manage API keys.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys of a store: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

StoreOpt = Annotated[str, typer.Option("--store", help="sqlite:///file.db or postgresql://user@host:port/db")]


def limit_threads(n: int) -> None:
    """Give each scoring call ``n`` threads for faiss (OpenMP) and BLAS. Concurrent requests already run in parallel
    (up to cores / n at once); OpenMP teams in every concurrent call would oversubscribe the cores, and spinning
    OpenMP threads make single-row latency collapse under load."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # worker processes read these at import
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning
    try:  # this process has imported numpy (and maybe faiss) already
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _demo_key(store: object, path: Path) -> str:
    """The demo's admin key: reused while it is valid in this store, else a new one (file mode 0600)."""
    if path.exists():
        key = path.read_text().strip()
        if key and store.find_api_key(key) is not None:  # type: ignore[attr-defined]
            return key
    key = store.add_api_key("demo", ["admin"])  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@app.command()
def serve(
    models: Annotated[Path | None, typer.Option(help="Model repository: NAME/VERSION/model.unseen folders")] = None,
    store: Annotated[
        str | None, typer.Option(help="sqlite:///file.db (default sqlite:///unseen.db) or postgresql://...")
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Serve the demo models (built on first use) with their own store and key")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    auth: Annotated[bool, typer.Option("--auth/--no-auth", help="Require API keys (Authorization: Bearer KEY)")] = True,
    max_rows: Annotated[int, typer.Option(min=1, help="Most rows per request (413 above)")] = 4096,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body in MB (413 above)")] = 32.0,
    sample_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of rows kept for the drift tests")] = 0.05,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeatable); CORS is off without")
    ] = None,
    reload_interval: Annotated[float, typer.Option(min=0.0, help="Seconds between repository checks (0: off)")] = 10.0,
    public_metrics: Annotated[bool, typer.Option(help="Serve /metrics without a key")] = False,
    window: Annotated[str, typer.Option(help="Monitoring window of the dashboard and /metrics (90s, 5m, 1h)")] = "5m",
    windows: Annotated[int, typer.Option(min=1, max=200, help="Windows shown on the dashboard")] = 24,
    alert_level: Annotated[float, typer.Option(min=1e-6, max=0.5, help="Significance level of every alert")] = 0.01,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Threads one scoring call uses (OpenMP, BLAS); concurrent requests score in parallel up to cores / threads per worker",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the models of a repository: OIP v2 inference, the event store, /metrics and /dashboard."""
    import uvicorn

    from .settings import ENV, Settings
    from .store import Store, redact

    key = None
    try:
        if demo:
            from .demo import build_demo_repository, demo_dir

            if models is not None:
                _fail("--demo serves the demo models; drop --models (or drop --demo).")
            models = build_demo_repository(log=lambda m: typer.echo(m, err=True))
            store = store or f"sqlite:///{demo_dir() / 'unseen-demo.db'}"
        store = store or "sqlite:///unseen.db"
        if models is None:
            _fail("give --models DIR (a folder of NAME/VERSION/model.unseen), or --demo.")
        if not Path(models).is_dir():
            _fail(f"the model repository {models} is not a directory (expected NAME/VERSION/model.unseen folders).")
        settings = Settings(
            models=str(Path(models).resolve()),
            store=store,
            auth=auth,
            max_rows=max_rows,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            sample_rate=sample_rate,
            cors_origins=list(cors_origin or []),
            reload_interval=reload_interval,
            public_metrics=public_metrics,
            window_seconds=parse_duration(window),
            n_windows=windows,
            alert_level=alert_level,
            migrate=False,
        )
        db = Store(store)
        db.upgrade()  # once, before any worker starts
        if auth:
            if demo:
                from .demo import demo_dir

                key = _demo_key(db, demo_dir() / "api-key")
            elif not any(k["revoked_ms"] is None for k in db.list_api_keys()):
                typer.echo(
                    f"warning: auth is on and {redact(db.url)} holds no API key, so every call will get 401. Create "
                    f"one: python -m unseen.service keys create --store '{store}' --name me --scope admin",
                    err=True,
                )
        db.close()
    except UnseenError as exc:
        _fail(str(exc))
    base = f"http://{host}:{port}"
    typer.echo(
        f"unseen: serving {settings.models} with store {redact(settings.store)} on {base} ({workers} worker"
        f"{'s' if workers > 1 else ''}); dashboard {base}/dashboard",
        err=True,
    )
    if key is not None:
        typer.echo(
            f'demo API key (admin): export KEY={key}\n  curl -H "Authorization: Bearer $KEY" '
            f'-d \'{{"inputs": [{{"name": "text", "shape": [1], "datatype": "BYTES", '
            f'"data": ["a cup of espresso"]}}]}}\' {base}/v2/models/wordnet/infer\n'
            f"  dashboard: {base}/dashboard#key={key}\n"
            f"  some traffic to look at: python -m unseen.service demo-traffic --url {base}",
            err=True,
        )
    limit_threads(threads)  # only now: a refused command leaves the calling process as it was
    if workers == 1:
        from .app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
        return
    os.environ[ENV] = settings.to_env()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # counters summed over the workers
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="unseen-prometheus-")
    uvicorn.run(
        "unseen.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


@app.command("demo-traffic")
def demo_traffic(
    url: Annotated[str, typer.Option(help="The demo server")] = "http://127.0.0.1:8000",
    key: Annotated[str | None, typer.Option(help="API key (default: the demo's, from its key file)")] = None,
    seconds: Annotated[float, typer.Option(min=1, help="How long to send")] = 60.0,
    drift_after: Annotated[
        float, typer.Option(min=0, help="Seconds before a third of the inputs become unfamiliar")
    ] = 40.0,
) -> None:
    """Send the demo models known digits (and texts), then drifting ones, so the dashboard has something to show."""
    import httpx

    from .demo import demo_dir, send_demo_traffic

    if key is None and (demo_dir() / "api-key").exists():
        key = (demo_dir() / "api-key").read_text().strip()
    try:
        send_demo_traffic(url, key, seconds=seconds, drift_after=drift_after, log=typer.echo)
    except httpx.HTTPError as exc:
        _fail(f"{exc} (is 'python -m unseen.service serve --demo' running on {url}?)")


@app.command()
def migrate(store: StoreOpt = "sqlite:///unseen.db") -> None:
    """Create the store's tables or migrate them to this version's schema."""
    from .store import Store, redact

    try:
        db = Store(store)
        rev = db.upgrade()
    except UnseenError as exc:
        _fail(str(exc))
    typer.echo(f"{redact(db.url)} is at schema {rev}")


@app.command()
def prune(
    store: StoreOpt = "sqlite:///unseen.db",
    older_than: Annotated[str, typer.Option(help="Delete events older than this (e.g. 30d)")] = "30d",
) -> None:
    """Delete old events and their samples (retention)."""
    from .store import Store, now_ms

    try:
        db = Store(store)
        db.check()
        n = db.prune(now_ms() - parse_duration(older_than) * 1000)
    except UnseenError as exc:
        _fail(str(exc))
    typer.echo(f"deleted {n} events older than {older_than}")


@keys_app.command("create")
def keys_create(
    store: StoreOpt = "sqlite:///unseen.db",
    name: Annotated[str, typer.Option(help="Who uses the key (shown in listings)")] = "default",
    scope: Annotated[list[str] | None, typer.Option(help="model:NAME, model:*, monitor or admin (repeatable)")] = None,
) -> None:
    """Create an API key and print it (only its SHA-256 is stored: it cannot be shown again)."""
    from .auth import check_scopes
    from .store import Store

    try:
        scopes = check_scopes(list(scope or ["model:*"]))
        db = Store(store)
        db.upgrade()
        key = db.add_api_key(name, scopes)
    except UnseenError as exc:
        _fail(str(exc))
    typer.echo(key)
    typer.echo(
        f"created key {key[:14]}... for {name!r} with scopes {scopes}; store it now, it is not shown again", err=True
    )


@keys_app.command("list")
def keys_list(store: StoreOpt = "sqlite:///unseen.db") -> None:
    """List the keys (prefix, name, scopes, state); never the keys themselves."""
    import datetime as dt

    from .store import Store

    try:
        db = Store(store)
        db.check()
        rows = db.list_api_keys()
    except UnseenError as exc:
        _fail(str(exc))
    for r in rows:
        made = dt.datetime.fromtimestamp(r["created_ms"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
        state = "live" if r["revoked_ms"] is None else "revoked"
        typer.echo(f"{r['prefix']}...  {r['name']:<20} {','.join(r['scopes']):<30} {state:<8} created {made} UTC")


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name or its prefix (unseen_XXXXXXX)")],
    store: StoreOpt = "sqlite:///unseen.db",
) -> None:
    """Revoke keys by name or prefix (running services stop accepting them within 5 seconds)."""
    from .store import Store

    try:
        db = Store(store)
        db.check()
        n = db.revoke_api_key(name)
    except UnseenError as exc:
        _fail(str(exc))
    if n == 0:
        _fail(f"no live key named or prefixed {name!r}")
    typer.echo(f"revoked {n} key{'s' if n > 1 else ''}")


def _register_monitor() -> None:
    from ..monitor.command import monitor

    app.command("monitor")(monitor)


_register_monitor()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m unseen.service``."""
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="python -m unseen.service", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
