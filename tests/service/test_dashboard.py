"""The dashboard in headless Chromium (Debian's chromium, driven by Playwright): served by a real server over a real
store with traffic that drifts, its charts must render that data."""

from __future__ import annotations

import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from unseen.service import create_app
from unseen.service.tempdb import free_port

from ._support import infer_body

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "Chromium is needed for the dashboard test: sudo apt-get install -y chromium (or scripts/install-data.sh --with-browser)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


class ThreadServer:
    """uvicorn serving an app from a thread of this process, on 127.0.0.1 and a free port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def send_traffic(url: str, key: str, models) -> int:
    """Two seconds of familiar inputs, then two with a third far-OOD (windows of one second); at least one request in
    each second however slow the machine."""
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        start = np.ceil(time.time())
        time.sleep(max(0.0, start - time.time()))
        for second in range(4):
            while True:
                X = models.X_test[rng.integers(0, len(models.X_test), 30)]
                if second >= 2:
                    X[:10] = models.X_ood[rng.integers(0, len(models.X_ood), 10)]
                for name in ("knn", "knn-conformal"):
                    assert c.post(f"/v2/models/{name}/infer", json=infer_body(X)).status_code == 200
                if time.time() > start + second + 0.7:
                    break
            time.sleep(max(0.0, start + second + 1 - time.time()))
        return int(time.time() * 1000)


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'unseen.db'}"
    app = create_app(models=str(models.root), store=url, reload_interval=0)
    with ThreadServer(app) as server:
        service = app.state.service
        admin = service.store.add_api_key("traffic", ["admin"])
        monitor = service.store.add_api_key("dashboard", ["monitor"])
        until = send_traffic(server.url, admin, models)
        yield server, monitor, until


@pytest.fixture
def browser(tmp_path):
    exe = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield ctx
        ctx.close()


def open_page(browser, url):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    page.wait_for_function("['ready', 'login', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    return page, problems


def test_the_charts_render_the_stores_data(served, browser, tmp_path):
    server, key, until = served
    page, problems = open_page(browser, f"{server.url}/dashboard?window=1&windows=6&until={until}#key={key}")
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("body")[:500]
    assert "#key=" not in page.url  # the key leaves the address bar
    report = httpx.get(
        f"{server.url}/v2/monitor/summary?window=1&windows=6&until={until}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    cards = page.locator("section.card")
    assert sorted(cards.evaluate_all("cs => cs.map(c => c.dataset.model)")) == ["knn-conformal/1", "knn/1"]
    for m in report["models"]:
        card = page.locator(f'section.card[data-model="{m["name"]}/{m["version"]}"]')
        busy = [w for w in m["windows"] if w["rows"]]
        assert len(busy) >= 3 and any(w["alert"] for w in busy)  # the data: OOD windows alert
        rate = "svg circle.point:not(.ks):not(.mmd):not(.prior)"
        assert card.locator(rate).count() == len(busy)  # one point per window with traffic
        assert card.locator(rate.replace("point", "point.alert")).count() == sum(w["alert"] for w in busy)
        assert card.locator("svg polyline.bound").count() == 1
        points = card.locator("svg polyline.rate").get_attribute("points").split()
        assert len(points) == len(busy) and len({p.split(",")[1] for p in points}) > 1  # rates differ
        ref = card.locator("svg polygon.hist-reference").get_attribute("points").split()
        win = card.locator("svg polygon.hist-window").get_attribute("points").split()
        assert len(ref) == len(win) == 2 * 30 + 2  # 30 bins drawn as steps
        ks = [w for w in busy if w["ks"] and w["ks"]["p_value"] is not None]
        assert card.locator("svg circle.point.ks").count() == len(ks) >= 2
        assert card.locator("svg circle.point.ks.alert").count() == sum(w["ks"]["alert"] for w in ks)
        assert card.locator(".badge.alert").count() == 1
    page.wait_for_function("document.querySelectorAll('table.unfamiliar td').length > 6", timeout=30_000)
    text = page.locator('section.card[data-model="knn/1"] table.unfamiliar').inner_text()
    assert "k-th neighbour distance" in text and "#" in text  # explanations with exemplars
    assert page.locator("#alerts .alert-item").count() >= 1
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[1] == 1400 and pixels.std() > 20 and (pixels < 128).mean() > 0.01
    assert problems == []


def test_without_a_key_the_dashboard_asks_for_one(served, browser):
    server, key, until = served
    page, _ = open_page(browser, f"{server.url}/dashboard?window=1&windows=6&until={until}")
    assert page.evaluate("document.body.dataset.state") == "login" and page.locator("#login").is_visible()
    page.fill("#key", "unseen_wrong")
    page.click("#login-form button")
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert "Unknown or revoked API key" in page.inner_text("#login-error")
    page.fill("#key", key)
    page.click("#login-form button")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
    assert page.locator("section.card").count() >= 1


def test_the_monitor_report_opens_offline(served, browser, tmp_path):
    from unseen.monitor import summarize
    from unseen.monitor.command import write_report

    server, _, until = served
    report = summarize(server.server.config.app.state.service.store, window_seconds=1, n_windows=6, until_ms=until)
    html = write_report(report, tmp_path / "monitor")[2]
    page, problems = open_page(browser, html.resolve().as_uri())
    assert page.evaluate("document.body.dataset.state") == "ready"
    assert page.locator("section.card svg polyline.rate").count() == 2 and problems == []
