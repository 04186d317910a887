"""The site: which device is what, stated once in `[site]` and read by every service that needs it.

    [site]
    grid = "goe-shelly-bridge/shelly-08f9e0e5a001-em"   # "<source>/<device_id>[:<field>]"
    pv = ["sunspec-bridge/fronius-34119777"]
    battery = ["giv-bridge/givenergy-sa2345g678-battery"]   # the controller follows the first

    [[site.loadpoints]]            # a charger the surplus-controller drives
    id = "garage"
    charger = "goe-shelly-bridge/goe-204571"
    max_current_a = 16
    breaker_a = 16

    [[site.relays]]                # a surplus load switched by a relay
    id = "heater"
    device = "goe-shelly-bridge/shelly-c45bbe6b1a2c"
    power_w = 2000

http-api draws the power flow from it and its setup wizard writes it, the surplus-controller
regulates on it, the influx-writer tags stored points with its roles: so the web UI, the control
and the history agree on which meter is the grid meter. An empty key means "found by kind"
(http-api's rule): the grid is the only meter without a parent, PV every inverter and gateway
without a parent, battery every battery without a parent, chargers every charger.

How each device is regulated (delays, allowances, battery use) is the controller's business and
stays in `[surplus-controller]`. The old places — `[http-api.site]`, `[http-api.setup.breakers]`
and the controller's `grid_meter`, `battery`, `loadpoints`, `relays` — are still read (load_site
says where they belong in a warning); given next to `[site]` they must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from .config import ConfigError, ConfigStruct, LoadedConfig, convert

SECTION = "site"
_SOURCE = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
DeviceRef = Annotated[str, Meta(
    pattern=rf"^{_SOURCE}/[A-Za-z0-9][A-Za-z0-9_.:-]*$",
    description='a device on the bus: "<source>/<device_id>", e.g. "goe-shelly-bridge/goe-204571"')]
# A DeviceRef whose device id has no ":"; after ":" the reading field the power flow uses (default power_w).
ReadingRef = Annotated[str, Meta(
    pattern=rf"^{_SOURCE}/[A-Za-z0-9][A-Za-z0-9_.-]*(:[a-z_0-9]+)?$",
    description='a device on the bus, optionally with the reading field to use: "<source>/<device_id>[:<field>]"')]
ItemId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                             description="a name of your choice (letters, digits, _ . : -), unique on the site")]
Amps = Annotated[float, Meta(ge=6, le=32, description="per phase, A (6-32: what chargers accept)")]
Seconds = Annotated[float, Meta(ge=0, description="seconds")]
Mode = Literal["off", "now", "minpv", "pv"]
# A loadpoint's fields the setup wizard asks too (http-api's RoleBody takes these and the defaults).
StartMode = Annotated[Mode, Meta(description="the mode until a person changes it (then the controller's state "
                                             "file wins)")]
Phases = Annotated[Literal["auto", 1, 3], Meta(description="auto: the controller switches 1p/3p")]
BreakerAmps = Annotated[float, Meta(ge=6, le=125, description="the circuit's breaker, A: max_current_a may not "
                                                              "exceed it")]


class Loadpoint(ConfigStruct, kw_only=True, omit_defaults=True):
    """`[[site.loadpoints]]`: a charger the surplus-controller drives, and its circuit."""

    id: ItemId
    charger: Annotated[DeviceRef, Meta(description="the charger's device")]
    mode: StartMode = "pv"
    priority: Annotated[int, Meta(description="higher is served first when loadpoints share the surplus")] = 0
    min_current_a: Amps = 6.0
    max_current_a: Amps = 16.0
    phases: Phases = "auto"
    voltage_v: Annotated[float, Meta(ge=100, le=260, description="phase voltage, V")] = 230.0
    breaker_a: BreakerAmps | None = None
    # The car: a device sending VehicleReadings, e.g. "generic-bridge/tesla"; its SoC feeds the plan.
    vehicle: Annotated[DeviceRef, Meta(description="the car at this loadpoint (its SoC feeds the charge "
                                                   "plan)")] | None = None
    vehicle_capacity_wh: Annotated[float, Meta(gt=0, description="the car's usable battery, Wh, when the "
                                                                 "vehicle reports none")] | None = None
    # The charge plan until a person sets one (then the controller's state file wins).
    plan_soc_pct: Annotated[int, Meta(ge=1, le=100, description="charge to this SoC, % ...")] | None = None
    plan_time: Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3])[0-5][0-9]$",
                                   description="... by this time, HHMM local time, every day (from the grid "
                                               "when the sun will not make it)")] | None = None
    plan_min_soc_pct: Annotated[int, Meta(ge=0, le=100, description="below this SoC charge at full "
                                                                    "power")] | None = None

    def __post_init__(self) -> None:
        if self.min_current_a > self.max_current_a:
            raise ValueError(f"loadpoint {self.id}: min_current_a {self.min_current_a:g} A is above "
                             f"max_current_a {self.max_current_a:g} A")
        if self.breaker_a is not None and self.max_current_a > self.breaker_a:
            raise ValueError(f"loadpoint {self.id}: max_current_a {self.max_current_a:g} A is above its circuit "
                             f"breaker (breaker_a {self.breaker_a:g} A)")


class Relay(ConfigStruct, kw_only=True, omit_defaults=True):
    """`[[site.relays]]`: a load the surplus-controller switches on a relay when there is surplus."""

    id: ItemId
    device: Annotated[DeviceRef, Meta(description="the relay's device")]
    channel: Annotated[int, Meta(ge=0, le=3, description="the relay channel on the device")] = 0
    power_w: Annotated[float, Meta(gt=0, description="what the load draws when on, W (used before it is metered)")]
    priority: Annotated[int, Meta(description="higher is served first; relays share what loadpoints leave")] = 0
    on_threshold_w: Annotated[float, Meta(description="switch on when the surplus exceeds power_w + this")] = 0.0
    off_threshold_w: Annotated[float, Meta(description="switch off when the import exceeds this")] = 0.0
    min_on_s: Seconds = 300.0
    min_off_s: Seconds = 300.0
    max_temperature_c: Annotated[float, Meta(description="off at this reported temperature")] | None = None


class SiteConfig(ConfigStruct, kw_only=True, omit_defaults=True):
    """`[site]`: which devices make up the house. Empty = found by kind."""

    grid: Annotated[ReadingRef, Meta(description="the grid meter (one per site)")] | None = None
    pv: Annotated[list[ReadingRef], Meta(description="inverters and gateways that make up PV")] = []
    battery: Annotated[list[ReadingRef], Meta(description="home batteries (the controller follows the first)")] = []
    chargers: Annotated[list[ReadingRef], Meta(description="chargers shown in the power flow that no loadpoint "
                                                           "drives (loadpoint chargers count anyway)")] = []
    loadpoints: Annotated[list[Loadpoint], Meta(description="chargers the surplus-controller drives "
                                                            "([[site.loadpoints]])")] = []
    relays: Annotated[list[Relay], Meta(description="loads the surplus-controller switches on relays "
                                                    "([[site.relays]])")] = []

    def __post_init__(self) -> None:
        for kind, ids in (("loadpoint", [lp.id for lp in self.loadpoints]), ("relay", [r.id for r in self.relays])):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"{kind} id {twice[0]!r} is used twice; ids name one {kind} each")

    @staticmethod
    def device(ref: str) -> str:
        """"source/device_id" without the optional ":field"."""
        source, _, rest = ref.partition("/")
        return f"{source}/{rest.split(':', 1)[0]}"

    def grid_device(self) -> str | None:
        return None if self.grid is None else self.device(self.grid)

    def battery_device(self) -> str | None:
        """The battery the controller follows (the first one named)."""
        return self.device(self.battery[0]) if self.battery else None

    def charger_refs(self) -> list[str]:
        """Every charger of the power flow: the listed ones, then the loadpoints' chargers."""
        listed = {self.device(ref) for ref in self.chargers}
        return [*self.chargers, *(lp.charger for lp in self.loadpoints if lp.charger not in listed)]

    def devices(self, role: str) -> frozenset[str]:
        """The devices named for pv, battery or chargers (without their field suffix)."""
        refs = self.charger_refs() if role == "chargers" else list(getattr(self, role))
        return frozenset(self.device(ref) for ref in refs)


# ------------------------------------------------------------------ the old places, still read

class _OldRoles(ConfigStruct, kw_only=True):
    grid: ReadingRef | None = None
    pv: list[ReadingRef] = []
    battery: list[ReadingRef] = []
    chargers: list[ReadingRef] = []


class _OldSetup(Struct, frozen=True, kw_only=True):
    breakers: dict[str, float] = {}


class _OldHttpApi(Struct, frozen=True, kw_only=True):
    # Only the old site keys: the rest of [http-api] is http-api's own to validate.
    site: _OldRoles = msgspec.field(default_factory=_OldRoles)
    setup: _OldSetup = _OldSetup()


class _OldController(Struct, frozen=True, kw_only=True):
    grid_meter: DeviceRef | None = None
    battery: DeviceRef | None = None
    loadpoints: list[dict[str, Any]] = []  # site keys and the controller's tuning, split below
    relays: list[Relay] = []


class _OldLoadpoints(Struct, frozen=True, kw_only=True):
    loadpoints: list[Loadpoint] = []


LOADPOINT_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(Loadpoint))


@dataclass
class SiteLoad:
    site: SiteConfig
    warnings: list[str] = field(default_factory=list)  # say each once at start-up


def _old_site(loaded: LoadedConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The site as the old places state it: SiteConfig keys -> value, and where each came from."""
    http = loaded.section("http-api", _OldHttpApi) if "http-api" in loaded.data else _OldHttpApi()
    ctl = loaded.section("surplus-controller", _OldController) if "surplus-controller" in loaded.data \
        else _OldController()
    out: dict[str, Any] = {}
    where: dict[str, str] = {}
    if http.site.grid and ctl.grid_meter and SiteConfig.device(http.site.grid) != ctl.grid_meter:
        raise ConfigError(f"config [surplus-controller] grid_meter = {ctl.grid_meter!r} and [http-api.site] grid = "
                          f"{http.site.grid!r} name different grid meters; a site has one: state it once as "
                          "[site] grid and remove both old keys")
    if http.site.grid or ctl.grid_meter:
        out["grid"] = http.site.grid or ctl.grid_meter
        where["grid"] = "[http-api.site] grid" if http.site.grid else "[surplus-controller] grid_meter"
    if http.site.pv:
        out["pv"], where["pv"] = list(http.site.pv), "[http-api.site] pv"
    batteries = [ctl.battery] if ctl.battery else []
    batteries += [b for b in http.site.battery if SiteConfig.device(b) != ctl.battery]
    if batteries:
        out["battery"] = batteries
        where["battery"] = " and ".join(w for w, given in (("[surplus-controller] battery", ctl.battery),
                                                           ("[http-api.site] battery", http.site.battery)) if given)
    parts = [{k: v for k, v in lp.items() if k in LOADPOINT_KEYS} for lp in ctl.loadpoints]
    for part in parts:
        if "breaker_a" not in part and str(part.get("id")) in http.setup.breakers:
            part["breaker_a"] = http.setup.breakers[str(part.get("id"))]
    if parts:
        sources = {"loadpoints": f"{loaded.path or 'defaults'}"}
        checked = convert("surplus-controller", {"loadpoints": parts}, _OldLoadpoints, sources).loadpoints
        out["loadpoints"] = msgspec.to_builtins(checked)
        where["loadpoints"] = "[[surplus-controller.loadpoints]]"
    lp_chargers = {str(p.get("charger")) for p in parts}
    chargers = [c for c in http.site.chargers if c not in lp_chargers]
    if chargers:
        out["chargers"], where["chargers"] = chargers, "[http-api.site] chargers"
    if ctl.relays:
        out["relays"], where["relays"] = msgspec.to_builtins(ctl.relays), "[[surplus-controller.relays]]"
    return out, where


def load_site(loaded: LoadedConfig) -> SiteLoad:
    """`[site]` of the loaded file (+ WATTBUS_SITE_* variables), the old places filling what it leaves
    open. A ConfigError names a bad key, or an old key that contradicts [site]."""
    new = loaded.section(SECTION, SiteConfig)
    old, where = _old_site(loaded)
    if not old:
        return SiteLoad(new)
    merged: dict[str, Any] = msgspec.to_builtins(new)
    moved, doubled = [], []
    for key, value in old.items():
        have = merged.get(key)
        if not have:
            merged[key] = value
            moved.append(where[key])
        elif msgspec.convert({key: have}, SiteConfig) != msgspec.convert({key: value}, SiteConfig):
            raise ConfigError(f"config [site] {key} = {have!r} disagrees with the old place {where[key]} = "
                              f"{value!r}: [site] is where the site lives now; remove the old key (or make "
                              "them equal)")
        else:
            doubled.append(where[key])
    site = convert(SECTION, merged, SiteConfig, dict.fromkeys(merged, "the old site keys"))
    warnings = []
    if moved:
        warnings.append(f"config: the site's devices are still stated in their old place ({', '.join(moved)}); "
                        "read for now, they belong in [site] (grid, pv, battery, chargers, [[site.loadpoints]], "
                        "[[site.relays]]): save the roles on the setup page once, or move the keys by hand")
    if doubled:
        warnings.append(f"config: {', '.join(doubled)} repeats what [site] says; remove the old key")
    return SiteLoad(site, warnings)


def site_config(loaded: LoadedConfig) -> SiteConfig:
    """The site of the loaded file; a ConfigError names a bad key (warnings: see load_site)."""
    return load_site(loaded).site
