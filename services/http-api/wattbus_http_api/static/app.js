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
    card.append(row, modes, ...loadpointDetails(lp));
    card.classList.toggle("stale", !!lp.stale);
    if (lp.stale) card.append(el("p", { class: "alert" }, `as of ${Math.round(lp.age_s)} s ago: ${lp.stale_reason}`));
    if (lp.alert) card.append(el("p", { class: "alert" }, lp.alert));
    return card;
  }));
}

// The controller's one-word status, as a person reads it.
const STATUS_TEXT = {
  no_vehicle: "no car connected", vehicle_full: "car full", safe_state: "held safe", mode_off: "off",
  waiting_for_surplus: "waiting for surplus", waiting_delay: "waiting (start/stop delay)",
  waiting_import_window: "waiting for the import window", charging_now: "charging at full power",
  charging_at_minimum: "charging at minimum current", charging_from_surplus: "charging from surplus",
};

function sessionText(lp) {
  if (lp.session_duration_s === null || lp.session_duration_s === undefined) return "no session";
  const wh = lp.session_energy_wh;
  const energy = wh === null || wh === undefined ? "– kWh" : wh >= 1000 ? (wh / 1000).toFixed(2) + " kWh" : Math.round(wh) + " Wh";
  const min = Math.floor(lp.session_duration_s / 60);
  const time = min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min`;
  return `${energy} in ${time}`;
}

// Session, power and current, limits, and why (not) charging: label/value rows.
function loadpointDetails(lp) {
  const id = "lp-" + lp.loadpoint_id;
  const status = STATUS_TEXT[lp.status] || lp.status || (lp.charging ? "charging" : "not charging");
  const phases = lp.phases ? `${lp.phases} phase${lp.phases > 1 ? "s" : ""}` : "? phases";
  const rows = [
    ["status", "Status", status + (lp.reason ? ` – ${lp.reason}` : "")],
    ["session", "Session", sessionText(lp)],
    ["power", "Power", `${watts(lp.power_w)} · ${phases} · ${lp.set_current_a === null ? "–" : lp.set_current_a + " A"}`],
    ["limits", "Current range", `${lp.min_current_a}–${lp.max_current_a} A`],
  ];
  if (lp.surplus_w !== null && lp.surplus_w !== undefined) rows.push(["surplus", "Surplus", watts(lp.surplus_w)]);
  const list = el("dl", { class: "lp-details" });
  for (const [key, label, value] of rows) {
    list.append(el("dt", {}, label), el("dd", { id: `${id}-${key}`, "data-status": key === "status" ? lp.status || "" : "" }, value));
  }
  return [list];
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
