// wattbus advanced setup page (the wizard is /ui/setup): roles, devices found or added by hand,
// every controller setting. Every change goes through /api/v1/setup (validated by the service that
// uses it); errors show next to their field. Helpers (call, typedField, ...) are in setup_common.js.
"use strict";
let help = {};
let fields = {};
const PATH_KEY = /(^|_)(file|files|dir|dirs|path|paths)$/;  // the http-api refuses new paths (setup_guard)

function select(name, options, value, text) {
  const s = el("select", { name });
  for (const [v, text] of options) {
    const o = el("option", { value: String(v) }, text);
    if (String(v) === String(value)) o.selected = true;
    s.append(o);
  }
  const label = el("label", {}, text + " ");
  label.append(s);
  const wrap = el("div");
  wrap.append(label, el("span", { class: "error", "data-for": name }));
  return wrap;
}

function deviceRow(d) {
  const box = el("div", { class: "dev", "data-ref": d.ref, "data-role": d.role });
  const who = el("div", { class: "who" });
  who.append(el("strong", {}, d.ref), el("span", { class: "muted" },
    [d.kind, d.manufacturer, d.model, d.serial && "serial " + d.serial].filter(Boolean).join(" · ")),
    el("span", { class: "live", "data-live": d.ref }, liveText(d)));
  const roles = ["none", ...(ROLES_BY_KIND[d.kind] || [])];
  const roleSel = select("role", roles.map((r) => [r, ROLE_LABELS[r]]), d.role, "Role");
  // The loadpoint's and relay's inputs as the API describes them (typed, bounded, in words).
  const known = d.role === "none" ? {} : d;
  const shown = { ...known, loadpoint_id: d.id || d.device_id };
  const charger = el("div", { class: "extra", "data-extra": "charger" });
  charger.append(...(fields.loadpoint || []).map((f) => typedField(f, shown[f.key])));
  const relay = el("div", { class: "extra", "data-extra": "relay" });
  relay.append(...(fields.relay || []).map((f) => typedField(f, known[f.key])));
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
  if (scope && role !== "grid") Object.assign(body, readFields(scope));
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
    if (action === "adopt" && a.state !== "found") continue;  // already read by its bridge (or ignored)
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

async function loadController(hasGrid) {
  const form = $("controller");
  const { ok, doc } = await call("GET", "/api/v1/setup/sections/surplus-controller");
  if (!ok || !hasGrid) return;  // the controller's settings once [site] has a grid meter
  const values = doc.values;
  form.replaceChildren();
  for (const f of fields["surplus-controller"] || []) {
    // set by the roles above; lists are edited there too
    if (f.key === "grid_meter" || f.key === "battery" || f.input === "none") continue;
    const wrap = typedField(f, values[f.key]);
    const field = wrap.querySelector("input, select");
    const override = (doc.overrides || {})[f.key];
    if (override) {
      // The environment wins over the file: show what runs, where it comes from, and keep the file's value.
      field.disabled = true;
      field.value = String(override.value);
      wrap.dataset.override = override.env;
      wrap.append(el("p", { class: "help override" }, override.note));
    } else if (PATH_KEY.test(f.key)) {
      // Paths are not settable over HTTP (a web page must not point a service at any file).
      field.disabled = true;
      field.value = values[f.key] ?? f.default ?? "";
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
    // An emptied field goes back to its default; a disabled one (environment, path) keeps the file's value.
    for (const f of form.querySelectorAll(".field input:not(:disabled), .field select:not(:disabled)")) delete body[f.name];
    Object.assign(body, readFields(form));
    const res = await call("PUT", "/api/v1/setup/sections/surplus-controller", body);
    if (res.ok) { result.textContent = "saved · " + appliedText(res.doc.applied); result.dataset.result = "ok"; }
    else { result.dataset.result = "error"; showError(form, res.doc); }
  };
}

async function load() {
  const { ok, doc } = await call("GET", "/api/v1/setup");
  if (!ok) { $("problems").textContent = doc.error; return; }
  help = doc.help || {};
  fields = doc.fields || {};
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
  showForms(doc.forms || [], doc.not_running || []);
  await loadController(Object.values(doc.roles || {}).some((r) => r.role === "grid"));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

// The manual-add forms the running bridges announced (each typed from the bridge's config Struct).
// The select is rebuilt only when the offer changes, so nothing a person is typing is replaced.
let manualForms = [];
function showForms(forms, notRunning) {
  const select = $("manual-protocol");
  const names = forms.map((f) => f.name).join(",");
  $("manual-missing").textContent = (forms.length ? "" : "No bridge is running, so none offers a device. ")
    + (notRunning.length ? `Not offered now (not running): ${notRunning.join(", ")}.` : "");
  if (names === manualForms.map((f) => f.name).join(",")) return;
  const chosen = select.value;
  manualForms = forms;
  select.replaceChildren(...forms.map((f) => el("option", { value: f.name }, `${f.title} · ${f.bridge}`)));
  if (forms.some((f) => f.name === chosen)) select.value = chosen;
  showFields();
}

function showFields() {
  const form = manualForms.find((f) => f.name === $("manual-protocol").value);
  $("manual-about").textContent = form ? form.about : "";
  $("manual-fields").replaceChildren(...(form ? form.fields.map(manualField) : []));
  $("manual-values").replaceChildren();
}

// A secret input (a device's password) is typed hidden, never filled in by the browser from elsewhere,
// and emptied once the device is saved: the API stores it write-only and never sends it back.
function manualField(f) {
  const wrap = typedField(f);
  if (f.input === "secret") Object.assign(wrap.querySelector("input"), { type: "password", autocomplete: "new-password" });
  return wrap;
}

function manualBody() {
  const body = { protocol: $("manual-protocol").value, values: readFields($("manual-fields")) };
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
    if (doc.applied) {
      form.querySelectorAll("input[data-input=secret]").forEach((i) => { i.value = ""; });
      await load();
    }
  } else {
    result.textContent = "";
    result.dataset.result = "error";
    showError(form, doc);
  }
}

$("manual").addEventListener("submit", (event) => { event.preventDefault(); manualSend("/api/v1/setup/devices", "added"); });
$("manual-check").addEventListener("click", () => manualSend("/api/v1/setup/probe", "read"));
$("manual-protocol").addEventListener("change", showFields);

load();
// Until devices show up (a bridge just started), look again; after that only actions reload,
// so nothing a person is typing or an error shown next to a field gets replaced under them.
const waiting = setInterval(() => {
  if (document.querySelector("#bus-devices .dev")) clearInterval(waiting); else load();
}, 3000);
