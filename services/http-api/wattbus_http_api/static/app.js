// wattbus web UI: live summary over server-sent events (with the gateway's verdict on how live it is);
// the loadpoint cards are in loadpoint.js, the history in history.js.
"use strict";
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

function renderDevices(list) {
  $("devices").replaceChildren(...list.map((d) => {
    const li = el("li", { "data-status": d.status, "data-ref": d.ref, title: d.ref });
    if (d.parent_id) li.classList.add("child");
    li.append(el("span", { class: "dot" }), el("span", { class: "name" }, `${d.name} `),
              el("span", { class: "muted" }, d.kind || ""));
    // A water or gas meter shows its total (m³); its power only when it has one.
    const volumes = [["water", d.water_m3], ["gas", d.gas_m3]].filter(([, v]) => v !== null && v !== undefined);
    if (d.kind === "vehicle") {  // a car: its state of charge, as its telematics last reported it
      li.append(el("span", { "data-field": "soc_pct" }, d.soc_pct === null || d.soc_pct === undefined ? "– %" : `${Math.round(d.soc_pct)} %`));
    } else if (d.power_w !== null && d.power_w !== undefined || volumes.length === 0) li.append(el("span", {}, watts(d.power_w)));
    for (const [what, v] of volumes) li.append(el("span", { class: "volume", "data-field": what + "_m3" }, `${what} ${v.toFixed(3)} m³`));
    if (d.error) li.append(el("span", { class: "error" }, d.error));
    else if (d.status === "stale" && d.age_s !== null) li.append(el("span", { class: "error" }, `no reading for ${d.age_s} s`));
    return li;
  }));
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
