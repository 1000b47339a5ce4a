// unseen dashboard: OOD rate with its alert bound, score histograms against the reference, drift p-values and the
// least familiar recent inputs, drawn as SVG from /v2/monitor/summary (or from window.UNSEEN_REPORT, offline).
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 360, H = 190, M = { l: 44, r: 16, t: 10, b: 28 };
  const COLORS = { ks: "#2364aa", mmd: "#8e44ad", prior: "#d98c00" };
  const offline = typeof window.UNSEEN_REPORT === "object";
  const $ = (id) => document.getElementById(id);
  let key = null;
  let timer = null;

  function el(tag, attrs, parent, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(tag, attrs, parent, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(v < 0.1 ? 1 : 0) + "%");
  const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toPrecision(d));
  const time = (ms) => new Date(ms).toISOString().slice(11, 19);
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);

  function frame(title) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "plot" });
    return svg;
  }
  function axes(svg, x0, x1, y0, y1, yfmt, xfmt, ylog) {
    const sx = (x) => M.l + ((x - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
    const sy = (y) => H - M.b - ((y - y0) / (y1 - y0 || 1)) * (H - M.t - M.b);
    el("line", { x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b, stroke: "#c5cad3" }, svg);
    el("line", { x1: M.l, y1: M.t, x2: M.l, y2: H - M.b, stroke: "#c5cad3" }, svg);
    for (let i = 0; i <= 4; i++) {
      const y = y0 + ((y1 - y0) * i) / 4;
      el("line", { x1: M.l, x2: W - M.r, y1: sy(y), y2: sy(y), stroke: "#eef0f4" }, svg);
      el("text", { x: M.l - 4, y: sy(y) + 3, "text-anchor": "end" }, svg, yfmt(ylog ? Math.pow(10, y) : y));
    }
    for (let i = 0; i <= 3; i++) {
      const x = x0 + ((x1 - x0) * i) / 3;
      el("text", { x: sx(x), y: H - M.b + 14, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, svg, xfmt(x));
    }
    return { sx, sy };
  }
  function polyline(svg, pts, attrs) {
    if (!pts.length) return null;
    return el("polyline", Object.assign({ points: pts.map((p) => p.join(",")).join(" "), fill: "none" }, attrs), svg);
  }

  // ---------------------------------------------------------------- charts

  function rateChart(m, span) {
    const svg = frame(`OOD rate of ${m.name}`);
    const ws = m.windows;
    const x0 = ws[0].start_ms, x1 = ws[ws.length - 1].end_ms;
    let ymax = 0.1;
    for (const w of ws) {
      if (w.rate !== null) ymax = Math.max(ymax, w.rate, w.bound_rate || 0);
    }
    ymax = Math.min(1, ymax * 1.15);
    const { sx, sy } = axes(svg, x0, x1, 0, ymax, (v) => pct(v), (x) => (span > 86400e3 ? day(x) : time(x)));
    const mid = (w) => (w.start_ms + w.end_ms) / 2;
    // the alert bound: a step per window (it depends on the window's size)
    const bound = [];
    for (const w of ws) if (w.bound_rate !== null) { bound.push([sx(w.start_ms), sy(Math.min(ymax, w.bound_rate))]); bound.push([sx(w.end_ms), sy(Math.min(ymax, w.bound_rate))]); }
    polyline(svg, bound, { stroke: "#c62828", "stroke-dasharray": "4 3", "stroke-width": 1.2, class: "bound" });
    const exp = ws.find((w) => w.expected_rate !== null);
    if (exp) el("line", { x1: sx(x0), x2: sx(x1), y1: sy(exp.expected_rate), y2: sy(exp.expected_rate), stroke: "#9aa3b5", "stroke-dasharray": "1 3", class: "expected" }, svg);
    const pts = ws.filter((w) => w.rate !== null).map((w) => [sx(mid(w)), sy(w.rate)]);
    polyline(svg, pts, { stroke: "#2364aa", "stroke-width": 2, class: "rate" });
    for (const w of ws) {
      if (w.rate === null) continue;
      const c = el("circle", { cx: sx(mid(w)), cy: sy(w.rate), r: w.alert ? 4 : 2.5, fill: w.alert ? "#c62828" : "#2364aa", class: w.alert ? "point alert" : "point" }, svg);
      el("title", {}, c, `${time(w.start_ms)}: ${w.flagged} of ${w.rows} flagged (${pct(w.rate)}); alert from ${pct(w.bound_rate)}; p = ${fmt(w.p_value)}`);
    }
    return svg;
  }

  function histogramChart(m) {
    const svg = frame(`score histogram of ${m.name}`);
    const h = m.histogram;
    if (!h) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg, "no scores yet"); return svg; }
    const e = h.edges;
    let ymax = 0;
    for (const s of [h.reference, h.window]) if (s) for (const v of s) ymax = Math.max(ymax, v);
    ymax = ymax * 1.1 || 1;
    const { sx, sy } = axes(svg, e[0], e[e.length - 1], 0, ymax, (v) => fmt(v, 2), (x) => fmt(x, 3));
    const bars = (dens, attrs) => {
      if (!dens) return;
      const pts = [[sx(e[0]), sy(0)]];
      dens.forEach((d, i) => { pts.push([sx(e[i]), sy(d)]); pts.push([sx(e[i + 1]), sy(d)]); });
      pts.push([sx(e[e.length - 1]), sy(0)]);
      el("polygon", Object.assign({ points: pts.map((p) => p.join(",")).join(" ") }, attrs), svg);
    };
    bars(h.reference, { fill: "#c9ced8", stroke: "#9aa3b5", "fill-opacity": 0.7, class: "hist-reference" });
    bars(h.window, { fill: "none", stroke: "#2364aa", "stroke-width": 1.8, class: "hist-window" });
    if (h.threshold !== null && h.threshold !== undefined && h.threshold >= e[0] && h.threshold <= e[e.length - 1]) {
      el("line", { x1: sx(h.threshold), x2: sx(h.threshold), y1: M.t, y2: H - M.b, stroke: "#c62828", "stroke-dasharray": "4 3", class: "threshold" }, svg);
    }
    return svg;
  }

  function driftChart(m, level, span) {
    const svg = frame(`drift p-values of ${m.name}`);
    const ws = m.windows;
    const x0 = ws[0].start_ms, x1 = ws[ws.length - 1].end_ms;
    let lo = Math.log10(level) - 1;
    for (const w of ws) for (const t of ["ks", "mmd", "prior"]) if (w[t] && w[t].p_value) lo = Math.min(lo, Math.log10(Math.max(1e-12, w[t].p_value)));
    lo = Math.floor(lo);
    const { sx, sy } = axes(svg, x0, x1, lo, 0, (v) => (v >= 0.01 ? fmt(v, 2) : v.toExponential(0)), (x) => (span > 86400e3 ? day(x) : time(x)), true);
    el("line", { x1: sx(x0), x2: sx(x1), y1: sy(Math.log10(level)), y2: sy(Math.log10(level)), stroke: "#c62828", "stroke-dasharray": "4 3", class: "level" }, svg);
    let any = false;
    for (const t of ["ks", "mmd", "prior"]) {
      const pts = [];
      for (const w of ws) {
        const r = w[t];
        if (!r || r.p_value === null || r.p_value === undefined) continue;
        const p = [sx((w.start_ms + w.end_ms) / 2), sy(Math.log10(Math.max(1e-12, r.p_value)))];
        pts.push(p);
        const c = el("circle", { cx: p[0], cy: p[1], r: r.alert ? 3.5 : 2, fill: r.alert ? "#c62828" : COLORS[t], class: `point ${t}${r.alert ? " alert" : ""}` }, svg);
        el("title", {}, c, r.message);
      }
      if (pts.length) any = true;
      polyline(svg, pts, { stroke: COLORS[t], "stroke-width": 1.5, class: `drift ${t}` });
    }
    if (!any) el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg, "not enough data for a drift test yet");
    return svg;
  }

  function legend(parent, items) {
    const d = html("div", { class: "legend" }, parent);
    for (const [color, label, dash] of items) {
      const i = html("i", { style: `background:${color};${dash ? "opacity:.7" : ""}` }, d);
      i.textContent = "";
      d.appendChild(document.createTextNode(label));
    }
  }

  // ---------------------------------------------------------------- cards

  function unfamiliarTable(card, m, items) {
    const t = card.querySelector("table.unfamiliar") || html("table", { class: "unfamiliar" }, card);
    t.innerHTML = "";
    const head = html("tr", {}, t);
    for (const c of ["time (UTC)", "request", "score", "input", "why", "nearest training exemplars"]) html("th", {}, head, c);
    if (!items.length) {
      const r = html("tr", {}, t);
      html("td", { colspan: 6, class: "muted" }, r, "no flagged inputs in this range");
      return;
    }
    for (const it of items) {
      const r = html("tr", {}, t);
      html("td", {}, r, time(it.ts_ms));
      html("td", {}, r, `${it.request_id || "?"} · row ${it.row}`);
      html("td", { class: "num" }, r, fmt(it.score, 4));
      html("td", {}, r, it.text ? `“${it.text.slice(0, 120)}”` : "(features)");
      const ex = it.explanation || {};
      html("td", {}, r, ex.error ? ex.error : (ex.reason || "–"));
      const names = m.class_names || [];
      const exs = (ex.exemplars || []).map((e) => `#${e.index}${e.label !== null && e.label !== undefined ? " (" + (names[e.label] || e.label) + ")" : ""} d=${fmt(e.distance, 3)}`);
      html("td", {}, r, exs.join(", ") || "–");
    }
  }

  function card(m, report) {
    const c = html("section", { class: "card", "data-model": `${m.name}/${m.version}` });
    const h = html("h2", {}, c);
    h.appendChild(document.createTextNode(`${m.name} / ${m.version}`));
    html("small", {}, h, `${m.kind} · ${m.detector} · ${m.input} (${m.n_features}) · ${m.totals.events} requests, ${m.totals.rows} rows, ${pct(m.totals.rows ? m.totals.flagged / m.totals.rows : null)} flagged`);
    html("span", { class: m.alerts.length ? "badge alert" : "badge" }, h, m.alerts.length ? `${m.alerts.length} alert${m.alerts.length > 1 ? "s" : ""}` : "no alert");
    const mon = m.monitor || {};
    const about = mon.alpha !== undefined ? `conformal: alpha ${mon.alpha}, ${mon.n_calibration} calibration points`
      : mon.calibration_flags !== undefined ? `threshold flags ${mon.calibration_flags} of ${mon.n_calibration} held-out rows (${pct(mon.calibration_flags / mon.n_calibration)})`
      : `nominal flag rate ${pct(mon.rate)}`;
    html("div", { class: "muted" }, c, about);
    const charts = html("div", { class: "charts" }, c);
    const span = report.until_ms - report.since_ms;
    const c1 = html("div", { class: "chart" }, charts); html("h3", {}, c1, "OOD rate per window");
    c1.appendChild(rateChart(m, span));
    legend(c1, [["#2364aa", "observed"], ["#c62828", "alert bound", true], ["#9aa3b5", "calibrated rate", true]]);
    const c2 = html("div", { class: "chart" }, charts);
    const hh = m.histogram;
    html("h3", {}, c2, hh ? `scores: latest window (${hh.n_window}) vs reference (${hh.n_reference})` : "scores");
    c2.appendChild(histogramChart(m));
    legend(c2, [["#2364aa", "window"], ["#9aa3b5", "reference (held-out ID)"], ["#c62828", "threshold", true]]);
    const c3 = html("div", { class: "chart" }, charts); html("h3", {}, c3, `drift p-values (log scale; alert below ${report.level})`);
    c3.appendChild(driftChart(m, report.level, span));
    legend(c3, [[COLORS.ks, "KS scores"], [COLORS.mmd, "MMD features"], [COLORS.prior, "class prior"]]);
    html("h3", {}, c, "least familiar recent inputs");
    unfamiliarTable(c, m, (m.unfamiliar || []).map((u) => Object.assign({ explanation: {} }, u)));
    return c;
  }

  function render(report) {
    const main = $("models");
    main.innerHTML = "";
    const alerts = $("alerts");
    alerts.innerHTML = "";
    for (const a of report.alerts.slice(-8).reverse()) html("div", { class: "alert-item" }, alerts, `${a.model}/${a.version} · ${time(a.start_ms)} · ${a.message}`);
    if (!report.models.length) html("p", { class: "muted" }, main, "No events in this range yet: send requests to /v2/models/NAME/infer.");
    for (const m of report.models) main.appendChild(card(m, report));
    $("status").textContent = `updated ${new Date(report.generated_ms).toISOString().slice(11, 19)} UTC · ${report.n_windows} × ${report.window_seconds} s`;
  }

  // ---------------------------------------------------------------- data

  async function get(path) {
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const r = await fetch(path, { headers });
    if (r.status === 401 || r.status === 403) {
      const body = await r.json().catch(() => ({}));
      const err = new Error(body.error || `HTTP ${r.status}`);
      err.auth = true;
      throw err;
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`);
    return r.json();
  }

  async function refresh() {
    const win = $("window").value, n = $("windows").value;
    const until = new URLSearchParams(location.search).get("until");
    const range = (win ? `window=${win}&` : "") + `windows=${n}` + (until && /^[0-9]+$/.test(until) ? `&until=${until}` : "");
    try {
      const report = await get(`/v2/monitor/summary?${range}`);
      $("login").hidden = true;
      render(report);
      await Promise.all(report.models.map(async (m) => {
        if (!m.unfamiliar || !m.unfamiliar.length) return;
        try {
          const u = await get(`/v2/monitor/unfamiliar?model=${encodeURIComponent(m.name)}&version=${encodeURIComponent(m.version)}&window=${report.window_seconds}&windows=${report.n_windows}&until=${report.until_ms}&limit=6`);
          const c = document.querySelector(`section.card[data-model="${m.name}/${m.version}"]`);
          if (c) unfamiliarTable(c, m, u.items);
        } catch (e) { /* the model may not be loaded in this server any more: keep the plain list */ }
      }));
      document.body.dataset.state = "ready";
    } catch (e) {
      if (e.auth) {
        $("login").hidden = false;
        $("login-error").textContent = key ? e.message : "";
        document.body.dataset.state = "login";
      } else {
        $("status").textContent = `error: ${e.message}`;
        document.body.dataset.state = "error";
      }
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = setInterval(refresh, 10000);
  }

  if (offline) {
    $("controls").hidden = true;
    render(window.UNSEEN_REPORT);
    document.body.dataset.state = "ready";
    return;
  }
  const m = /(?:^|[#&])key=([^&]+)/.exec(location.hash);
  if (m) {
    key = decodeURIComponent(m[1]);
    sessionStorage.setItem("unseen-key", key);
    history.replaceState(null, "", location.pathname + location.search);  // the key leaves the address bar
  } else {
    key = sessionStorage.getItem("unseen-key");
  }
  const q = new URLSearchParams(location.search);
  const wq = q.get("window");
  if (wq && /^[0-9]+$/.test(wq)) {
    if (![...$("window").options].some((o) => o.value === wq)) html("option", { value: wq }, $("window"), `${wq} s`);
    $("window").value = wq;
  }
  if (q.get("windows")) $("windows").value = q.get("windows");
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
  $("window").addEventListener("change", refresh);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("key").value.trim();
    sessionStorage.setItem("unseen-key", key);
    refresh();
  });
  refresh();
  schedule();
})();
