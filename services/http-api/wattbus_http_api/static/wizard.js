// The setup wizard: find -> identify (live values) -> roles -> loadpoint -> done, over /api/v1/setup.
// Each step saves through the same API as the advanced page (the services' Structs validate; a
// refusal names its field and is shown beside it). The step is in the URL (#roles) so Back works.
"use strict";
const STEPS = ["find", "identify", "roles", "loadpoint", "done"];
const PV_KINDS = ["inverter", "gateway", "string"];
const TUNING = ["enable_threshold_w", "enable_delay_s", "disable_delay_s", "max_phase_switches_per_hour"];
let overview = null;
let onBus = [];
let lastApplied = "";

const describe = (d) => [d.kind, d.manufacturer, d.model, d.serial && "serial " + d.serial].filter(Boolean).join(" · ");
const liveSpan = (d) => el("span", { class: "live", "data-live": d.ref }, liveText(d));

function show(step) {
  if (!STEPS.includes(step)) step = "find";
  for (const section of document.querySelectorAll("section.step")) section.hidden = section.dataset.step !== step;
  const at = STEPS.indexOf(step);
  for (const li of document.querySelectorAll("#steps li")) {
    const i = STEPS.indexOf(li.dataset.step);
    li.dataset.state = i < at ? "past" : i === at ? "now" : "later";
  }
  document.body.dataset.step = step;
  if (step === "roles") drawRoles();
  if (step === "loadpoint") drawLoadpoint();
  if (step === "done") drawDone();
}

function go(step) {
  if (location.hash !== "#" + step) location.hash = step; else show(step);
}

// ------------------------------------------------------------------ find and identify

function foundRow(a) {
  const box = el("div", { class: "dev", "data-found": a.device_id, "data-state": a.state });
  const who = el("div", { class: "who" });
  who.append(el("strong", {}, a.device_id), el("span", { class: "muted" },
    [a.protocol, a.manufacturer, a.model, a.address].filter(Boolean).join(" · ")));
  box.append(who);
  // A device its bridge already reads is not offered again: it is listed above, with its values.
  if (a.state === "found") {
    const adopt = el("button", { type: "button", "data-action": "adopt" }, "Adopt");
    adopt.addEventListener("click", async () => {
      adopt.disabled = true;
      const { ok, doc } = await call("POST", `/api/v1/setup/devices/${a.device_id}/adopt`);
      if (ok) await refresh(true); else { adopt.disabled = false; showError(box, doc); }
    });
    box.append(adopt);
  } else {
    box.append(el("span", { class: "pill", "data-tag": a.state }, a.state));
  }
  box.append(el("span", { class: "error" }));
  return box;
}

function deviceLine(d) {
  const box = el("div", { class: "dev", "data-ref": d.ref, "data-kind": d.kind || "" });
  const who = el("div", { class: "who" });
  const name = el("strong", {}, d.ref);
  who.append(name, liveSpan(d));
  box.append(who, el("span", { class: "muted" }, describe(d) + (d.role !== "none" ? ` · now: ${ROLE_LABELS[d.role]}` : "")));
  return box;
}

function drawFind() {
  const bus = onBus.filter((d) => !d.parent_id);
  if (bus.length) $("find-bus").replaceChildren(...bus.map(deviceLine));
  const found = overview.devices.discovered;
  if (found.length) $("find-found").replaceChildren(...found.map(foundRow));
  $("identify-list").replaceChildren(...(onBus.length ? onBus.map(deviceLine)
    : [el("p", { class: "muted" }, "no device on the bus yet")]));
}

// Only the values change under a person's eyes; choices they are making stay as they are.
function updateLive() {
  for (const d of onBus) {
    for (const span of document.querySelectorAll(`[data-live="${CSS.escape(d.ref)}"]`)) span.textContent = liveText(d);
  }
}

// ------------------------------------------------------------------ roles

function choice(d, type, name, checked) {
  const id = `${name}-${d.ref}`;
  const row = el("div", { class: "choice", "data-ref": d.ref });
  const input = el("input", { type, name, id, value: d.ref });
  input.checked = checked;
  const label = el("label", { for: id });
  label.append(el("strong", {}, d.ref), el("span", { class: "muted" }, describe(d)), liveSpan(d));
  row.append(input, label, el("span", { class: "error", "data-for": "role" }));
  return row;
}

function group(id, devices, type, role) {
  const box = $(id);
  box.querySelectorAll(".choice, p").forEach((n) => n.remove());
  if (!devices.length) box.append(el("p", { class: "muted" }, "none found"));
  for (const d of devices) box.append(choice(d, type, role, d.role === role));
  if (!box.querySelector(".error.group")) box.append(el("span", { class: "error group", "data-for": role }));
}

// A water or gas meter (volume, no power) cannot be the grid meter.
const powerMeter = (d) => d.kind === "meter" && !(d.live && d.live.power_w === undefined
  && (d.live.water_m3 !== undefined || d.live.gas_m3 !== undefined));

function drawRoles() {
  group("roles-grid", onBus.filter(powerMeter), "radio", "grid");
  group("roles-pv", onBus.filter((d) => PV_KINDS.includes(d.kind) && !d.parent_id), "checkbox", "pv");
  group("roles-battery", onBus.filter((d) => d.kind === "battery" && !d.parent_id), "checkbox", "battery");
}

async function putRole(ref, body, box) {
  const { ok, doc } = await call("PUT", `/api/v1/setup/roles/${ref}`, body);
  if (!ok) {
    showError(box.querySelector(`.choice[data-ref="${CSS.escape(ref)}"]`) || box, doc);
    return null;
  }
  return doc;
}

async function saveRoles() {
  const section = document.querySelector('section[data-step="roles"]');
  section.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  const result = $("roles-result");
  const grid = section.querySelector('input[name="grid"]:checked');
  if (!grid) {
    section.querySelector('.error[data-for="grid"]').textContent = "choose the meter at the grid connection";
    return;
  }
  result.dataset.result = "";
  result.textContent = "saving…";
  const changes = [];
  const current = onBus.find((d) => d.ref === grid.value);
  if (current.role !== "grid") changes.push([grid.value, { role: "grid", replace: true }, $("roles-grid")]);
  for (const role of ["pv", "battery"]) {
    for (const box of section.querySelectorAll(`input[name="${role}"]`)) {
      const d = onBus.find((x) => x.ref === box.value);
      if (box.checked && d.role !== role) changes.push([d.ref, { role }, $("roles-" + role)]);
      if (!box.checked && d.role === role) changes.push([d.ref, { role: "none" }, $("roles-" + role)]);
    }
  }
  for (const [ref, body, box] of changes) {
    const doc = await putRole(ref, body, box);
    if (!doc) { result.textContent = ""; result.dataset.result = "error"; return; }
    lastApplied = appliedText(doc.applied);
  }
  result.textContent = changes.length ? "saved · " + lastApplied : "unchanged";
  result.dataset.result = "ok";
  await refresh(true);
  go("loadpoint");
}

// ------------------------------------------------------------------ loadpoint

function drawFields(d) {
  const values = { ...d, loadpoint_id: d.id || d.device_id };
  if (d.role !== "charger") for (const k of Object.keys(values)) if (k !== "loadpoint_id") delete values[k];
  const all = (overview.fields.loadpoint || []).map((f) => typedField(f, values[f.key]));
  // The pv-mode fine tuning has good defaults: folded away, still sent when filled in.
  const tuning = el("details", { class: "tuning" });
  tuning.append(el("summary", {}, "fine tuning (optional)"), ...all.filter((w) => TUNING.includes(w.field.key)));
  $("lp-fields").replaceChildren(...all.filter((w) => !TUNING.includes(w.field.key)), tuning);
}

function drawLoadpoint() {
  const chargers = onBus.filter((d) => d.kind === "charger");
  group("lp-chargers", chargers, "radio", "charger");
  const chosen = chargers.find((d) => d.role === "charger") || chargers[0];
  if (!chosen) { $("lp-fields").replaceChildren(); return; }
  $("lp-chargers").querySelector(`input[value="${CSS.escape(chosen.ref)}"]`).checked = true;
  for (const input of $("lp-chargers").querySelectorAll("input")) {
    input.addEventListener("change", () => drawFields(onBus.find((x) => x.ref === input.value)));
  }
  drawFields(chosen);
}

async function saveLoadpoint() {
  const section = document.querySelector('section[data-step="loadpoint"]');
  section.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  const result = $("lp-result");
  const picked = section.querySelector('input[name="charger"]:checked');
  if (!picked) { section.querySelector('.error[data-for="charger"]').textContent = "choose the wallbox"; return; }
  result.dataset.result = "";
  result.textContent = "saving…";
  const { ok, doc } = await call("PUT", `/api/v1/setup/roles/${picked.value}`, { role: "charger", ...readFields($("lp-fields")) });
  if (!ok) {
    result.textContent = "";
    result.dataset.result = "error";
    // A field the API names gets the message; anything else (the grid meter missing) the wallbox choice.
    const field = (doc.where || "").replace(/^\$\./, "").split(".").pop();
    const slot = $("lp-fields").querySelector(`.error[data-for="${field}"]`);
    showError(slot ? $("lp-fields") : section.querySelector(`.choice[data-ref="${CSS.escape(picked.value)}"]`), doc);
    if (slot && slot.closest("details")) slot.closest("details").open = true;  // a tuning field: unfold it
    return;
  }
  lastApplied = appliedText(doc.applied) + (doc.note ? " · " + doc.note : "");
  result.textContent = "saved · " + lastApplied;
  result.dataset.result = "ok";
  await refresh(true);
  go("done");
}

// ------------------------------------------------------------------ done

function drawDone() {
  const rows = [["grid meter", "grid"], ["PV", "pv"], ["home battery", "battery"], ["loadpoint", "charger"]];
  const summary = $("summary");
  summary.replaceChildren();
  for (const [label, role] of rows) {
    const refs = onBus.filter((d) => d.role === role).map((d) => (role === "charger" ? `${d.id || d.device_id}: ` : "") + d.ref);
    summary.append(el("dt", {}, label), el("dd", { "data-role": role }, refs.join(", ") || "none"));
  }
  $("done-applied").textContent = lastApplied;
  controllerState();
}

// What the controller runs now: the loadpoints it publishes (it restarts to apply the saved file).
async function controllerState() {
  const { ok, doc } = await call("GET", "/api/v1/loadpoints");
  const box = $("done-controller");
  const wanted = onBus.filter((d) => d.role === "charger").map((d) => d.id || d.device_id);
  const running = ok ? doc.filter((lp) => wanted.includes(lp.loadpoint_id)) : [];
  box.dataset.state = running.length ? "running" : "waiting";
  box.textContent = running.length
    ? "The controller runs " + running.map((lp) => `${lp.loadpoint_id} (${CHOICE_WORDS[lp.mode] || lp.mode})`).join(", ")
    : wanted.length ? "waiting for the controller to take the loadpoint over…" : "no loadpoint: the controller has nothing to charge";
}

// ------------------------------------------------------------------ data

// Lists are drawn again only when their members change (a device appears, one gets adopted).
const members = () => (overview ? [...overview.devices.on_bus.map((d) => d.ref),
  ...overview.devices.discovered.map((a) => a.device_id + ":" + a.state)].join() : "");

async function refresh(full) {
  const { ok, doc } = await call("GET", full ? "/api/v1/setup" : "/api/v1/setup/devices");
  if (!ok) { $("problems").textContent = doc.error || "setup is not available"; return; }
  const before = members();
  if (full) {
    overview = doc;
    $("config-file").textContent = doc.config_file;
    $("problems").textContent = Object.values(doc.problems).join(" · ");
    document.body.dataset.firstRun = doc.first_run ? "1" : "0";
  } else {
    overview.devices = doc;
  }
  onBus = overview.devices.on_bus;
  if (full || before !== members()) drawFind();
  updateLive();
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

for (const b of document.querySelectorAll("[data-go]")) b.addEventListener("click", () => go(b.dataset.go));
$("roles-save").addEventListener("click", saveRoles);
$("lp-save").addEventListener("click", saveLoadpoint);
$("rescan").addEventListener("click", async () => {
  const { doc } = await call("POST", "/api/v1/discovery/rescan");
  $("rescan-result").textContent = doc.message || doc.status || doc.error || "";
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
refresh(true).then(() => show(location.hash.slice(1)));
// Live values every few seconds: what makes six meters tell apart while a kettle goes on and off.
setInterval(() => {
  if (overview) refresh(false);
  if (document.body.dataset.step === "done") controllerState();
}, 2500);
