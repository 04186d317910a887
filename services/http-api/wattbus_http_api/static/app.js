// wattbus web UI: live summary over server-sent events, mode switch over the REST API.
"use strict";
const MODES = ["off", "now", "minpv", "pv"];
const MODE_LABELS = { off: "Off", now: "Now", minpv: "Min+PV", pv: "PV" };
const $ = (id) => document.getElementById(id);

function watts(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  return a >= 1000 ? (v / 1000).toFixed(a >= 10000 ? 1 : 2) + " kW" : Math.round(v) + " W";
}

function setLink(id, value, reverse) {
  const path = $(id);
  const active = value !== null && value !== undefined && Math.abs(value) >= 5;
  path.classList.toggle("active", active);
  path.classList.toggle("reverse", active && reverse);
}

function renderFlow(f) {
  $("pv-w").textContent = watts(f.pv_w);
  $("grid-w").textContent = watts(f.grid_w);
  $("home-w").textContent = watts(f.home_w);
  $("battery-w").textContent = watts(f.battery_w);
  $("ev-w").textContent = watts(f.ev_w);
  $("battery-soc").textContent = f.battery_soc_pct === null ? "" : Math.round(f.battery_soc_pct) + " %";
  // Paths are drawn towards the hub; "reverse" animates away from it.
  setLink("link-pv", f.pv_w, false);
  setLink("link-grid", f.grid_w, f.grid_w !== null && f.grid_w < 0);
  setLink("link-home", f.home_w, false);
  setLink("link-battery", f.battery_w, f.battery_w !== null && f.battery_w > 0);
  setLink("link-ev", f.ev_w, false);
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderLoadpoints(list) {
  const box = $("loadpoints");
  if (!list.length) return;
  box.replaceChildren(...list.map((lp) => {
    const card = el("div", { class: "lp", id: "lp-" + lp.loadpoint_id });
    const row = el("div", { class: "row" });
    row.append(el("strong", {}, lp.loadpoint_id),
               el("span", { id: "lp-" + lp.loadpoint_id + "-mode", "data-mode": lp.mode }, MODE_LABELS[lp.mode] || lp.mode));
    const modes = el("div", { class: "modes", role: "group" });
    for (const mode of MODES) {
      const b = el("button", { type: "button", "data-lp": lp.loadpoint_id, "data-mode": mode }, MODE_LABELS[mode]);
      if (mode === lp.mode) b.classList.add("on");
      b.addEventListener("click", () => switchMode(lp.loadpoint_id, mode, b));
      modes.append(b);
    }
    const info = el("div", { class: "row muted" });
    info.append(el("span", {}, (lp.charging ? "charging " : "not charging ") + watts(lp.power_w)),
                el("span", {}, lp.set_current_a ? `${lp.set_current_a} A · ${lp.phases || "?"}p` : ""),
                el("span", {}, lp.surplus_w === null ? "" : "surplus " + watts(lp.surplus_w)));
    card.append(row, modes, info);
    if (lp.alert) card.append(el("p", { class: "alert" }, lp.alert));
    else if (lp.reason) card.append(el("p", { class: "muted" }, lp.reason));
    return card;
  }));
}

async function switchMode(lp, mode, button) {
  const status = $("command-status");
  button.disabled = true;
  status.textContent = `switching ${lp} to ${MODE_LABELS[mode]}…`;
  try {
    const headers = { "Content-Type": "application/json" };
    const token = localStorage.getItem("wattbus-token");
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(`/api/v1/loadpoints/${encodeURIComponent(lp)}/mode`,
                            { method: "PUT", headers, body: JSON.stringify({ mode }) });
    const body = await res.json();
    if (res.status === 401) {
      const given = prompt("This needs the API token ([http-api] token):");
      if (given) { localStorage.setItem("wattbus-token", given); return switchMode(lp, mode, button); }
    }
    status.textContent = res.ok ? `${lp}: ${MODE_LABELS[mode]} (${body.status})`
                                : `${lp}: ${body.status || res.status} – ${body.message || body.error || ""}`;
    status.dataset.result = body.status || String(res.status);
  } catch (err) {
    status.textContent = "request failed: " + err;
  } finally {
    button.disabled = false;
  }
}

function renderDevices(list) {
  $("devices").replaceChildren(...list.map((d) => {
    const li = el("li", { "data-status": d.status, "data-ref": d.ref, title: d.ref });
    if (d.parent_id) li.classList.add("child");
    li.append(el("span", { class: "dot" }), el("span", { class: "name" }, `${d.name} `),
              el("span", { class: "muted" }, d.kind || ""), el("span", {}, watts(d.power_w)));
    return li;
  }));
}

async function loadEnergy() {
  try {
    const res = await fetch("/api/v1/energy/today");
    if (!res.ok) return;
    const doc = await res.json();
    const svg = $("energy");
    const n = doc.series.pv_wh.length, w = 384 / n;
    const keys = [["pv_wh", "var(--pv)"], ["home_wh", "var(--home)"], ["ev_wh", "var(--ev)"], ["grid_import_wh", "var(--grid)"]];
    const max = Math.max(1, ...keys.flatMap(([k]) => doc.series[k]));
    const bars = [];
    for (let i = 0; i < n; i++) {
      keys.forEach(([k, color], j) => {
        const h = (doc.series[k][i] / max) * 140;
        if (h > 0) bars.push(`<rect x="${(i * w + j * w / 4).toFixed(2)}" y="${(148 - h).toFixed(1)}" width="${(w / 4).toFixed(2)}" height="${h.toFixed(1)}" fill="${color}"/>`);
      });
    }
    svg.innerHTML = bars.join("");
    const t = doc.totals_wh;
    $("energy-totals").textContent = `PV ${(t.pv_wh / 1000).toFixed(1)} kWh · home ${(t.home_wh / 1000).toFixed(1)} kWh`;
  } catch (err) { /* the next round tries again */ }
}

function connect() {
  const source = new EventSource("/api/v1/events");
  const pill = $("connection");
  source.addEventListener("summary", (event) => {
    const s = JSON.parse(event.data);
    renderFlow(s.flow);
    renderLoadpoints(s.loadpoints);
    renderDevices(s.devices);
    pill.dataset.state = "live";
    pill.textContent = "live";
    document.body.dataset.version = s.version;
  });
  source.onerror = () => { pill.dataset.state = "lost"; pill.textContent = "reconnecting"; };
}

// First run (no role anywhere in the config file yet): open the setup page instead.
// The setup overview shows the config: it needs the token (sent when this browser has one).
const setupToken = localStorage.getItem("wattbus-token");
fetch("/api/v1/setup", { headers: setupToken ? { Authorization: "Bearer " + setupToken } : {} })
  .then((r) => (r.ok ? r.json() : null)).then((d) => {
  if (d && d.first_run) location.assign("/ui/setup");
}).catch(() => { /* setup switched off or no file: stay on the live view */ });

connect();
loadEnergy();
setInterval(loadEnergy, 60000);
