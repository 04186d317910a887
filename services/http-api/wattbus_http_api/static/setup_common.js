// Shared by the setup wizard and the advanced setup page: the API call (token in a header), typed
// inputs built from the field descriptions the API gives (/api/v1/setup "fields"), errors next to
// the field the API names, and the live value that tells six look-alike meters apart.
"use strict";
const $ = (id) => document.getElementById(id);
const ROLES_BY_KIND = { meter: ["grid"], inverter: ["pv"], gateway: ["pv"], string: ["pv"], battery: ["battery"],
                        charger: ["charger"], relay: ["relay"] };
const ROLE_LABELS = { none: "not used", grid: "grid meter", pv: "PV", battery: "home battery",
                      charger: "loadpoint (wallbox)", relay: "surplus load" };
// Words for enum values a person picks from (the key stays the value sent).
const CHOICE_WORDS = { pv: "PV only", minpv: "minimum + PV", now: "now (full power)", off: "off", auto: "automatic",
                       1: "1 phase", 3: "3 phases", stop: "stop charging", min_current: "hold the minimum current",
                       ride: "ride through shadows", raise: "count as surplus", always: "always", no_room: "when the battery is full",
                       response_topic: "MQTT v5 response topic", result_topic: "device result topic",
                       wall: "wall clock", readings: "reading timestamps", wattbus: "wattbus" };

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

// A 400 names the field as "$.min_current_a" (or "$.config.loadpoints.0.min_current_a"): show the
// message next to that field, else next to the role, else in the box's first error slot.
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

function watts(w) {
  return Math.abs(w) >= 1000 ? `${(w / 1000).toFixed(2)} kW` : `${Math.round(w)} W`;
}

// What a device reads now: power (a meter's sign spelled out), else a water or gas meter's volume.
function liveText(d) {
  const v = d.live;
  if (!v) return d.online === false ? "offline" : "no reading yet";
  const parts = [];
  if (v.power_w !== undefined) {
    const p = v.power_w;
    parts.push(d.kind === "meter" ? `${watts(Math.abs(p))} ${p < 0 ? "export" : "import"}` : watts(p));
  }
  if (v.soc_pct !== undefined) parts.push(`${Math.round(v.soc_pct)} %`);
  if (v.water_m3 !== undefined) parts.push(`${v.water_m3.toFixed(3)} m³ water`);
  if (v.gas_m3 !== undefined) parts.push(`${v.gas_m3.toFixed(3)} m³ gas`);
  if (v.age_s !== null && v.age_s > 30) parts.push(`${Math.round(v.age_s)} s old`);
  return parts.join(" · ") || "reading without power";
}

// One typed input from the API's description of a config field: enums as a select, numbers with
// the field's bounds, booleans as a checkbox; its label and help in words, an error slot beside it.
function typedField(f, value) {
  const id = "f-" + f.key + "-" + Math.random().toString(36).slice(2, 7);
  const wrap = el("div", { class: "field", "data-field": f.key });
  let input;
  if (f.input === "select") {
    input = el("select", { id, name: f.key });
    if (f.optional) input.append(el("option", { value: "" }, "default"));
    for (const c of f.choices) input.append(el("option", { value: String(c) }, CHOICE_WORDS[c] || String(c)));
  } else if (f.input === "number") {
    input = el("input", { id, name: f.key, type: "number", step: f.step, min: f.min ?? f.above, max: f.max ?? f.below,
                          inputmode: "decimal", placeholder: f.default ?? "default" });
  } else if (f.input === "checkbox") {
    input = el("input", { id, name: f.key, type: "checkbox" });
  } else {
    input = el("input", { id, name: f.key, type: "text", placeholder: f.default ?? "" });
  }
  input.dataset.input = f.input;
  const shown = value ?? (f.optional ? null : f.default);
  if (f.input === "checkbox") input.checked = Boolean(shown);
  else input.value = shown === null || shown === undefined ? "" : String(shown);
  wrap.append(el("label", { for: id }, f.label), input, el("span", { class: "error", "data-for": f.key }));
  if (f.help) wrap.append(el("p", { class: "help" }, f.help));
  wrap.field = f;
  return wrap;
}

// The values of typed fields as the API takes them (numbers as numbers, enum choices in their own
// type); an empty optional field is left out (the default, or the file's value, applies).
function readFields(box) {
  const body = {};
  for (const wrap of box.querySelectorAll(".field")) {
    const f = wrap.field;
    const input = wrap.querySelector("input, select");
    if (!f || !input || input.disabled) continue;
    if (f.input === "checkbox") { body[f.key] = input.checked; continue; }
    if (input.value === "") continue;
    if (f.input === "number") body[f.key] = Number(input.value);
    else if (f.input === "select") body[f.key] = f.choices.find((c) => String(c) === input.value) ?? input.value;
    else body[f.key] = input.value;
  }
  return body;
}
