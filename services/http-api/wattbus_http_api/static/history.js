// wattbus web UI: energy per day/week/month/year with labelled axes, the day's power curve and the
// charging sessions, from the gateway's local history (/api/v1/history, /api/v1/sessions).
// Uses $ and el from app.js.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const BARS = [["pv_wh", "pv", "PV"], ["home_wh", "home", "Home"], ["ev_wh", "ev", "EV"],
              ["grid_import_wh", "grid", "Import"], ["grid_export_wh", "export", "Export"]];
const CURVES = [["pv_w", "pv"], ["grid_w", "grid"], ["home_w", "home"], ["ev_w", "ev"]];
const LEFT = 50, RIGHT = 384, TOP = 8, BOTTOM = 150;
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const view = { range: "day", date: null };

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function energyText(wh) {
  if (wh === null || wh === undefined) return "–";
  return Math.abs(wh) >= 1000 ? (wh / 1000).toFixed(Math.abs(wh) >= 100000 ? 0 : 1) + " kWh" : Math.round(wh) + " Wh";
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  const min = Math.floor(s / 60);
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min`;
}

function kw(w) {
  return Math.abs(w) >= 1000 ? `${+(w / 1000).toFixed(1)} kW` : `${Math.round(w)} W`;
}

function money(value, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch (err) {  // a code the browser does not know
    return `${value.toFixed(2)} ${currency}`;
  }
}

// A round scale top: 1, 2 or 5 times a power of ten, at least the largest value.
function niceMax(value) {
  const v = Math.max(value, 1), p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((f) => f * p).find((x) => x >= v);
}

function xLabel(doc, i) {
  const label = doc.labels[i];
  if (doc.range === "day") return label.endsWith(":00") && Number(label.slice(0, 2)) % 6 === 0 ? label : null;
  const d = new Date(label + "T12:00:00");
  if (doc.range === "week") return `${WEEKDAYS[d.getDay()]} ${d.getDate()}`;
  if (doc.range === "month") return d.getDate() === 1 || d.getDate() % 5 === 0 ? String(d.getDate()) : null;
  return MONTHS[d.getMonth()];
}

function yAxis(axis, max, unit) {
  for (const f of [0, 0.5, 1]) {
    const y = BOTTOM - f * (BOTTOM - TOP);
    axis.append(svg("line", { x1: LEFT, x2: RIGHT, y1: y, y2: y, class: "gridline" }),
                svg("text", { x: LEFT - 4, y: y + 3, class: "y" }, unit(max * f)));
  }
}

function renderBars(doc) {
  const chart = $("history-chart");
  chart.dataset.range = doc.range;
  const n = doc.labels.length, slot = (RIGHT - LEFT) / n;
  const shown = doc.range === "day" ? BARS.slice(0, 4) : BARS;
  const max = niceMax(Math.max(...shown.flatMap(([k]) => doc.series[k])));
  const axis = svg("g", { class: "axis" }), bars = svg("g", { class: "bars" });
  yAxis(axis, max, energyText);
  const width = slot / (shown.length + (doc.range === "day" ? 0 : 1));
  for (let i = 0; i < n; i++) {
    shown.forEach(([key, cls, name], j) => {
      const value = doc.series[key][i], h = (value / max) * (BOTTOM - TOP);
      if (h <= 0) return;
      const rect = svg("rect", { x: (LEFT + i * slot + j * width).toFixed(2), y: (BOTTOM - h).toFixed(1),
                                 width: width.toFixed(2), height: h.toFixed(1), class: cls });
      rect.append(svg("title", {}, `${doc.labels[i]} ${name}: ${energyText(value)}`));
      bars.append(rect);
    });
    const label = xLabel(doc, i);
    if (label) axis.append(svg("text", { x: (LEFT + i * slot + (doc.range === "day" ? 0 : slot / 2)).toFixed(1),
                                         y: BOTTOM + 14, class: "x" }, label));
  }
  chart.replaceChildren(axis, bars);
}

function renderCurve(doc) {
  const box = $("power-curve");
  box.hidden = !doc.curve;
  if (!doc.curve) return;
  const c = doc.curve, start = new Date(doc.date + "T00:00:00").getTime() / 1000;
  const values = CURVES.flatMap(([k]) => c[k]).filter((v) => v !== null);
  const max = niceMax(Math.max(0, ...values.map(Math.abs)));
  const min = Math.min(0, ...values) < 0 ? -max : 0;
  const y = (v) => BOTTOM - ((v - min) / (max - min)) * (BOTTOM - TOP);
  const x = (t) => LEFT + ((t - start) / 86400) * (RIGHT - LEFT);
  const axis = svg("g", { class: "axis" });
  for (const f of [min, min === 0 ? max / 2 : 0, max]) {
    axis.append(svg("line", { x1: LEFT, x2: RIGHT, y1: y(f), y2: y(f), class: "gridline" }),
                svg("text", { x: LEFT - 4, y: y(f) + 3, class: "y" }, kw(f)));
  }
  for (const hour of [0, 6, 12, 18, 24]) {
    axis.append(svg("text", { x: x(start + hour * 3600), y: BOTTOM + 14, class: "x" },
                    `${String(hour).padStart(2, "0")}:00`));
  }
  const lines = CURVES.map(([key, cls]) => {
    let d = "", pen = "M";
    c.t.forEach((t, i) => {
      const v = c[key][i];
      if (v === null) { pen = "M"; return; }
      d += `${pen}${x(t + c.step_s / 2).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = "L";
    });
    // a lone point (one 5-minute mean between gaps) is drawn as a short dash, not nothing
    d = d.replace(/M(\S+ \S+) (?=M|$)/g, "M$1 h1.5 ");
    return svg("path", { d: d.trim(), class: cls });
  });
  box.replaceChildren(axis, ...lines);
}

// Which store answered (history_api.py): InfluxDB, or the local one and why not InfluxDB.
function sourceText(doc) {
  if (doc.source === "influxdb") return `from InfluxDB (${doc.influx})`;
  return doc.influx_problem ? `from the local store (InfluxDB unreachable: ${doc.influx_problem})` : "from the local store";
}

async function loadHistory() {
  const query = new URLSearchParams({ range: view.range });
  if (view.date) query.set("date", view.date);
  try {
    const res = await fetch("/api/v1/history?" + query);
    if (!res.ok) return;
    const doc = await res.json();
    view.date = doc.date;
    renderBars(doc);
    renderCurve(doc);
    const t = doc.totals_wh;
    $("history-title").textContent = doc.range === "day" ? doc.date : `${doc.first} – ${doc.end}`;
    $("history-totals").textContent = `PV ${energyText(t.pv_wh)} · home ${energyText(t.home_wh)} · EV ` +
      `${energyText(t.ev_wh)} · import ${energyText(t.grid_import_wh)} · export ${energyText(t.grid_export_wh)}`;
    $("history-source").textContent = sourceText(doc);
    $("history-problem").textContent = doc.problem || "";
    $("history-next").dataset.date = doc.next;
    $("history-prev").dataset.date = doc.previous;
    for (const b of document.querySelectorAll("#history-ranges button")) {
      b.classList.toggle("on", b.dataset.range === doc.range);
    }
  } catch (err) { /* the next round tries again */ }
}

async function loadSessions() {
  try {
    const res = await fetch("/api/v1/sessions?limit=20");
    if (!res.ok) return;
    const list = await res.json();
    $("sessions").querySelector("tbody").replaceChildren(...list.map((s) => {
      const row = el("tr", { "data-active": String(s.active) });
      const start = new Date(s.start);
      const kwh = (s.energy_wh / 1000).toFixed(s.energy_wh < 1000 ? 3 : 2) + " kWh";
      const when = start.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      for (const text of [when,
                          s.active ? `${duration(s.duration_s)} (charging)` : duration(s.duration_s), kwh,
                          s.pv_share === null ? "–" : Math.round(s.pv_share * 100) + " %",
                          s.cost === null ? "–" : money(s.cost, s.currency)]) {
        row.append(el("td", {}, text));
      }
      return row;
    }));
    $("sessions-empty").hidden = list.length > 0;
  } catch (err) { /* the next round tries again */ }
}

for (const b of document.querySelectorAll("#history-ranges button")) {
  b.addEventListener("click", () => { view.range = b.dataset.range; loadHistory(); });
}
for (const id of ["history-prev", "history-next"]) {
  $(id).addEventListener("click", () => { view.date = $(id).dataset.date; loadHistory(); });
}
loadHistory();
loadSessions();
setInterval(loadHistory, 60000);
setInterval(loadSessions, 30000);
