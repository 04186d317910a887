"""Device roles (grid meter, PV, battery, loadpoint charger, surplus relay) written into the sections
that use them: `[surplus-controller]` (grid_meter, battery, loadpoints, relays) and `[http-api.site]`
(the power flow). Pure functions on the sections' plain data; the services' Structs validate after."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct
from wattbus import messages as m

Role = Literal["grid", "pv", "battery", "charger", "relay", "none"]
ItemId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]

# The device kinds each role accepts (from the device's own meta on the bus).
ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "grid": ("meter",), "pv": ("inverter", "gateway", "string"), "battery": ("battery",),
    "charger": ("charger",), "relay": ("relay",), "none": (),
}
CONTROLLER = "surplus-controller"
TUNING = ("enable_threshold_w", "enable_delay_s", "disable_delay_s", "max_phase_switches_per_hour")
# what the wizard's loadpoint step asks, in this order
CHARGER_KEYS = ("loadpoint_id", "mode", "min_current_a", "max_current_a", "phases", "breaker_a", *TUNING)


class RoleBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """PUT /api/v1/setup/roles/{source}/{device_id}: what this device is in the house."""

    role: Role
    replace: bool = False  # grid: take over from the current grid meter (otherwise a duplicate is refused)
    # charger: the loadpoint it forms (m.ChargeCurrent: the contract's 6-32 A per phase)
    loadpoint_id: ItemId | None = None  # default: the device id
    mode: m.LoadpointMode = "pv"
    min_current_a: m.ChargeCurrent = 6.0
    max_current_a: m.ChargeCurrent = 16.0
    phases: Literal["auto", 1, 3] = "auto"
    breaker_a: Annotated[float, Meta(ge=6, le=125)] | None = None  # the circuit's breaker: max current <= this
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


def effective_max_a(body: RoleBody) -> float:
    """What the controller may offer: the charger's maximum, capped by the circuit breaker. The
    controller reads only `max_current_a` (it has no breaker key), so the cap is written there."""
    if body.breaker_a is None:
        return body.max_current_a
    return min(body.max_current_a, body.breaker_a)


def breaker_problem(controller: dict[str, Any], breakers: dict[str, Any]) -> RoleError | None:
    """A loadpoint set (by hand or REST) to more than the breaker the wizard knows for its circuit."""
    for index, lp in enumerate(controller.get("loadpoints", [])):
        limit, wanted = breakers.get(str(lp.get("id"))), lp.get("max_current_a", 16.0)
        if isinstance(limit, int | float) and isinstance(wanted, int | float) and wanted > limit:
            return RoleError(f"loadpoint {lp.get('id')}: max_current_a {wanted:g} A is above its circuit breaker "
                             f"({limit:g} A, [http-api.setup.breakers])", f"$.loadpoints.{index}.max_current_a")
    return None


def unassign(controller: dict[str, Any], site: dict[str, Any], ref: str) -> None:
    """Take ref out of every role (a device has one role)."""
    if controller.get("grid_meter") == ref:
        controller.pop("grid_meter")
    if controller.get("battery") == ref:
        controller.pop("battery")
    controller["loadpoints"] = [lp for lp in controller.get("loadpoints", []) if lp.get("charger") != ref]
    controller["relays"] = [r for r in controller.get("relays", []) if r.get("device") != ref]
    if site.get("grid") == ref:
        site.pop("grid")
    for key in ("pv", "battery", "chargers"):
        site[key] = [r for r in site.get(key, []) if r.split(":", 1)[0] != ref]
    for key in ("loadpoints", "relays", "pv", "battery", "chargers"):
        container = controller if key in ("loadpoints", "relays") else site
        if not container.get(key):
            container.pop(key, None)


def assign(controller: dict[str, Any], site: dict[str, Any], breakers: dict[str, Any], ref: str,
           body: RoleBody) -> None:
    """Write the role into the sections' data (which are changed in place)."""
    grid = controller.get("grid_meter") or site.get("grid")
    if body.role == "grid" and grid and grid != ref:
        if not body.replace:
            raise RoleError(f"{grid} is already the grid meter (one per site); to use this meter instead, "
                            "send replace: true", "$.role")
        unassign(controller, site, grid)
    if grid == ref and body.role != "grid" and controller:
        raise RoleError(f"{ref} is the grid meter the controller regulates on; make another meter the grid "
                        "meter first (role grid, replace true)", "$.role")
    previous_loadpoints = list(controller.get("loadpoints", []))
    unassign(controller, site, ref)
    device_id = ref.split("/", 1)[1]
    if body.role in ("battery", "charger", "relay") and not grid:
        raise RoleError("choose the grid meter first: the controller regulates on it", "$.role")
    if body.role == "grid":
        controller["grid_meter"] = site["grid"] = ref
    elif body.role == "pv":
        site.setdefault("pv", []).append(ref)
    elif body.role == "battery":
        controller.setdefault("battery", ref)  # the controller follows one battery, the flow shows all
        site.setdefault("battery", []).append(ref)
    elif body.role == "charger":
        lp_id = body.loadpoint_id or device_id
        # Keys the wizard does not show (set by hand: import_allowance_wh, settle_s, ...) stay as they were.
        kept: dict[str, Any] = next(
            (lp for lp in previous_loadpoints if lp.get("id") == lp_id or lp.get("charger") == ref), {})
        loadpoints = [lp for lp in controller.get("loadpoints", []) if lp.get("id") != lp_id]
        tuning = {key: getattr(body, key) for key in TUNING if getattr(body, key) is not None}
        loadpoints.append({**kept, "id": lp_id, "charger": ref, "mode": body.mode,
                           "min_current_a": body.min_current_a, "max_current_a": effective_max_a(body),
                           "phases": body.phases, **tuning})
        controller["loadpoints"] = loadpoints
        site.setdefault("chargers", []).append(ref)
        if body.breaker_a is not None:
            breakers[lp_id] = body.breaker_a
    elif body.role == "relay":
        relay_id = body.relay_id or device_id
        relays = [r for r in controller.get("relays", []) if r.get("id") != relay_id]
        relays.append({"id": relay_id, "device": ref, "power_w": body.power_w, "priority": body.priority,
                       "channel": body.channel})
        controller["relays"] = relays


def roles_of(controller: dict[str, Any], site: dict[str, Any],
             breakers: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """ref -> {"role": ..., details} as the sections say now (hand edits included)."""
    out: dict[str, dict[str, Any]] = {}
    for ref in site.get("pv", []):
        out[ref.split(":", 1)[0]] = {"role": "pv"}
    for ref in site.get("battery", []):
        out[ref.split(":", 1)[0]] = {"role": "battery"}
    for ref in site.get("chargers", []):
        out[ref.split(":", 1)[0]] = {"role": "charger"}
    if controller.get("battery"):
        out[controller["battery"]] = {"role": "battery"}
    for lp in controller.get("loadpoints", []):
        out[lp["charger"]] = {"role": "charger", **{k: v for k, v in lp.items() if k != "charger"}}
        if breakers and lp.get("id") in breakers:
            out[lp["charger"]]["breaker_a"] = breakers[lp["id"]]
    for relay in controller.get("relays", []):
        out[relay["device"]] = {"role": "relay", **{k: v for k, v in relay.items() if k != "device"}}
    grid = controller.get("grid_meter") or site.get("grid")
    if grid:
        out[grid.split(":", 1)[0]] = {"role": "grid"}
    return out
