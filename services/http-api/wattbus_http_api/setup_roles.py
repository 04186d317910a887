"""Device roles (grid meter, PV, battery, loadpoint charger, surplus relay) written into `[site]`
(wattbus.site), the one table http-api's power flow, the surplus-controller and the influx-writer
read; the controller's tuning a person sets in the wizard goes to `[surplus-controller.tuning.<id>]`.
The old places (`[http-api.site]`, `[http-api.setup.breakers]`, the controller's grid_meter,
battery, loadpoints, relays) are moved into `[site]` on the first role change. Pure functions on the
sections' plain data; the Structs validate after."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct
from wattbus.config import LoadedConfig
from wattbus.settings import ConfigFile
from wattbus.site import LOADPOINT_KEYS, Amps, BreakerAmps, ItemId, Loadpoint, Phases, StartMode, load_site

Role = Literal["grid", "pv", "battery", "charger", "relay", "none"]
_LOADPOINT: dict[str, Any] = {f.name: f.default for f in msgspec.structs.fields(Loadpoint)}

# The device kinds each role accepts (from the device's own meta on the bus).
ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "grid": ("meter",), "pv": ("inverter", "gateway", "string"), "battery": ("battery",),
    "charger": ("charger",), "relay": ("relay",), "none": (),
}
CONTROLLER = "surplus-controller"
HTTP_API = "http-api"
SITE = "site"
OLD_CONTROLLER_KEYS = ("grid_meter", "battery", "loadpoints", "relays")
TUNING = ("enable_threshold_w", "enable_delay_s", "disable_delay_s", "max_phase_switches_per_hour")
# what the wizard's loadpoint step asks, in this order
CHARGER_KEYS = ("loadpoint_id", "mode", "min_current_a", "max_current_a", "phases", "breaker_a", *TUNING)


class RoleBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """PUT /api/v1/setup/roles/{source}/{device_id}: what this device is in the house."""

    role: Role
    replace: bool = False  # grid: take over from the current grid meter (otherwise a duplicate is refused)
    # charger: the loadpoint it forms, its fields as [[site.loadpoints]] declares them (types, bounds,
    # descriptions and defaults from wattbus.site.Loadpoint: one definition for the file and the wizard)
    loadpoint_id: ItemId | None = None  # default: the device id
    mode: StartMode = _LOADPOINT["mode"]
    min_current_a: Amps = _LOADPOINT["min_current_a"]
    max_current_a: Amps = _LOADPOINT["max_current_a"]
    phases: Phases = _LOADPOINT["phases"]
    breaker_a: BreakerAmps | None = _LOADPOINT["breaker_a"]
    # charger tuning (None = keep what the file has; the controller's Struct checks the values)
    enable_threshold_w: float | None = None
    enable_delay_s: float | None = None
    disable_delay_s: float | None = None
    max_phase_switches_per_hour: int | None = None
    # relay: a surplus load
    relay_id: ItemId | None = None  # default: the device id
    power_w: Annotated[float, Meta(gt=0, le=50000)] | None = None
    priority: int = 0
    channel: Annotated[int, Meta(ge=0, le=3)] = 0


class RoleError(ValueError):
    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def check_body(body: RoleBody, kind: str | None, ref: str) -> None:
    allowed = ROLE_KINDS[body.role]
    if allowed and kind not in allowed:
        raise RoleError(f"{ref} is a {kind or 'device of unknown kind'}; the {body.role} role needs a "
                        f"{' or '.join(allowed)}", "$.role")
    if body.role == "charger":
        if body.min_current_a > body.max_current_a:
            raise RoleError(f"min_current_a {body.min_current_a:g} A is above max_current_a "
                            f"{body.max_current_a:g} A", "$.min_current_a")
        if body.breaker_a is not None and body.min_current_a > body.breaker_a:
            raise RoleError(f"min_current_a {body.min_current_a:g} A is above the circuit breaker "
                            f"({body.breaker_a:g} A): this circuit cannot charge at all", "$.min_current_a")
    if body.role == "relay" and body.power_w is None:
        raise RoleError("a surplus relay needs power_w: what the load draws when on", "$.power_w")


def effective_max_a(body: RoleBody, breaker_a: float | None = None) -> float:
    """What the controller may offer: the charger's maximum, capped by the circuit breaker (written
    as max_current_a, so the loadpoint never names a maximum above its breaker_a)."""
    breaker = body.breaker_a if breaker_a is None else breaker_a
    return body.max_current_a if breaker is None else min(body.max_current_a, breaker)


def migrate(sections: dict[str, dict[str, Any]], site_section: dict[str, Any]) -> dict[str, Any]:
    """The site as the file states it (old places included) as [site] data, and the old keys taken
    out of `sections` (changed in place; old loadpoint tuning moves to the controller's tuning table).
    A ConfigError (wattbus.site) names a bad or contradicting key."""
    present = {**{k: v for k, v in sections.items() if v}, **({SITE: site_section} if site_section else {})}
    loaded = LoadedConfig(present, None, {})  # the file alone: the environment is not written into it
    found = load_site(loaded)
    # Only when old places are in use is [site] rewritten from the merge (its keys as written otherwise).
    site: dict[str, Any] = msgspec.to_builtins(found.site) if found.warnings else copy.deepcopy(site_section)
    controller, own = sections.get(CONTROLLER, {}), sections.get(HTTP_API, {})
    tuning = controller.setdefault("tuning", {})
    for lp in controller.get("loadpoints", []):
        tuned = {k: v for k, v in lp.items() if k not in LOADPOINT_KEYS}
        if tuned and lp.get("id") not in tuning:
            tuning[str(lp.get("id"))] = tuned
    for key in OLD_CONTROLLER_KEYS:
        controller.pop(key, None)
    if not tuning:
        controller.pop("tuning")
    own.pop("site", None)
    own.get("setup", {}).pop("breakers", None)
    if own.get("setup") == {}:
        own.pop("setup")
    return site


def unassign(site: dict[str, Any], tuning: dict[str, Any], ref: str) -> None:
    """Take ref out of every role (a device has one role)."""
    if site.get("grid") and site["grid"].split(":", 1)[0] == ref:
        site.pop("grid")
    for key in ("pv", "battery", "chargers"):
        site[key] = [r for r in site.get(key, []) if r.split(":", 1)[0] != ref]
    site["loadpoints"] = [lp for lp in site.get("loadpoints", []) if lp.get("charger") != ref]
    site["relays"] = [r for r in site.get("relays", []) if r.get("device") != ref]
    for key in ("pv", "battery", "chargers", "loadpoints", "relays"):
        if not site.get(key):
            site.pop(key, None)
    kept = {lp.get("id") for lp in site.get("loadpoints", [])}
    for lp_id in [k for k in tuning if k not in kept]:
        tuning.pop(lp_id)


def assign(site: dict[str, Any], tuning: dict[str, Any], ref: str, body: RoleBody) -> None:
    """Write the role into [site] (and wizard tuning into the controller's table); changed in place."""
    grid = site.get("grid", "").split(":", 1)[0]
    if body.role == "grid" and grid and grid != ref:
        if not body.replace:
            raise RoleError(f"{grid} is already the grid meter (one per site); to use this meter instead, "
                            "send replace: true", "$.role")
        unassign(site, tuning, grid)
    if grid == ref and body.role != "grid" and (site.get("loadpoints") or site.get("relays")):
        raise RoleError(f"{ref} is the grid meter the controller regulates on; make another meter the grid "
                        "meter first (role grid, replace true)", "$.role")
    previous = {lp.get("id"): lp for lp in site.get("loadpoints", [])}
    by_charger = {lp.get("charger"): lp for lp in site.get("loadpoints", [])}
    previous_tuning = dict(tuning)
    unassign(site, tuning, ref)
    device_id = ref.split("/", 1)[1]
    if body.role in ("battery", "charger", "relay") and not site.get("grid"):
        raise RoleError("choose the grid meter first: the controller regulates on it", "$.role")
    if body.role == "grid":
        site["grid"] = ref
    elif body.role in ("pv", "battery"):
        site.setdefault(body.role, []).append(ref)  # the controller follows the first battery
    elif body.role == "charger":
        lp_id = body.loadpoint_id or device_id
        # Keys the wizard does not show (priority, voltage_v, ...) stay as they were.
        kept: dict[str, Any] = previous.get(lp_id) or by_charger.get(ref) or {}
        loadpoints = [lp for lp in site.get("loadpoints", []) if lp.get("id") != lp_id]
        breaker = body.breaker_a if body.breaker_a is not None else kept.get("breaker_a")
        entry = {**kept, "id": lp_id, "charger": ref, "mode": body.mode, "min_current_a": body.min_current_a,
                 "max_current_a": effective_max_a(body, breaker), "phases": body.phases}
        if breaker is not None:
            entry["breaker_a"] = breaker
        site["loadpoints"] = [*loadpoints, entry]
        given = {key: getattr(body, key) for key in TUNING if getattr(body, key) is not None}
        old_id = str(kept.get("id", lp_id))
        merged = {**previous_tuning.get(old_id, {}), **given}
        if merged:
            tuning[lp_id] = merged
    elif body.role == "relay":
        relay_id = body.relay_id or device_id
        relays = [r for r in site.get("relays", []) if r.get("id") != relay_id]
        relays.append({"id": relay_id, "device": ref, "power_w": body.power_w, "priority": body.priority,
                       "channel": body.channel})
        site["relays"] = relays


def roles_of(site: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ref -> {"role": ..., details} as [site] says now (hand edits included)."""
    out: dict[str, dict[str, Any]] = {}
    for key, role in (("pv", "pv"), ("battery", "battery"), ("chargers", "charger")):
        for ref in site.get(key, []):
            out[ref.split(":", 1)[0]] = {"role": role}
    for lp in site.get("loadpoints", []):
        out[lp["charger"]] = {"role": "charger", **{k: v for k, v in lp.items() if k != "charger"}}
    for relay in site.get("relays", []):
        out[relay["device"]] = {"role": "relay", **{k: v for k, v in relay.items() if k != "device"}}
    if site.get("grid"):
        out[site["grid"].split(":", 1)[0]] = {"role": "grid"}
    return out


def write_role(settings: ConfigFile, ref: str, kind: str | None, body: RoleBody) -> dict[str, Any]:
    """Check one role and write it into the settings (the caller saves the file): the sections
    changed, name -> validated config, [site] first. RoleError or ConfigError name what is wrong."""
    sections = {name: settings.section(name) for name in (CONTROLLER, HTTP_API)}
    before = copy.deepcopy(sections)
    site = migrate(sections, settings.section(SITE))
    lp_id = body.loadpoint_id or ref.split("/", 1)[1]
    stored = next((lp.get("breaker_a") for lp in site.get("loadpoints", [])
                   if lp.get("id") == lp_id or lp.get("charger") == ref), None)
    if body.role == "charger" and body.breaker_a is None and stored is not None:
        body.breaker_a = stored  # the breaker given earlier still limits the maximum
    check_body(body, kind, ref)
    controller = sections[CONTROLLER]
    tuning = controller.setdefault("tuning", {})
    assign(site, tuning, ref, body)
    if not tuning:
        controller.pop("tuning")
    out = {SITE: settings.put_section(SITE, site)}
    for name, data in sections.items():
        if data != before[name]:
            out[name] = settings.put_section(name, data)
    return out
