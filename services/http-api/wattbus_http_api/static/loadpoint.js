// wattbus web UI: the loadpoint cards (mode, session, power and current, current range, why (not)
// charging, the vehicle's SoC and the charge plan) and their writes over the REST API. Uses $, el
// and watts from app.js at call time.
"use strict";
const MODES = ["off", "now", "minpv", "pv"];
const MODE_LABELS = { off: "Off", now: "Now", minpv: "Min+PV", pv: "PV" };

function renderLoadpoints(list) {
  const box = $("loadpoints");
  if (!list.length) return;
  // The summary comes several times a second: rebuilding now would throw away what is being typed.
  if (box.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
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
    card.append(row, modes, ...loadpointDetails(lp), limitsEditor(lp), planEditor(lp));
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
  charging_by_plan: "charging by plan",
};

// "0700" (the contract's HHMM) as "07:00", and back.
const hhmm = (text) => (text ? `${text.slice(0, 2)}:${text.slice(2)}` : "");
const unHhmm = (text) => text.replace(":", "");

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
  if (lp.vehicle_id) {
    const soc = lp.vehicle_soc_pct === null || lp.vehicle_soc_pct === undefined ? "no SoC" : `${Math.round(lp.vehicle_soc_pct)} %`;
    rows.push(["vehicle", "Vehicle", `${lp.vehicle_id} · ${soc}`]);
  }
  if (lp.plan_status) {
    const target = lp.plan_soc_pct ? `${lp.plan_soc_pct} % by ${hhmm(lp.plan_time)}` : "";
    const minimum = lp.plan_min_soc_pct ? `min ${lp.plan_min_soc_pct} %` : "";
    const said = lp.plan_status.replace(/^plan: /, "");
    rows.push(["plan", "Plan", [[target, minimum].filter(Boolean).join(", "), said].filter(Boolean).join(" – ")]);
  }
  const list = el("dl", { class: "lp-details" });
  for (const [key, label, value] of rows) {
    list.append(el("dt", {}, label), el("dd", { id: `${id}-${key}`, "data-status": key === "status" ? lp.status || "" : "" }, value));
  }
  return [list];
}

// A loadpoint write through the REST API, with the token when this browser has one (asked for on 401).
async function sendLoadpoint(lp, what, body, doing, done, button) {
  const status = $("command-status");
  button.disabled = true;
  status.textContent = `${lp}: ${doing}…`;
  try {
    const headers = { "Content-Type": "application/json" };
    const token = localStorage.getItem("wattbus-token");
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(`/api/v1/loadpoints/${encodeURIComponent(lp)}/${what}`,
                            { method: "PUT", headers, body: JSON.stringify(body) });
    const answer = await res.json();
    if (res.status === 401) {
      const given = prompt("This needs the API token ([http-api] token):");
      if (given) { localStorage.setItem("wattbus-token", given); return sendLoadpoint(lp, what, body, doing, done, button); }
    }
    status.textContent = res.ok ? `${lp}: ${done} (${answer.status})`
                                : `${lp}: ${answer.status || res.status} – ${answer.message || answer.error || ""}`;
    status.dataset.result = answer.status || String(res.status);
  } catch (err) {
    status.textContent = "request failed: " + err;
  } finally {
    button.disabled = false;
  }
}

function switchMode(lp, mode, button) {
  return sendLoadpoint(lp, "mode", { mode }, `switching to ${MODE_LABELS[mode]}`, MODE_LABELS[mode], button);
}

const limitsOpen = new Set();  // loadpoints whose range editor is open (the card is rebuilt on updates)

// Min and max charge current, as the controller's SetLoadpointLimits takes them.
function limitsEditor(lp) {
  const id = lp.loadpoint_id, prefix = "lp-" + id;
  const box = el("details", { class: "limits-edit" });
  box.open = limitsOpen.has(id);
  box.addEventListener("toggle", () => (box.open ? limitsOpen.add(id) : limitsOpen.delete(id)));
  box.append(el("summary", {}, "Change the current range"));
  const input = (key, value, label) => {
    const field = el("input", { type: "number", min: "6", max: "32", step: "1", value: String(value),
                                id: `${prefix}-${key}-input`, inputmode: "numeric" });
    const wrap = el("label", {}, label);
    wrap.append(field);
    return [wrap, field];
  };
  const [minLabel, min] = input("min", lp.min_current_a, "min A");
  const [maxLabel, max] = input("max", lp.max_current_a, "max A");
  const set = el("button", { type: "button", id: `${prefix}-set-limits` }, "Set");
  const problem = el("span", { class: "error", id: `${prefix}-limits-problem` });
  set.addEventListener("click", () => {
    const low = Number(min.value), high = Number(max.value);
    problem.textContent = !(low >= 6 && high <= 32) ? "between 6 and 32 A" : low > high ? "min above max" : "";
    if (problem.textContent) return;
    sendLoadpoint(id, "limits", { min_current_a: low, max_current_a: high }, "setting the current range",
                  `${low}–${high} A`, set);
  });
  const row = el("div", { class: "limits-row" });
  row.append(minLabel, maxLabel, set, problem);
  box.append(row);
  return box;
}

const planOpen = new Set();  // loadpoints whose plan editor is open

// The charge plan, as the controller's SetLoadpointPlan takes it: target SoC by a time, a minimum SoC.
function planEditor(lp) {
  const id = lp.loadpoint_id, prefix = "lp-" + id;
  const box = el("details", { class: "limits-edit", id: `${prefix}-plan-edit` });
  box.open = planOpen.has(id);
  box.addEventListener("toggle", () => (box.open ? planOpen.add(id) : planOpen.delete(id)));
  box.append(el("summary", {}, "Set a charge plan"));
  const field = (key, label, attrs) => {
    const input = el("input", { id: `${prefix}-plan-${key}`, ...attrs });
    const wrap = el("label", {}, label);
    wrap.append(input);
    return [wrap, input];
  };
  const [socLabel, soc] = field("soc", "target %", { type: "number", min: "1", max: "100", step: "1",
    inputmode: "numeric", value: lp.plan_soc_pct ? String(lp.plan_soc_pct) : "" });
  const [timeLabel, time] = field("time", "by", { type: "time", value: hhmm(lp.plan_time) });
  const [minLabel, min] = field("min", "min %", { type: "number", min: "0", max: "100", step: "1",
    inputmode: "numeric", value: lp.plan_min_soc_pct ? String(lp.plan_min_soc_pct) : "" });
  const set = el("button", { type: "button", id: `${prefix}-set-plan` }, "Set");
  const clear = el("button", { type: "button", id: `${prefix}-clear-plan` }, "Clear");
  const problem = el("span", { class: "error", id: `${prefix}-plan-problem` });
  set.addEventListener("click", () => {
    const body = {};
    if (soc.value || time.value) {
      const target = Number(soc.value);
      problem.textContent = !(target >= 1 && target <= 100) ? "target between 1 and 100 %"
                          : !time.value ? "give the time to reach it" : "";
      body.soc_pct = target;
      body.time = unHhmm(time.value);
    }
    if (min.value) {
      const low = Number(min.value);
      if (!(low >= 0 && low <= 100)) problem.textContent = "min between 0 and 100 %";
      body.min_soc_pct = low;
    }
    if (!problem.textContent && !Object.keys(body).length) problem.textContent = "give a target and time, or a min";
    if (problem.textContent) return;
    const what = [body.soc_pct ? `${body.soc_pct} % by ${hhmm(body.time)}` : "", body.min_soc_pct ? `min ${body.min_soc_pct} %` : ""];
    sendLoadpoint(id, "plan", body, "setting the plan", what.filter(Boolean).join(", "), set);
  });
  clear.addEventListener("click", () => sendLoadpoint(id, "plan", {}, "clearing the plan", "no plan", clear));
  const row = el("div", { class: "limits-row" });
  row.append(socLabel, timeLabel, minLabel, set, clear, problem);
  box.append(row);
  return box;
}
