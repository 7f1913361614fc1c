// One dashboard page of services/dashboards: fetch each panel's data from the service (never
// from Prometheus) and draw it with uPlot; a stat panel shows its series' last values.
//
// A collapsed row's panels are hidden and not queried until its header is clicked (Grafana's
// behaviour: the place for what an optional component feeds).
//
// After each round of fetches the page publishes what it drew, for people and for tests:
//   window.modelfleetDashboard = {uid, panels, shown, collapsed, withData, errors, rounds,
//                                 perPanel: {id: {...}}}     (perPanel: the shown panels)
// and every panel element carries data-series (series with at least one value) and, on a
// failure, data-error.
(() => {
  "use strict";
  const model = JSON.parse(document.getElementById("dashboard-model").textContent);
  const params = new URLSearchParams(location.search);
  const rangeS = Number(params.get("range_s")) || model.rangeS;
  const refreshS = params.has("refresh") ? Number(params.get("refresh")) : model.refreshS;
  const COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
    "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62"];
  const summary = {
    uid: model.uid, title: model.title, panels: model.panels.length, shown: 0, collapsed: 0,
    withData: 0, errors: 0, rounds: 0, perPanel: {},
  };
  const opened = new Set(model.rows.filter((r) => !r.collapsed).map((r) => r.id));
  const isShown = (panel) => !panel.collapsed || opened.has(panel.row);
  window.modelfleetDashboard = summary;
  const charts = new Map();

  const select = document.getElementById("range");
  if (![...select.options].some((o) => Number(o.value) === rangeS)) {
    select.add(new Option(`${rangeS} s`, String(rangeS)));
  }
  select.value = String(rangeS);
  select.addEventListener("change", () => {
    params.set("range_s", select.value);
    location.search = params.toString();
  });

  function compact(v, digits = 3) {
    const a = Math.abs(v);
    if (a >= 1e9) return `${+(v / 1e9).toPrecision(digits)}G`;
    if (a >= 1e6) return `${+(v / 1e6).toPrecision(digits)}M`;
    if (a >= 1e3) return `${+(v / 1e3).toPrecision(digits)}k`;
    if (a === 0) return "0";
    if (a < 1e-3) return v.toExponential(1);
    return String(+v.toPrecision(digits));
  }

  function format(unit, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    switch (unit) {
      case "s": {
        const a = Math.abs(v);
        if (a === 0) return "0 s";
        if (a < 1e-3) return `${+(v * 1e6).toPrecision(3)} µs`;
        if (a < 1) return `${+(v * 1e3).toPrecision(3)} ms`;
        return `${+v.toPrecision(3)} s`;
      }
      case "percentunit": return `${+(v * 100).toPrecision(3)}%`;
      case "percent": return `${+v.toPrecision(3)}%`;
      case "reqps": return `${compact(v)} req/s`;
      case "ops": return `${compact(v)} ops/s`;
      default: return compact(v);
    }
  }

  function status(body, text, error) {
    body.replaceChildren();
    const p = document.createElement("p");
    p.className = error ? "status error" : "status";
    p.textContent = text;
    body.append(p);
  }

  // A flat series gets a band around it (0 to 1 for all zeros), as Grafana draws it.
  function yRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    if (min === max) return min === 0 ? [0, 1] : [min - Math.abs(min) / 10, max + Math.abs(max) / 10];
    return uPlot.rangeNum(min, max, 0.1, true);
  }

  // Room for the longest tick label of the value axis.
  function axisSize(u, values) {
    const longest = values ? Math.max(...values.map((v) => String(v).length)) : 4;
    return Math.ceil(longest * 7.5) + 24;
  }

  function drawChart(panel, body, data, shown) {
    const old = charts.get(panel.id);
    if (old) old.destroy();
    body.replaceChildren();
    const width = Math.max(body.clientWidth - 14, 100);
    const height = Math.max(body.clientHeight - 26 - 16 * Math.min(shown.length, 4), 60);
    const opts = {
      width, height,
      legend: { live: false },
      cursor: { points: { size: 4 } },
      scales: { x: { time: true }, y: { range: yRange } },
      axes: [
        { stroke: "#8e8e8e", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235" } },
        {
          stroke: "#8e8e8e", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235" },
          size: axisSize, values: (u, ticks) => ticks.map((t) => format(panel.unit, t)),
        },
      ],
      series: [{}, ...shown.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        points: { show: false }, value: (u, v) => format(panel.unit, v),
      }))],
    };
    const chart = new uPlot(opts, [data.timestamps, ...shown.map((s) => s.values)], body);
    charts.set(panel.id, chart);
  }

  function drawStat(panel, body, shown) {
    const box = document.createElement("div");
    box.className = "stat";
    for (const s of shown.slice(0, 6)) {
      const last = [...s.values].reverse().find((v) => v !== null);
      const item = document.createElement("div");
      item.innerHTML = '<div class="value"></div><div class="label"></div>';
      item.querySelector(".value").textContent = format(panel.unit, last);
      item.querySelector(".label").textContent = shown.length > 1 ? s.label : "";
      box.append(item);
    }
    body.replaceChildren(box);
  }

  async function loadPanel(panel) {
    const element = document.getElementById(`panel-${panel.id}`);
    const body = element.querySelector(".body");
    const result = { title: panel.title, type: panel.type, series: 0, points: 0, error: null };
    if (panel.queries.length === 0) {
      status(body, "no Prometheus query in this panel");
      element.dataset.series = "0";
      return result;
    }
    try {
      const url = `/v1/dashboards/${encodeURIComponent(model.uid)}/panels/${panel.id}/data` +
        `?range_s=${rangeS}`;
      const response = await fetch(url, { headers: { accept: "application/json" } });
      const data = await response.json();
      if (!response.ok) throw new Error(`${data.title || response.status}: ${data.detail || ""}`);
      const shown = data.series.filter((s) => s.values.some((v) => v !== null));
      result.series = shown.length;
      result.points = shown.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
      element.dataset.series = String(shown.length);
      delete element.dataset.error;
      if (shown.length === 0) {
        status(body, "no data");
      } else if (typeof uPlot === "undefined") {
        throw new Error("uPlot is not loaded (run scripts/ensure-tools)");
      } else if (panel.type === "stat" || panel.type === "gauge") {
        drawStat(panel, body, shown);
      } else {
        drawChart(panel, body, data, shown);
      }
    } catch (error) {
      result.error = String(error.message || error);
      element.dataset.series = "0";
      element.dataset.error = result.error;
      status(body, result.error, true);
    }
    return result;
  }

  async function round() {
    const shown = model.panels.filter(isShown);
    const results = await Promise.all(shown.map(loadPanel));
    summary.perPanel = {};
    shown.forEach((panel, i) => { summary.perPanel[panel.id] = results[i]; });
    summary.shown = shown.length;
    summary.collapsed = model.panels.length - shown.length;
    summary.withData = results.filter((r) => r.series > 0).length;
    summary.errors = results.filter((r) => r.error !== null).length;
    summary.rounds += 1;
    document.getElementById("summary").textContent =
      `${summary.withData} of ${summary.shown} panels with data` +
      (summary.collapsed ? ` (${summary.collapsed} more in collapsed rows)` : "") +
      (summary.errors ? `, ${summary.errors} failed` : "");
    document.body.dataset.rounds = String(summary.rounds);
  }

  // A row's header opens or closes its panels; an opened row's panels are fetched at once.
  for (const button of document.querySelectorAll("h2.row button")) {
    button.addEventListener("click", () => {
      const id = Number(button.dataset.rowId);
      const open = !opened.has(id);
      if (open) opened.add(id); else opened.delete(id);
      button.setAttribute("aria-expanded", String(open));
      for (const panel of model.panels.filter((p) => p.row === id && p.collapsed)) {
        document.getElementById(`panel-${panel.id}`).hidden = !open;
      }
      round();
    });
  }

  round();
  if (refreshS > 0) setInterval(round, refreshS * 1000);
  window.addEventListener("resize", () => {
    for (const [id, chart] of charts) {
      const body = document.getElementById(`panel-${id}`).querySelector(".body");
      chart.setSize({ width: Math.max(body.clientWidth - 14, 100), height: chart.height });
    }
  });
})();
