"""``unseen monitor``: the drift and OOD-rate report of a store, as JSON, Markdown and a self-contained HTML page
(the service's dashboard with the data inside; it opens offline).

    unseen monitor --store sqlite:///unseen.db --out monitor/ --window 1h --windows 24
    unseen monitor --store postgresql://... --out monitor/ --fail-on-alert    # exit 1 on any alert (cron, CI)
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["monitor", "parse_duration", "render_html", "render_markdown", "write_report"]

STATIC = Path(__file__).resolve().parent.parent / "service" / "static"


def parse_duration(text: str) -> int:
    """Seconds in ``"90"``, ``"90s"``, ``"5m"``, ``"2h"`` or ``"1d"``.

    >>> parse_duration("5m"), parse_duration("90"), parse_duration("1d")
    (300, 90, 86400)
    """
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text))
    if not m or int(m.group(1)) == 0:
        raise typer.BadParameter(f"expected a positive duration such as 90s, 5m, 2h or 1d, got {text!r}")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _p(result: dict[str, Any] | None) -> str:
    if not result or result.get("p_value") is None:
        return "–"
    mark = " **!**" if result.get("alert") else ""
    return f"{result['p_value']:.3g}{mark}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: per model version a table of windows, then the alerts."""
    lines = [
        f"# unseen monitor: {_utc(report['since_ms'])} to {_utc(report['until_ms'])} UTC",
        "",
        f"{report['n_windows']} windows of {report['window_seconds']} s; every test at level {report['level']} "
        "per window. **!** marks an alert.",
        "",
    ]
    if not report["models"]:
        lines.append("No events in this range.")
    for m in report["models"]:
        t = m["totals"]
        lines += [
            f"## {m['name']} / {m['version']} ({m['kind']}, {m['detector']})",
            "",
            f"{t['events']} requests, {t['rows']} rows, {t['flagged']} flagged ({t['flagged'] / t['rows']:.1%})."
            if t["rows"]
            else "No rows.",
            "",
            "| window (UTC) | rows | flagged | OOD rate | alert from | p (rate) | KS p | MMD p | prior p |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in m["windows"]:
            if not w["rows"]:
                continue
            lines.append(
                f"| {_utc(w['start_ms'])}{' (partial)' if w['partial'] else ''} | {w['rows']} | {w['flagged']} | "
                f"{w['rate']:.1%} | {w['bound_rate']:.1%} | {_p(w['ood_rate'])} | {_p(w['ks'])} | {_p(w['mmd'])} | "
                f"{_p(w['prior'])} |"
            )
        lines.append("")
        if m["alerts"]:
            lines += ["Alerts:", ""] + [f"- {_utc(a['start_ms'])}: {a['message']}" for a in m["alerts"]] + [""]
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    """The dashboard page with the report inside and its script and style inlined (no server, no network)."""
    html = (STATIC / "dashboard.html").read_text()
    js = (STATIC / "dashboard.js").read_text()
    css = (STATIC / "dashboard.css").read_text()
    data = json.dumps(report).replace("</", "<\\/")
    html = html.replace('<link rel="stylesheet" href="/dashboard/static/dashboard.css">', f"<style>\n{css}\n</style>")
    html = html.replace(
        '<script src="/dashboard/static/dashboard.js"></script>',
        f"<script>window.UNSEEN_REPORT = {data};</script>\n<script>\n{js}\n</script>",
    )
    return html


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Write ``monitor.json``, ``monitor.md`` and ``monitor.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "monitor.json", out / "monitor.md", out / "monitor.html"]
    paths[0].write_text(json.dumps(report, indent=1))
    paths[1].write_text(render_markdown(report))
    paths[2].write_text(render_html(report))
    return paths


def monitor(
    store: Annotated[
        str, typer.Option(help="sqlite:///file.db or postgresql://user@host:port/db")
    ] = "sqlite:///unseen.db",
    out: Annotated[Path, typer.Option(help="Folder for monitor.json, monitor.md and monitor.html")] = Path("monitor"),
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    version: Annotated[str | None, typer.Option(help="Only this version")] = None,
    window: Annotated[str, typer.Option(help="Window length: 90s, 5m, 1h, 1d")] = "1h",
    windows: Annotated[int, typer.Option(min=1, max=1000, help="Number of windows, ending now")] = 24,
    level: Annotated[float, typer.Option(min=1e-9, max=0.5, help="Alert level of each test, per window")] = 0.01,
    permutations: Annotated[int, typer.Option(min=19, help="Permutations of the MMD test")] = 199,
    fail_on_alert: Annotated[bool, typer.Option(help="Exit with status 1 when any test alerts")] = False,
) -> None:
    """Drift and OOD-rate report of the events in a store (what unseen serve recorded)."""
    from ..exceptions import UnseenError
    from .report import summarize

    try:
        report = summarize(
            store,
            model=model,
            version=version,
            window_seconds=parse_duration(window),
            n_windows=windows,
            level=level,
            mmd_permutations=permutations,
        )
    except UnseenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    paths = write_report(report, out)
    for m in report["models"]:
        t = m["totals"]
        rate = f"{t['flagged'] / t['rows']:.1%}" if t["rows"] else "-"
        typer.echo(
            f"{m['name']}/{m['version']}: {t['events']} requests, {t['rows']} rows, {rate} flagged, "
            f"{len(m['alerts'])} alert{'s' if len(m['alerts']) != 1 else ''}"
        )
    for a in report["alerts"]:
        typer.echo(f"ALERT {a['model']}/{a['version']} {_utc(a['start_ms'])} UTC: {a['message']}")
    if not report["models"]:
        typer.echo("no events in this range")
    typer.echo(f"wrote {', '.join(str(p) for p in paths)}")
    if fail_on_alert and report["alerts"]:
        raise typer.Exit(1)
