#!/usr/bin/env python
"""Regenerate docs/dashboard.png: ``unseen serve --demo`` on a fresh store, 90 s of demo traffic that drifts
after 60 s (10-s windows), and the dashboard in headless Chromium (Debian's chromium, driven by Playwright).

    .venv/bin/python scripts/dashboard-screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--port", type=int, default=8787)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from unseen.service.demo import demo_dir, send_demo_traffic

    work = Path(tempfile.mkdtemp(prefix="unseen-shot-"))
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unseen.service",
            "serve",
            "--demo",
            "--store",
            f"sqlite:///{work}/demo.db",
            "--port",
            str(args.port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the demo server did not start")
            time.sleep(0.5)
        key = (demo_dir() / "api-key").read_text().strip()
        send_demo_traffic(url, key, seconds=args.seconds, drift_after=args.seconds * 2 / 3)
        until = int(time.time() * 1000)
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(work / "profile"),
                executable_path="/usr/bin/chromium",
                headless=True,
                args=ARGS,
                viewport={"width": 1400, "height": 900},
            )
            page = ctx.new_page()
            windows = int(args.seconds // args.window) + 1
            page.goto(f"{url}/dashboard?window={args.window}&windows={windows}&until={until}#key={key}")
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=120_000)
            page.wait_for_function("document.querySelectorAll('table.unfamiliar td').length > 12", timeout=60_000)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            ctx.close()
        print(f"wrote {args.out}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
