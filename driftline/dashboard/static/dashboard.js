// driftline dashboard: state from /api/models/<model>, then live updates over /events (SSE).
"use strict";

const state = { model: null, points: [], alarms: [], versions: [], source: null };
const TOP_DETECTORS = 8;
const layoutBase = { margin: { l: 50, r: 50, t: 10, b: 30 }, showlegend: true,
  legend: { orientation: "h", y: -0.2 }, xaxis: { type: "date" } };

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

const when = (t) => new Date(t * 1000);

function drawMetrics() {
  const x = state.points.map((p) => when(p.t));
  const series = (key) => state.points.map((p) => (p.m[key] === undefined ? null : p.m[key]));
  const traces = [
    { name: "events/s", x, y: series("event_rate_per_s"), mode: "lines" },
    { name: "accuracy", x, y: series("accuracy"), mode: "lines", yaxis: "y2" },
    { name: "latency p99 (ms)", x, y: series("latency_p99_ms"), mode: "lines", visible: "legendonly" },
  ];
  if (state.points.some((p) => p.m.mae !== undefined))
    traces.push({ name: "MAE", x, y: series("mae"), mode: "lines", yaxis: "y2" });
  Plotly.react("metrics-plot", traces, { ...layoutBase,
    yaxis: { title: "events/s", rangemode: "tozero" },
    yaxis2: { title: "accuracy / MAE", overlaying: "y", side: "right", rangemode: "tozero" } });
}

function drawDetectors() {
  const peak = {};
  for (const p of state.points)
    for (const [key, [stat, thr]] of Object.entries(p.r))
      peak[key] = Math.max(peak[key] || 0, thr ? stat / thr : 0);
  const keys = Object.keys(peak).sort((a, b) => peak[b] - peak[a]).slice(0, TOP_DETECTORS);
  const x = state.points.map((p) => when(p.t));
  const traces = keys.map((key) => ({
    name: key, x, mode: "lines",
    y: state.points.map((p) => (p.r[key] && p.r[key][1] ? p.r[key][0] / p.r[key][1] : null)),
  }));
  const firing = state.alarms.filter((a) => a.status === "firing");
  traces.push({
    name: "alarms", mode: "markers", marker: { symbol: "triangle-down", size: 12, color: "#b91c1c" },
    x: firing.map((a) => new Date(a.time)), y: firing.map(() => 1.05),
    text: firing.map((a) => `${a.signal} / ${a.detector} (${a.severity})`), hoverinfo: "text+x",
  });
  const shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1,
    line: { dash: "dash", color: "#b91c1c" } }];
  Plotly.react("detector-plot", traces, { ...layoutBase, shapes,
    yaxis: { title: "statistic / threshold", rangemode: "tozero" } });
}

function drawVersions() {
  // one row per kind of registry event, so a registration and its promotion never overlap
  const rows = { registered: "registered", promoted: "promoted", rolled_back: "rolled back" };
  const colors = { registered: "#64748b", promoted: "#1f9d55", rolled_back: "#b91c1c" };
  const v = state.versions.filter((e) => rows[e.action]);
  Plotly.react("version-plot", [{
    mode: "markers+text", x: v.map((e) => when(e.at)), y: v.map((e) => rows[e.action]),
    text: v.map((e) => e.version || ""), textposition: "middle right",
    marker: { size: 13, color: v.map((e) => colors[e.action]) },
    hovertext: v.map((e) => `${rows[e.action]} ${e.version || ""}: ${e.reason || e.strategy || ""}`),
    hoverinfo: "text+x",
  }], { ...layoutBase, showlegend: false, margin: { l: 90, r: 50, t: 10, b: 30 },
    yaxis: { type: "category", categoryorder: "array",
             categoryarray: ["registered", "promoted", "rolled back"] },
    annotations: v.length ? [] : [{ text: "no version registered for this model", showarrow: false,
      xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] });
}

function drawOpenAlarms(open) {
  const body = document.querySelector("#open-alarms tbody");
  body.innerHTML = "";
  for (const a of open) {
    const row = body.insertRow();
    const since = a.event_time || a.opened_at;
    for (const text of [`${a.signal_kind}:${a.signal_name}`, a.detector, a.severity,
                        a.model_version, since ? when(since).toISOString() : "-"])
      row.insertCell().textContent = text === undefined ? "-" : text;
    row.dataset.dedup = a.dedup_key;
  }
  document.getElementById("no-open").hidden = open.length > 0;
}

function addAlarm(a, fresh) {
  const list = document.getElementById("alarm-list");
  const item = document.createElement("li");
  item.dataset.dedup = a.dedup_key;
  item.dataset.status = a.status;
  const cls = a.status === "resolved" ? "resolved" : `sev-${a.severity}`;
  item.innerHTML = `<span class="${cls}"></span> <b></b> <span></span>`;
  item.children[0].textContent = a.status === "resolved" ? "RESOLVED" : a.severity.toUpperCase();
  item.children[1].textContent = `${a.signal} / ${a.detector}`;
  item.children[2].textContent = `${a.model_version} · ${a.time}`;
  if (fresh) item.classList.add("new");
  list.prepend(item);
}

async function load(model) {
  if (state.source) state.source.close();
  state.model = model;
  history.replaceState(null, "", `?model=${encodeURIComponent(model)}`);
  const data = await getJSON(`/api/models/${encodeURIComponent(model)}`);
  state.points = data.series;
  state.alarms = data.alarms;
  state.versions = data.versions;
  document.getElementById("alarm-list").innerHTML = "";
  for (const a of data.alarms) addAlarm(a, false);
  drawMetrics(); drawDetectors(); drawVersions(); drawOpenAlarms(data.open_alarms);
  document.body.dataset.points = state.points.length;
  const after = state.points.length ? state.points[state.points.length - 1].id : "0-0";
  const source = new EventSource(`/events?model=${encodeURIComponent(model)}&after=${after}`);
  const live = document.getElementById("live");
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
  source.addEventListener("point", (e) => {
    state.points.push(JSON.parse(e.data));
    if (state.points.length > 720) state.points.shift();
    document.body.dataset.points = state.points.length;
    drawMetrics(); drawDetectors();
  });
  source.addEventListener("alarm", (e) => {
    const a = JSON.parse(e.data);
    state.alarms.push(a);
    addAlarm(a, true);
    drawDetectors();
  });
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    state.versions = s.versions;
    drawVersions(); drawOpenAlarms(s.open_alarms);
  });
  state.source = source;
}

async function main() {
  const select = document.getElementById("model");
  const models = await getJSON("/api/models");
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.model;
    option.textContent = m.open_alarms ? `${m.model} (${m.open_alarms} open)` : m.model;
    select.append(option);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  const first = wanted || (models[0] && models[0].model);
  if (!first) { document.getElementById("no-open").textContent = "no model has sent events yet"; return; }
  if (wanted && !models.some((m) => m.model === wanted)) {
    const option = document.createElement("option");
    option.value = option.textContent = wanted;
    select.append(option);
  }
  select.value = first;
  select.onchange = () => load(select.value);
  await load(first);
  document.body.dataset.ready = "1";
}

main().catch((err) => { document.body.dataset.error = String(err); console.error(err); });
