// wattbus setup page: roles, devices found or added by hand, controller settings. Every change goes
// through /api/v1/setup (validated by the service that uses it); errors show next to their field.
"use strict";
const $ = (id) => document.getElementById(id);
const ROLES_BY_KIND = { meter: ["grid"], inverter: ["pv"], gateway: ["pv"], string: ["pv"], battery: ["battery"],
                        charger: ["charger"], relay: ["relay"] };
const ROLE_LABELS = { none: "not used", grid: "grid meter", pv: "PV", battery: "home battery",
                      charger: "loadpoint (wallbox)", relay: "surplus load" };
let help = {};
const PATH_KEY = /(^|_)(file|files|dir|dirs|path|paths)$/;  // the http-api refuses new paths (setup_guard)

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function call(method, path, body) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  const token = localStorage.getItem("wattbus-token");
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const doc = await res.json();
  // Changes and the config itself need the token (unless this browser's network is trusted);
  // it travels in a header, never in a cookie, so a page of another site cannot send it.
  if (res.status === 401) {
    const given = prompt("This needs the API token ([http-api] token):");
    if (given) { localStorage.setItem("wattbus-token", given); return call(method, path, body); }
  }
  return { status: res.status, ok: res.ok, doc };
}

// A 400 names the field as "$.min_current_a": show the message next to that field.
function showError(box, doc) {
  box.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  const field = (doc.where || "").replace(/^\$\./, "").split(".").pop();
  const slot = box.querySelector(`.error[data-for="${field}"]`) || box.querySelector('.error[data-for="role"]')
    || box.querySelector(".error");
  if (slot) slot.textContent = doc.error || doc.message || "refused";
}

function appliedText(applied) {
  if (!applied) return "";
  const parts = applied.status ? [applied] : Object.entries(applied).map(([k, v]) => ({ ...v, name: k }));
  return parts.map((a) => `${a.name || a.target || ""} ${a.status}${a.message ? ": " + a.message : ""}`).join(" · ");
}

function input(name, value, attrs) {
  const label = el("label", {}, name.replace(/_/g, " ") + " ");
  const field = el("input", { name, value: value ?? "", ...attrs });
  label.append(field);
  const wrap = el("div");
  wrap.append(label, el("span", { class: "error", "data-for": name }));
  if (help.loadpoint && help.loadpoint[name]) wrap.append(el("p", { class: "help" }, help.loadpoint[name]));
  return wrap;
}

function select(name, options, value) {
  const s = el("select", { name });
  for (const [v, text] of options) {
    const o = el("option", { value: String(v) }, text);
    if (String(v) === String(value)) o.selected = true;
    s.append(o);
  }
  const label = el("label", {}, name.replace(/_/g, " ") + " ");
  label.append(s);
  const wrap = el("div");
  wrap.append(label, el("span", { class: "error", "data-for": name }));
  return wrap;
}

function deviceRow(d) {
  const box = el("div", { class: "dev", "data-ref": d.ref, "data-role": d.role });
  const who = el("div", { class: "who" });
  who.append(el("strong", {}, d.ref), el("span", { class: "muted" },
    [d.kind, d.manufacturer, d.model, d.serial && "serial " + d.serial].filter(Boolean).join(" · ")));
  const roles = ["none", ...(ROLES_BY_KIND[d.kind] || [])];
  const roleSel = select("role", roles.map((r) => [r, ROLE_LABELS[r]]), d.role);
  const charger = el("div", { class: "extra", "data-extra": "charger" });
  charger.append(input("loadpoint_id", d.id || d.device_id),
                 select("mode", [["pv", "PV only"], ["minpv", "min + PV"], ["now", "now (full power)"], ["off", "off"]], d.mode || "pv"),
                 input("min_current_a", d.min_current_a ?? 6, { type: "number", step: "any" }),
                 input("max_current_a", d.max_current_a ?? 16, { type: "number", step: "any" }),
                 select("phases", [["auto", "auto"], [1, "1"], [3, "3"]], d.phases ?? "auto"),
                 input("breaker_a", d.breaker_a, { type: "number", step: "any", placeholder: "circuit breaker A" }),
                 ...["enable_threshold_w", "enable_delay_s", "disable_delay_s", "max_phase_switches_per_hour"].map(
                   (k) => input(k, d[k], { type: "number", step: "any", placeholder: "default" })));
  const relay = el("div", { class: "extra", "data-extra": "relay" });
  relay.append(input("power_w", d.power_w, { type: "number", step: "any" }), input("priority", d.priority ?? 0, { type: "number" }));
  const replace = el("label", { class: "extra muted", "data-extra": "grid" }, "replace the current grid meter ");
  replace.append(el("input", { type: "checkbox", name: "replace" }));
  const save = el("button", { type: "button", "data-save": d.ref }, "Save");
  const result = el("p", { class: "muted", "data-result": "" });
  const sync = () => {
    const role = roleSel.querySelector("select").value;
    box.dataset.role = role;
    for (const extra of box.querySelectorAll("[data-extra]")) extra.hidden = extra.dataset.extra !== role;
  };
  roleSel.querySelector("select").addEventListener("change", sync);
  save.addEventListener("click", () => saveRole(box, d.ref, result));
  box.append(who, roleSel, replace, charger, relay, save, result);
  sync();
  return box;
}

async function saveRole(box, ref, result) {
  const role = box.querySelector('select[name="role"]').value;
  const body = { role };
  const scope = box.querySelector(`[data-extra="${role}"]`);
  if (role === "grid") body.replace = box.querySelector('input[name="replace"]').checked;
  if (scope && role !== "grid") {
    for (const f of scope.querySelectorAll("input, select")) {
      if (f.value === "") continue;
      body[f.name] = f.type === "number" || (f.name === "phases" && f.value !== "auto") ? Number(f.value) : f.value;
    }
  }
  result.textContent = "saving…";
  const { ok, doc } = await call("PUT", `/api/v1/setup/roles/${ref}`, body);
  if (ok) {
    await load();  // roles elsewhere may have changed too (a replaced grid meter): draw them again
    const fresh = document.querySelector(`.dev[data-ref="${CSS.escape(ref)}"] [data-result]`) || result;
    fresh.textContent = "saved · " + appliedText(doc.applied);
    fresh.dataset.result = "ok";
  } else {
    result.textContent = "";
    result.dataset.result = "error";
    showError(box, doc);
  }
}

function foundRow(a) {
  const box = el("div", { class: "dev", "data-found": a.device_id, "data-state": a.state });
  const who = el("div", { class: "who" });
  who.append(el("strong", {}, a.device_id), el("span", { class: "muted" },
    [a.protocol, a.manufacturer, a.model, a.serial && "serial " + a.serial, a.address, a.state].filter(Boolean).join(" · ")));
  box.append(who);
  for (const action of ["adopt", "ignore"]) {
    if (action === "ignore" && !a.can_ignore) continue;
    const b = el("button", { type: "button", "data-action": action }, action);
    b.addEventListener("click", async () => {
      const { ok, doc } = await call("POST", `/api/v1/setup/devices/${a.device_id}/${action}`);
      if (ok) await load(); else showError(box, doc);
    });
    box.append(b);
  }
  box.append(el("span", { class: "error" }));
  return box;
}

async function loadController() {
  const form = $("controller");
  const { ok, doc } = await call("GET", "/api/v1/setup/sections/surplus-controller");
  if (!ok || !doc.values.grid_meter) return;
  const values = doc.values;
  form.replaceChildren();
  for (const [key, text] of Object.entries(help["surplus-controller"] || {})) {
    if (key === "grid_meter" || key === "battery") continue;  // set by the roles above
    const wrap = el("div");
    const label = el("label", {}, key.replace(/_/g, " ") + " ");
    const current = values[key];
    const override = (doc.overrides || {})[key];
    const field = el("input", { name: key, value: current ?? "", placeholder: "default",
                                "data-number": typeof current === "number" || /_(w|s|pct)$/.test(key) ? "1" : "" });
    label.append(field);
    wrap.append(label, el("span", { class: "error", "data-for": key }), el("p", { class: "help" }, text));
    if (override) {
      // The environment wins over the file: show what runs, where it comes from, and keep the file's value.
      field.disabled = true;
      field.value = String(override.value);
      wrap.dataset.override = override.env;
      wrap.append(el("p", { class: "help override" }, override.note));
    } else if (PATH_KEY.test(key)) {
      // Paths are not settable over HTTP (a web page must not point a service at any file).
      field.disabled = true;
      wrap.append(el("p", { class: "help override" }, "a file path: change it in the config file"));
    }
    form.append(wrap);
  }
  const save = el("button", { type: "submit", id: "controller-save" }, "Save controller settings");
  const result = el("p", { class: "muted", "data-result": "" });
  form.append(save, result);
  form.onsubmit = async (event) => {
    event.preventDefault();
    const body = { ...values };
    for (const f of form.querySelectorAll("input")) {
      if (f.disabled) continue;  // set by the environment: the file keeps its own value
      if (f.value === "") delete body[f.name];
      else body[f.name] = f.dataset.number && !Number.isNaN(Number(f.value)) ? Number(f.value) : f.value;
    }
    const res = await call("PUT", "/api/v1/setup/sections/surplus-controller", body);
    if (res.ok) { result.textContent = "saved · " + appliedText(res.doc.applied); result.dataset.result = "ok"; }
    else { result.dataset.result = "error"; showError(form, res.doc); }
  };
}

async function load() {
  const { ok, doc } = await call("GET", "/api/v1/setup");
  if (!ok) { $("problems").textContent = doc.error; return; }
  help = doc.help || {};
  $("config-file").textContent = doc.config_file;
  $("problems").textContent = Object.values(doc.problems).join(" · ");
  const overrides = Object.entries(doc.overrides || {}).flatMap(([section, keys]) =>
    Object.entries(keys).map(([key, o]) => `[${section}] ${key} = ${JSON.stringify(o.value)} from ${o.env}`));
  $("overrides").textContent = overrides.length
    ? "Set by the environment (editing the file will not change these): " + overrides.join(" · ") : "";
  document.body.dataset.firstRun = doc.first_run ? "1" : "0";
  const devices = doc.devices.on_bus.filter((d) => !d.parent_id);
  if (devices.length) $("bus-devices").replaceChildren(...devices.map(deviceRow));
  if (doc.devices.discovered.length) $("found-devices").replaceChildren(...doc.devices.discovered.map(foundRow));
  const protocols = $("manual-protocol");
  if (!protocols.options.length) for (const p of doc.protocols) protocols.append(el("option", { value: p }, p));
  await loadController();
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

function manualBody() {
  const body = { protocol: $("manual-protocol").value };
  if ($("manual-host").value) body.host = $("manual-host").value;
  if ($("manual-port").value) body.port = Number($("manual-port").value);
  if ($("manual-unit").value) body.unit_id = Number($("manual-unit").value);
  if ($("manual-serial").value) body.serial_port = $("manual-serial").value;
  if ($("manual-anyway").checked) body.save_anyway = true;
  return body;
}

// What the bridge read once: each device it found, with its values in SI units.
function showValues(probe) {
  const box = $("manual-values");
  box.replaceChildren();
  if (!probe || !probe.devices) return;
  for (const dev of probe.devices) {
    const card = el("div", { class: "dev", "data-probed": dev.device_id });
    card.append(el("strong", {}, dev.device_id), el("span", { class: "muted" },
      [dev.kind, dev.manufacturer, dev.model, dev.serial && "serial " + dev.serial].filter(Boolean).join(" · ")));
    const reading = (probe.readings || []).find((r) => r.device_id === dev.device_id);
    if (reading) {
      const list = el("ul", { class: "values" });
      for (const [k, v] of Object.entries(reading)) {
        if (v === null || typeof v === "object" || k === "device_id" || k === "kind") continue;
        list.append(el("li", { "data-key": k }, `${k.replace(/_/g, " ")}: ${v}`));
      }
      card.append(list);
    }
    box.append(card);
  }
}

async function manualSend(path, verb) {
  const form = $("manual");
  const result = form.querySelector("[data-result]");
  form.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  result.dataset.result = "";
  result.textContent = "asking the bridge to read it…";
  $("manual-values").replaceChildren();
  const { ok, doc } = await call("POST", path, manualBody());
  showValues(doc.probe);
  if (ok) {
    const applied = doc.applied ? " · " + appliedText(doc.applied) : "";
    result.textContent = `${verb} (${doc.bridge}): ${doc.probe ? doc.probe.message : doc.problem || ""}${applied}`;
    result.dataset.result = "ok";
    if (doc.applied) await load();
  } else {
    result.textContent = "";
    result.dataset.result = "error";
    showError(form, doc);
  }
}

$("manual").addEventListener("submit", (event) => { event.preventDefault(); manualSend("/api/v1/setup/devices", "added"); });
$("manual-check").addEventListener("click", () => manualSend("/api/v1/setup/probe", "read"));

load();
// Until devices show up (a bridge just started), look again; after that only actions reload,
// so nothing a person is typing or an error shown next to a field gets replaced under them.
const waiting = setInterval(() => {
  if (document.querySelector("#bus-devices .dev")) clearInterval(waiting); else load();
}, 3000);
