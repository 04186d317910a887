// wattbus web UI: live summary over server-sent events (with the gateway's verdict on how live it is),
// mode switch over the REST API.
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

function renderFlow(f, live) {
  const stale = new Set(live.stale_nodes);
  $("pv-w").textContent = watts(f.pv_w);
  $("grid-w").textContent = watts(f.grid_w);
  $("home-w").textContent = watts(f.home_w);
  $("battery-w").textContent = watts(f.battery_w);
  $("ev-w").textContent = watts(f.ev_w);
  $("battery-soc").textContent = f.battery_soc_pct === null ? "" : Math.round(f.battery_soc_pct) + " %";
  for (const node of ["pv", "grid", "battery", "ev", "home"]) {
    const g = $("node-" + node);
    const isStale = node === "home" ? stale.size > 0 : stale.has(node);
    g.classList.toggle("stale", isStale);
    const age = live.ages_s[node];
    g.dataset.age = age === null || age === undefined ? "" : String(Math.round(age));
  }
  // A value that is not current draws no moving flow. Paths are drawn towards the hub; "reverse"
  // animates away from it.
  const v = (node, value) => (stale.has(node) ? null : value);
  setLink("link-pv", v("pv", f.pv_w), false);
  setLink("link-grid", v("grid", f.grid_w), f.grid_w !== null && f.grid_w < 0);
  setLink("link-home", stale.size ? null : f.home_w, false);
  setLink("link-battery", v("battery", f.battery_w), f.battery_w !== null && f.battery_w > 0);
  setLink("link-ev", v("ev", f.ev_w), false);
}

const LIVE_TITLES = {
  stale: "Not live: some values are old",
  offline: "Not live: the gateway has lost its broker",
  lost: "Not live: no answer from the gateway",
};

// state: live | stale | offline (from the gateway) | lost (the page hears nothing from the gateway)
function renderLive(state, reasons, warnings) {
  const pill = $("connection"), banner = $("live-banner");
  pill.dataset.state = state;
  pill.textContent = state === "live" ? "live" : state === "lost" ? "no connection" : state;
  document.body.dataset.live = state;
  const items = [...reasons.map((r) => el("li", {}, r)), ...warnings.map((w) => el("li", { class: "warning" }, w))];
  banner.hidden = items.length === 0;
  banner.dataset.state = state;
  $("live-title").textContent = state === "live" ? "Live, but some devices fail" : LIVE_TITLES[state];
  $("live-reasons").replaceChildren(...items);
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
    card.classList.toggle("stale", !!lp.stale);
    if (lp.stale) card.append(el("p", { class: "alert" }, `as of ${Math.round(lp.age_s)} s ago: ${lp.stale_reason}`));
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
    if (d.error) li.append(el("span", { class: "error" }, d.error));
    else if (d.status === "stale" && d.age_s !== null) li.append(el("span", { class: "error" }, `no reading for ${d.age_s} s`));
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

// The gateway sends a summary at least every 5 s; this long without one means it is gone.
const SILENT_MS = 12000;
let lastSummary = 0;

function connect() {
  const source = new EventSource("/api/v1/events");
  source.addEventListener("summary", (event) => {
    const s = JSON.parse(event.data);
    lastSummary = Date.now();
    renderFlow(s.flow, s.live);
    renderLoadpoints(s.loadpoints);
    renderDevices(s.devices);
    renderLive(s.live.state, s.live.reasons, s.live.warnings);
    document.body.dataset.version = s.version;
  });
  source.onerror = () => renderLive("lost", ["the gateway (http-api) does not answer; retrying every few seconds"], []);
  setInterval(() => {
    const quiet = Date.now() - lastSummary;
    if (lastSummary && quiet > SILENT_MS && document.body.dataset.live !== "lost") {
      renderLive("lost", [`no update from the gateway for ${Math.round(quiet / 1000)} s`], []);
    }
  }, 1000);
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
