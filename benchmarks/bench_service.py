#!/usr/bin/env python
"""Load benchmark of ``unseen serve``: a bounded async-httpx load on 127.0.0.1, with the SQLite and the PostgreSQL store.

A script, not a test: it measures and reports; it asserts nothing. Per store it starts ``python -m unseen.service
serve`` (one uvicorn worker, auth on, every request stored durably) on a model repository with one KNN, then runs

* **open loop, single-row requests at a fixed rate** (default 100 requests/s for 30 s, over 32 keep-alive
  connections opened and warmed before the clock starts): each request is due at its scheduled time and its latency counts from that time, whether or not
  earlier ones finished (no coordinated omission); reports p50/p99 latency, achieved throughput and errors;
* **closed loop, single-row requests** with 16 concurrent clients for 15 s: the throughput ceiling;
* **256-row requests, one at a time** (default 60): p50 latency against the in-process ``KNN.score_samples``
  time of the same 256 rows in this process with the same threads per call — once on the server above
  (``--threads``, default 1) and once on a second server started with ``--threads`` = every core, as in-process
  scoring uses by default; then a closed loop with 4 clients on the second server.

The model: ``unseen.KNN(k=50)`` on 20,000 × 384 float32 features (the width of MiniLM sentence embeddings), the
bank on faiss. Errors are any non-200 answer or a transport failure. ``uptime`` is recorded before and after
each store's run: the machine is shared, so numbers taken under load say so.

Usage::

    python benchmarks/bench_service.py                       # both stores, about 3 minutes
    python benchmarks/bench_service.py --stores sqlite --duration 10

Writes ``benchmarks/service.json`` and ``benchmarks/service.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N_TRAIN, DIM, K = 20_000, 384, 50


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def load1() -> float:
    return os.getloadavg()[0]


def build_repository(root: Path, seed: int = 0) -> tuple[object, np.ndarray]:
    import unseen

    rng = np.random.default_rng(seed)
    centers = np.abs(rng.normal(size=(20, DIM))).astype(np.float32)
    X = np.abs(centers[rng.integers(0, 20, N_TRAIN)] + rng.normal(scale=0.5, size=(N_TRAIN, DIM))).astype(np.float32)
    det = unseen.KNN(k=K).fit(X)
    folder = root / "knn" / "1"
    folder.mkdir(parents=True)
    unseen.save(det, folder / "model.unseen")
    queries = np.abs(centers[rng.integers(0, 20, 4096)] + rng.normal(scale=0.5, size=(4096, DIM))).astype(np.float32)
    return det, queries


def body(X: np.ndarray) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "features", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
    ).encode()


class Server:
    def __init__(self, models: Path, store: str, port: int, log: Path, threads: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log, "ab")
        cmd = [
            sys.executable,
            "-m",
            "unseen.service",
            "serve",
            "--models",
            str(models),
            "--store",
            store,
            "--port",
            str(port),
            "--reload-interval",
            "0",
            "--log-level",
            "warning",
            "--threads",
            str(threads),
        ]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=self.log, start_new_session=True)

    def wait(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see its log")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def percentiles(lat: list[float]) -> dict[str, float | None]:
    if not lat:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(lat) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


async def open_loop(
    url: str, headers: dict, payloads: list[bytes], rate: float, duration: float, connections: int = 32
) -> dict:
    """Requests due at ``i / rate``; ``connections`` keep-alive connections take the next due request as soon as they
    are free. Latency counts from the due time, so a slow server shows as latency, not as a lower request rate
    (no coordinated omission); a bounded number of connections keeps the client's own overhead flat."""
    import httpx

    n = int(rate * duration)
    lat: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    t0 = time.perf_counter() + 2.0  # time to open and warm every connection first
    deadline = t0 + duration + 60  # bounded however slow the server

    async def connection() -> None:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=30, limits=httpx.Limits(max_connections=1)
        ) as client:
            await client.post("/v2/models/knn/infer", content=payloads[0])  # the connection is open before t0
            while not queue.empty() and time.perf_counter() < deadline:
                i = queue.get_nowait()
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    r = await client.post("/v2/models/knn/infer", content=payloads[i % len(payloads)])
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                lat.append(time.perf_counter() - due)

    await asyncio.gather(*(connection() for _ in range(connections)))
    wall = time.perf_counter() - t0
    unsent = queue.qsize()
    errors.extend(["not sent within duration + 60 s"] * unsent)
    return {
        "requests": n,
        "rate_target": rate,
        "connections": connections,
        "throughput_rps": (n - unsent) / wall,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        **percentiles(lat),
    }


async def closed_loop(url: str, headers: dict, payloads: list[bytes], clients: int, duration: float) -> dict:
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        t_end = time.perf_counter() + duration
        t0 = time.perf_counter()

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < t_end:
                t = time.perf_counter()
                try:
                    r = await client.post("/v2/models/knn/infer", content=payloads[i % len(payloads)])
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                lat.append(time.perf_counter() - t)
                i += clients

        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": len(lat),
        "throughput_rps": len(lat) / wall,
        "rows_per_s": None,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        **percentiles(lat),
    }


async def sequential(url: str, headers: dict, payloads: list[bytes], n: int) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        await client.post("/v2/models/knn/infer", content=payloads[0])  # warm-up
        for i in range(n):
            t = time.perf_counter()
            r = await client.post("/v2/models/knn/infer", content=payloads[i % len(payloads)])
            lat.append(time.perf_counter() - t)
            errors += r.status_code != 200
    return {"requests": n, "errors": errors, **percentiles(lat)}


def infer_buckets(url: str, headers: dict) -> list[tuple[float, float]]:
    """The server's histogram of inference latency: (upper bound in s, cumulative count)."""
    import httpx

    text = httpx.get(f"{url}/metrics", headers=headers, timeout=30).text
    buckets = []
    for line in text.splitlines():
        if line.startswith("unseen_http_request_duration_seconds_bucket") and 'route="/v2/models/{name}/infer"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)


def server_quantiles(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> dict[str, str]:
    """p50 and p99 of the server's own latency between two scrapes (as histogram bucket bounds)."""
    prior = dict(before)
    delta = [(le, c - prior.get(le, 0.0)) for le, c in after]
    total = delta[-1][1] if delta else 0.0
    out = {}
    for q in (0.5, 0.99):
        le = next((b for b, c in delta if c >= q * total), float("inf")) if total else float("nan")
        out[f"p{int(q * 100)}"] = f"<= {le * 1000:g} ms" if le != float("inf") else "> 10 s"
    return out


def in_process_ms(det: object, batches: list[np.ndarray], repeat: int, threads: int | None) -> float:
    """Median ``score_samples`` time of one batch, with ``threads`` OpenMP/BLAS threads (None: every core)."""
    import faiss
    from threadpoolctl import threadpool_limits

    n = threads or len(os.sched_getaffinity(0))
    faiss.omp_set_num_threads(n)
    with threadpool_limits(n):
        det.score_samples(batches[0])  # warm-up
        times = []
        for i in range(repeat):
            t = time.perf_counter()
            det.score_samples(batches[i % len(batches)])
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def save_partial(results_so_far: list, args: argparse.Namespace) -> None:
    args.out.with_suffix(".partial.json").write_text(json.dumps(results_so_far, indent=1))


def run_store(
    kind: str, url: str, models: Path, det: object, queries: np.ndarray, args: argparse.Namespace, work: Path
) -> dict:
    from unseen.service.store import Store
    from unseen.service.tempdb import free_port

    db = Store(url)
    db.upgrade()
    key = db.add_api_key("bench", ["model:knn", "monitor"])
    db.close()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    single = [body(queries[i : i + 1]) for i in range(1024)]
    big_rows = [queries[(256 * i) % 3840 : (256 * i) % 3840 + 256] for i in range(15)]
    big = [body(x) for x in big_rows]
    out: dict = {"store": kind, "uptime_before": uptime(), "load_before": load1()}
    server = Server(models, url, free_port(), work / f"server-{kind}.log", args.threads)
    try:
        server.wait()
        asyncio.run(sequential(server.url, headers, single, 50))  # warm-up
        print(f"[{kind}] open loop {args.rate:g}/s for {args.duration:g} s", flush=True)
        auth = {"Authorization": headers["Authorization"]}
        before = infer_buckets(server.url, auth)
        out["single_open"] = asyncio.run(open_loop(server.url, headers, single, args.rate, args.duration))
        out["single_open"]["server"] = server_quantiles(before, infer_buckets(server.url, auth))
        print(f"[{kind}] {out['single_open']}\n[{kind}] closed loop, 16 clients", flush=True)
        out["single_closed"] = asyncio.run(closed_loop(server.url, headers, single, 16, args.closed_duration))
        print(f"[{kind}] {out['single_closed']}", flush=True)
        out["batch_sequential"] = asyncio.run(sequential(server.url, headers, big, args.batch_requests))
        out["batch_in_process_ms"] = in_process_ms(det, big_rows, args.batch_requests, args.threads)
        print(
            f"[{kind}] 256 rows, --threads {args.threads}: {out['batch_sequential']}; in-process "
            f"{out['batch_in_process_ms']:.1f} ms",
            flush=True,
        )
    finally:
        server.stop()
    # 256-row requests on a server whose scoring calls use every core (serve --threads N), as in-process scoring does
    cores = len(os.sched_getaffinity(0))
    server = Server(models, url, free_port(), work / f"server-{kind}-batch.log", cores)
    try:
        server.wait()
        asyncio.run(sequential(server.url, headers, big, 3))  # warm-up
        out["batch_all_cores"] = asyncio.run(sequential(server.url, headers, big, args.batch_requests))
        out["batch_in_process_all_cores_ms"] = in_process_ms(det, big_rows, args.batch_requests, None)
        print(
            f"[{kind}] 256 rows, --threads {cores}: {out['batch_all_cores']}; in-process "
            f"{out['batch_in_process_all_cores_ms']:.1f} ms",
            flush=True,
        )
        out["batch_closed"] = asyncio.run(closed_loop(server.url, headers, big, 4, args.closed_duration))
        out["batch_closed"]["rows_per_s"] = out["batch_closed"]["throughput_rps"] * 256
        print(f"[{kind}] {out['batch_closed']}", flush=True)
    finally:
        server.stop()
    out["cores"] = cores
    db = Store(url)
    out["events_stored"] = db.count_events()
    out["store_problems"] = db.verify()[:5]
    db.close()
    out["uptime_after"] = uptime()
    out["load_after"] = load1()
    return out


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(results: dict) -> str:
    threads = results["args"]["threads"]
    lines = [
        f"Load on 127.0.0.1 ({results['machine']}); one uvicorn worker (`--threads {threads}`: {threads} thread per "
        f"scoring call), auth on, every event committed before its response; KNN (k = {K}) on {N_TRAIN:,} × {DIM} "
        f"features. {results['date']}.",
        "",
        "| store | load | requests | throughput (req/s) | p50 (ms) | p99 (ms) | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        s = r["store"]
        o, c, b, bc = r["single_open"], r["single_closed"], r["batch_sequential"], r["batch_closed"]
        srv = o.get("server", {})
        lines.append(
            f"| {s} | 1 row, open loop at {o['rate_target']:g}/s | {o['requests']} | {o['throughput_rps']:.0f} | "
            f"{fmt(o['p50_ms'])} | {fmt(o['p99_ms'])} (server: p99 {srv.get('p99', '–')}) | {o['errors']} |"
        )
        lines.append(
            f"| {s} | 1 row, 16 clients | {c['requests']} | {c['throughput_rps']:.0f} | {fmt(c['p50_ms'])} | "
            f"{fmt(c['p99_ms'])} | {c['errors']} |"
        )
        ba = r["batch_all_cores"]
        lines.append(
            f"| {s} | 256 rows, 1 client (`--threads {threads}`) | {b['requests']} | {1000 / b['p50_ms']:.1f} | "
            f"{fmt(b['p50_ms'])} | {fmt(b['p99_ms'])} | {b['errors']} |"
        )
        lines.append(
            f"| {s} | 256 rows, 1 client (`--threads {r['cores']}`) | {ba['requests']} | {1000 / ba['p50_ms']:.1f} | "
            f"{fmt(ba['p50_ms'])} | {fmt(ba['p99_ms'])} | {ba['errors']} |"
        )
        lines.append(
            f"| {s} | 256 rows, 4 clients (`--threads {r['cores']}`) | {bc['requests']} | {bc['throughput_rps']:.1f} "
            f"({bc['rows_per_s']:.0f} rows/s) | {fmt(bc['p50_ms'])} | {fmt(bc['p99_ms'])} | {bc['errors']} |"
        )
    lines += ["", "| store | target | measured | verdict |", "|---|---|---|---|"]
    for r in results["runs"]:
        o, b = r["single_open"], r["batch_sequential"]
        errs = sum(
            r[k]["errors"]
            for k in ("single_open", "single_closed", "batch_sequential", "batch_all_cores", "batch_closed")
        )
        lines.append(f"| {r['store']} | 0 errors | {errs} | {'met' if errs == 0 else 'MISSED'} |")
        ok = o["p99_ms"] is not None and o["p99_ms"] <= 50 and o["throughput_rps"] >= 0.95 * o["rate_target"]
        lines.append(
            f"| {r['store']} | 1-row p99 ≤ 50 ms at 100 req/s | {fmt(o['p99_ms'])} ms at {o['throughput_rps']:.0f} req/s "
            f"| {'met' if ok else 'MISSED'} |"
        )
        for key, ref, label in (
            ("batch_sequential", "batch_in_process_ms", f"{threads} thread"),
            ("batch_all_cores", "batch_in_process_all_cores_ms", f"{r['cores']} threads"),
        ):
            ratio = r[key]["p50_ms"] / r[ref]
            lines.append(
                f"| {r['store']} | 256-row KNN ≤ 1.5 × in-process ({label} both) | {r[key]['p50_ms']:.1f} ms vs "
                f"{r[ref]:.1f} ms = {ratio:.2f} × | {'met' if ratio <= 1.5 else 'MISSED'} |"
            )
    lines += ["", "Machine load (`uptime`) during each run:", ""]
    for r in results["runs"]:
        lines.append(
            f"- {r['store']}: before `{r['uptime_before']}`; after `{r['uptime_after']}`; "
            f"{r['events_stored']} events stored, store check: {r['store_problems'] or 'consistent'}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of the open-loop run")
    ap.add_argument("--closed-duration", type=float, default=15.0)
    ap.add_argument("--batch-requests", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1, help="threads per scoring call of the server (serve --threads)")
    ap.add_argument("--out", type=Path, default=HERE / "service")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="unseen-bench-service-"))
    print(f"work dir {work}; {uptime()}", flush=True)
    det, queries = build_repository(work / "models")
    runs = []
    for kind in args.stores.split(","):
        if kind == "sqlite":
            runs.append(run_store(kind, f"sqlite:///{work / 'bench.db'}", work / "models", det, queries, args, work))
            save_partial(runs, args)
        elif kind == "postgresql":
            from unseen.service.tempdb import TemporaryPostgres

            with TemporaryPostgres() as pg:
                runs.append(run_store(kind, pg.create_database("bench"), work / "models", det, queries, args, work))
        else:
            raise SystemExit(f"unknown store {kind!r}: use sqlite and/or postgresql")
    import unseen

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "unseen": unseen.__version__,
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
    }
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
