"""The service as a real server process on 127.0.0.1: killed with SIGKILL mid-load and restarted (every acknowledged
request is in the store, once), several uvicorn workers writing at once, and the commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from unseen.service.commands import app as cli
from unseen.service.store import Store
from unseen.service.tempdb import free_port

from ._support import infer_body

REPO_ROOT = Path(__file__).resolve().parents[2]


class Server:
    """``python -m unseen.service serve`` in its own process group, stopped (the group killed) at the end."""

    def __init__(self, models: Path, store: str, workers: int = 1, env: dict | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            str(self.port),
            "--workers",
            str(workers),
            "--no-auth",
            "--reload-interval",
            "0",
            "--log-level",
            "warning",
        ]
        self.log = open(log, "ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the server on {self.url} was not ready after {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


@pytest.fixture
def server_log(tmp_path):
    path = tmp_path / "server.log"
    yield path
    if path.exists() and os.environ.get("UNSEEN_SHOW_SERVER_LOG"):
        print(path.read_text()[-5000:])


def request_body(models, i: int) -> dict:
    rng = np.random.default_rng(i)
    rows = rng.integers(1, 5)
    X = np.vstack([models.X_test, models.X_ood])[rng.integers(0, 200, rows)]
    return infer_body(X, id=f"req-{i:05d}")


def test_sigkill_mid_load_loses_no_acknowledged_event(models, store_url, server_log):
    """A bounded loop of requests from 4 client threads; SIGKILL once 40 are acknowledged; restart on the same store;
    retry every request that got no answer. Acknowledged requests are all stored, none twice, and a retry of an
    acknowledged one gets the same answer back."""
    n_requests, kill_after = 300, 40
    server = Server(models.root, store_url, log=server_log)
    acked: dict[str, dict] = {}
    unanswered: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()
    try:
        server.wait_ready()

        def send(i: int) -> None:
            if killed.is_set():
                with lock:
                    unanswered.append(i)
                return
            try:
                r = httpx.post(f"{server.url}/v2/models/knn/infer", json=request_body(models, i), timeout=30)
            except httpx.HTTPError:
                with lock:
                    unanswered.append(i)
                return
            assert r.status_code == 200, r.text
            with lock:
                acked[r.json()["id"]] = r.json()
                if len(acked) >= kill_after and not killed.is_set():
                    killed.set()
                    server.kill()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(n_requests)))
        assert killed.is_set() and server.proc.returncode == -signal.SIGKILL
        assert len(acked) >= kill_after and len(unanswered) > 0
    finally:
        server.stop()

    restarted = Server(models.root, store_url, log=server_log)
    try:
        restarted.wait_ready()
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            replayed = 0
            for i in sorted(unanswered):
                r = client.post("/v2/models/knn/infer", json=request_body(models, i))
                assert r.status_code == 200, r.text
                replayed += bool(r.json()["parameters"].get("replayed"))
            for rid in sorted(acked)[:10]:  # a retry of an acknowledged request: the same answer, from the store
                r = client.post("/v2/models/knn/infer", json=request_body(models, int(rid.split("-")[1])))
                assert r.json()["parameters"]["replayed"] is True
                assert r.json()["outputs"] == acked[rid]["outputs"]
    finally:
        restarted.stop()

    store = Store(store_url)
    ids = store.request_ids()
    assert len(ids) == len(set(ids))  # nothing stored twice
    assert set(acked) <= set(ids)  # every acknowledged request survived the kill
    assert set(ids) == set(acked) | {f"req-{i:05d}" for i in unanswered}
    for rid in list(acked)[:20]:
        assert store.get_event(rid)["scores"] == acked[rid]["outputs"][0]["data"]
    assert store.verify() == []
    store.close()


def test_several_workers_write_concurrently_without_loss(models, store_url, tmp_path, server_log):
    """Three uvicorn workers, six client threads, 120 requests: all stored once, the store consistent, the requests
    spread over the workers, and /metrics sums the workers' counters."""
    prom = tmp_path / "prometheus"
    prom.mkdir()
    server = Server(models.root, store_url, workers=3, env={"PROMETHEUS_MULTIPROC_DIR": str(prom)}, log=server_log)
    ids = [f"w-{i:04d}" for i in range(120)]
    try:
        server.wait_ready()

        def send(rid: str) -> int:
            body = request_body(models, int(rid.split("-")[1]))
            body["id"] = rid
            with httpx.Client(timeout=30) as c:  # a new connection each time: requests spread over the workers
                return c.post(f"{server.url}/v2/models/knn-conformal/infer", json=body).status_code

        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(send, ids))
        assert codes == [200] * len(ids)
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    finally:
        server.stop()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('unseen_requests_total{model="knn-conformal",status="200"')
    )
    assert total == len(ids)
    writers = {p.name.rsplit("_", 1)[1] for p in prom.glob("counter_*.db")}
    assert len(writers) >= 2, f"only {writers} served"
    store = Store(store_url)
    stored = store.request_ids()
    assert sorted(stored) == ids and store.verify() == []
    store.close()


# ------------------------------------------------------------------------------------------ commands


def test_keys_commands(sqlite_url):
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--store", sqlite_url, "--name", "ci", "--scope", "model:knn", "--scope", "monitor"]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    store = Store(sqlite_url)
    assert store.find_api_key(key)["scopes"] == ["model:knn", "monitor"]
    listed = runner.invoke(cli, ["keys", "list", "--store", sqlite_url])
    assert "ci" in listed.output and "model:knn,monitor" in listed.output and key not in listed.output
    assert runner.invoke(cli, ["keys", "create", "--store", sqlite_url, "--scope", "root"]).exit_code == 2
    assert runner.invoke(cli, ["keys", "revoke", "ci", "--store", sqlite_url]).exit_code == 0
    assert store.find_api_key(key) is None
    assert runner.invoke(cli, ["keys", "revoke", "ci", "--store", sqlite_url]).exit_code == 2


def test_monitor_command_writes_the_report(models, sqlite_url, tmp_path):
    from fastapi.testclient import TestClient

    from unseen.service import create_app

    with TestClient(create_app(models=str(models.root), store=sqlite_url, auth=False, reload_interval=0)) as c:
        c.post("/v2/models/knn/infer", json=infer_body(np.vstack([models.X_test[:40], models.X_ood[:20]])))
    out = tmp_path / "monitor"
    done = CliRunner().invoke(
        cli,
        ["monitor", "--store", sqlite_url, "--out", str(out), "--window", "1h", "--windows", "2", "--fail-on-alert"],
    )
    assert done.exit_code == 1, done.output  # 20 of 60 far-OOD rows: the OOD-rate alert fires
    assert "knn/1: 1 requests, 60 rows" in done.output and "ALERT knn/1" in done.output
    report = json.loads((out / "monitor.json").read_text())
    assert report["models"][0]["totals"]["rows"] == 60
    assert "| window (UTC) |" in (out / "monitor.md").read_text()
    page = (out / "monitor.html").read_text()
    assert "window.UNSEEN_REPORT" in page and "/dashboard/static" not in page  # self-contained
    assert CliRunner().invoke(cli, ["monitor", "--store", "mysql://x", "--out", str(out)]).exit_code == 2


def test_serve_refuses_bad_options(tmp_path):
    runner = CliRunner()
    assert "give --models DIR" in runner.invoke(cli, ["serve", "--store", f"sqlite:///{tmp_path}/a.db"]).output
    done = runner.invoke(cli, ["serve", "--models", str(tmp_path / "none"), "--store", f"sqlite:///{tmp_path}/a.db"])
    assert done.exit_code == 2
