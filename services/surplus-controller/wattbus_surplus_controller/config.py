"""The controller's config section `[surplus-controller]` (see services/surplus-controller/embedded.toml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta
from wattbus.config import ConfigError, LoadedConfig, ServiceCommon, convert
from wattbus.site import LOADPOINT_KEYS, DeviceRef, Loadpoint, Relay, load_site

SECTION = "surplus-controller"

Seconds = Annotated[float, Meta(ge=0)]
Watts = Annotated[float, Meta(ge=0)]
WattHours = Annotated[float, Meta(ge=0)]  # energy, not power: the allowances and buffers
Soc = Annotated[float, Meta(ge=0, le=100)]


class LoadpointConfig(Loadpoint, kw_only=True):
    """A loadpoint as the controller runs it: the site's `[[site.loadpoints]]` entry (which charger,
    mode, currents, phases, breaker) and the controller's tuning for it (`[surplus-controller.tuning.<id>]`)."""

    # pv mode: start when the surplus covers the minimum power (+ threshold) for enable_delay_s
    enable_threshold_w: float = 0.0
    enable_delay_s: Seconds = 30.0
    # the enable delay after a stop in pv mode (each restart is a cycle); 60 s, evcc's enable delay:
    # on the measured broken days 120 s cost PV without saving cycles (docs/surplus.md)
    restart_delay_s: Seconds = 60.0
    # ... and stop once the import while at minimum exceeds import_allowance_wh or lasts disable_delay_s
    disable_delay_s: Seconds = 900.0
    import_allowance_wh: WattHours = 40.0
    allowance_refill_s: Seconds = 300.0  # the allowance refills at most this fast while there is surplus
    # the hard limit: grid import while charging in pv mode never exceeds window_allowance_wh in any
    # window of allowance_window_s; stop_lag_s is how long a cut takes to show at the meter (bridge
    # poll, charger response delay, ramp down), kept in reserve so the cut lands before the limit.
    # 60 Wh rather than the ride's 40: with 40 the reserve for a shadow right after going to 3p
    # kept the car on 1p in the sun after most rides; on the 25 measured broken days (no battery)
    # 60 Wh gave +1.7 % car share and fewer cycles at 0.49x the baseline's import (docs/surplus.md)
    window_allowance_wh: WattHours = 60.0
    allowance_window_s: Annotated[float, Meta(gt=0)] = 600.0
    stop_lag_s: Seconds = 8.0
    min_off_s: Seconds = 60.0  # after a stop, stay off at least this long (fewer on/off cycles)
    # raise only after the surplus held this long; cuts are immediate. 5 s (and raise_tau_s 5 s):
    # with 10 s the waits before each raise cost ~2 kWh car share on the 25 measured broken days
    raise_hold_s: Seconds = 5.0
    # with at least this much in the site's battery cloud buffer, round the current to the nearest
    # amp instead of down: the battery gives back the part of an amp it took from the surplus
    # before (0 = always round down)
    round_from_buffer_wh: WattHours = 20.0
    buffer_holds_phases: bool = True  # no 3p -> 1p by choice while the battery buffer carries a dip
    settle_s: Seconds = 20.0  # after a start or a phase switch the car needs time; hold decisions
    # automatic 1p <-> 3p
    # 120 s: with 180 s the car sat on 1p at 3.7 kW while 3p would have fit for 24 kWh of the 25
    # measured broken days; the faster way up is paid by the shorter 3p rides where 1p would do
    phase_up_delay_s: Seconds = 120.0
    phase_down_delay_s: Seconds = 300.0
    # hysteresis around the 3p minimum: max(phase_margin_w, phase_margin_pct of it) (iotic: 200 W, 10 %)
    phase_margin_w: Watts = 200.0
    phase_margin_pct: Annotated[float, Meta(ge=0, le=100)] = 10.0
    phase_dwell_s: Seconds = 300.0  # no switch by choice sooner than this after the last one
    # the surplus is smoothed (exponential average) before raising the current or choosing phases;
    # whole-amp cuts use the raw reading, smaller ones the average. iotic smooths grid power with
    # tau 10 s and PV with 120 s; 5 s here measured less import (sub-amp shortfalls follow sooner)
    # and more car share on every day type of the measured bench (docs/surplus.md)
    raise_tau_s: Seconds = 5.0
    phase_tau_s: Seconds = 120.0
    # 6: with 3 the car sat on 1p at 3.7 kW after most shadows of a broken day (3p went back up only
    # with two switches to spare); 6 still makes fewer switches+stops than evcc (docs/surplus.md)
    max_phase_switches_per_hour: Annotated[int, Meta(ge=0)] = 6
    # broken sky (see sky.py): charge on 1p while the surplus keeps dropping below the 3p minimum.
    # "1p_with_room": only while the home battery can take what 1p leaves of the sun (else that
    # part would be exported); "1p_when_full": only while the battery has no room (it can no longer
    # carry 3p shadows); "1p": always; "auto" (default): no special case. On 1p the sun above
    # 3.7 kW goes into the battery, not the car: the earlier simulated-sky benchmark's broken day
    # measured 72.8 % of the surplus into the car with "1p_with_room" against 80.3 % with "auto"
    broken_sky_phases: Literal["auto", "1p_with_room", "1p_when_full", "1p"] = "auto"
    sky_window_s: Annotated[float, Meta(gt=0)] = 1800.0
    # re-send a setting the charger still does not show after this long (a lost command); a refused
    # command is not repeated sooner than this either
    resync_s: Annotated[float, Meta(gt=0)] = 10.0
    # (the car at this loadpoint and its default charge plan are [[site.loadpoints]] keys: wattbus.site)
    charge_efficiency: Annotated[float, Meta(gt=0, le=1)] = 0.9  # AC energy that reaches the battery
    # finish this long before the plan's time: cars charge slower near full and readings lag
    plan_margin_s: Seconds = 1800.0


RelayConfig = Relay  # the site's relay entry is all the controller needs


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    # Every decision publishes each loadpoint's state (retained), and decisions come with each fresh
    # grid reading and, while it is stale, from the watchdog: a timer of its own had nothing to add.
    RETIRED: ClassVar[Mapping[str, str]] = {
        "state_interval_s": "unused: each decision publishes every loadpoint's state"}
    # one regulation; the key stays so existing config files still load (the benchmark's evcc-style
    # baseline lives in bench/evcc_baseline.py, not in the service)
    strategy: Literal["wattbus"] = "wattbus"
    clock: Literal["wall", "readings"] = "wall"  # "readings": simulated time from reading timestamps
    state_file: str = "/var/lib/wattbus/surplus-controller.json"
    residual_power_w: float = 0.0  # kept back from the surplus (+ = bias to export)
    # home battery: below priority_soc it charges first; above assist_soc it may feed the EV
    battery_priority_soc_pct: Soc = 0.0
    # default: above 30 % it may carry a charge ridden at minimum through a shadow with up to 500 W
    # ("ride"); on the earlier simulated-sky bench's broken day that kept 3p running instead of
    # stopping or switching (4 on/off, 9 phase switches against 7 and 12 without)
    battery_assist_soc_pct: Soc = 30.0
    battery_assist_w: Watts = 500.0
    # "ride": the assist only carries a running charge through shadows at its minimum (that battery
    # discharge is not booked as import); "raise": it counts as surplus, the car charges faster
    # from the battery (drains it: what evcc's bufferSoc does)
    battery_assist_use: Literal["ride", "raise"] = "ride"
    battery_max_charge_w: Watts = 3000.0  # reserved for the battery below battery_priority_soc_pct
    battery_room_soc_pct: Soc = 90.0  # below this the battery can take surplus a 1p car leaves
    # the battery as a buffer for clouds: what it charged from the surplus (up to battery_buffer_wh)
    # it may give back while a loadpoint rides a dip at minimum current, above battery_buffer_soc_pct;
    # that discharge does not count against the import allowance. 0 Wh: off (evcc has no such buffer).
    # less keeps more in the battery at a lower car share; 0 (with battery_assist_w = 0) measured
    # 0.97x the baseline's car share and 1.01x battery-neutral on measured broken days (docs/surplus.md)
    battery_buffer_wh: WattHours = 1000.0
    battery_buffer_soc_pct: Soc = 20.0
    # "no_room" (default): lend only while the battery is above battery_room_soc_pct. With room, what
    # the car does not take is stored, not lost: lending it to the car moves battery energy into the
    # car and uses no more PV (on the measured bench "always" took 42.7 kWh from the battery on 25
    # broken days for +3 % car share at -3 % battery-neutral share, and the battery's own lag booked
    # 2x the baseline's grid energy to the car); without room it would be exported, so then the car
    # takes it and the battery carries the shadows. "always": lend whenever the buffer holds energy
    battery_buffer_when: Literal["always", "no_room"] = "no_room"
    stale_after_s: Annotated[float, Meta(gt=0)] = 15.0
    stale_action: Literal["min_current", "stop"] = "stop"
    watchdog_interval_s: Annotated[float, Meta(gt=0)] = 1.0
    # "response_topic": MQTT v5 request/response (the contract's way); "result_topic": request_id and
    # the device's result topic, for bridges whose broker user may not write reply topics
    command_replies: Literal["response_topic", "result_topic"] = "response_topic"
    # The controller's tuning per loadpoint, `[surplus-controller.tuning.<loadpoint id>]`: any
    # LoadpointConfig key that is not a [[site.loadpoints]] key (enable_delay_s, settle_s, ...).
    tuning: dict[str, dict[str, Any]] = {}
    # The old place of the site's devices, still read (wattbus.site warns and says where they belong).
    # At run time (resolve) these hold what [site] says: None grid_meter = a first run, the service
    # stays up idle and says so until the setup sets the grid meter.
    grid_meter: DeviceRef | None = None
    battery: DeviceRef | None = None
    loadpoints: list[LoadpointConfig] = []
    relays: list[RelayConfig] = []

    def __post_init__(self) -> None:
        for lp_id, keys in self.tuning.items():
            tuning_problem(lp_id, keys)


def tuning_problem(lp_id: str, keys: dict[str, Any]) -> None:
    """Check one tuning table with LoadpointConfig's rules; a ValueError names the table and key."""
    where = f"tuning.{lp_id}"
    site_keys = sorted(set(keys) & LOADPOINT_KEYS)
    if site_keys:
        raise ValueError(f"{where}.{site_keys[0]} is a [[site.loadpoints]] key: set it on the loadpoint in [site]")
    try:
        msgspec.convert({"id": "check", "charger": "check/check", **keys}, LoadpointConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{where}: {str(exc).replace(' - at `$.', f' - at `{where}.')}") from None


def resolve(loaded: LoadedConfig, cfg: Config) -> Config:
    """The section with the site filled in from `[site]` (old places included, wattbus.site): what
    the controller runs on, and what `reload_config` compares, so a changed [site] restarts it."""
    site = load_site(loaded).site
    old = {lp.id: lp for lp in cfg.loadpoints}
    loadpoints = []
    for index, lp in enumerate(site.loadpoints):
        # old layout: the tuning sat on the [[surplus-controller.loadpoints]] entry itself
        kept = msgspec.to_builtins(old[lp.id]) if lp.id in old else {}
        tuned = {k: v for k, v in kept.items() if k not in LOADPOINT_KEYS}
        if lp.id in cfg.tuning and _explicit(loaded, lp.id):
            raise ConfigError(f"config [surplus-controller] tuning.{lp.id} and the old [[surplus-controller."
                              f"loadpoints]] entry {lp.id!r} both tune loadpoint {lp.id}: keep only the tuning table")
        data = {**tuned, **cfg.tuning.get(lp.id, {}), **msgspec.to_builtins(lp)}
        loadpoints.append(convert(SECTION, {"loadpoints": [data]}, _Loadpoints,
                                  {"loadpoints": f"[site] loadpoints[{index}]"}).loadpoints[0])
    return msgspec.structs.replace(cfg, grid_meter=site.grid_device(), battery=site.battery_device(),
                                   loadpoints=loadpoints, relays=list(site.relays))


class _Loadpoints(msgspec.Struct, kw_only=True):
    loadpoints: list[LoadpointConfig]


def _explicit(loaded: LoadedConfig, lp_id: str) -> set[str]:
    """The tuning keys an old [[surplus-controller.loadpoints]] entry really sets (not defaults)."""
    raw = loaded.data.get(SECTION, {}).get("loadpoints", [])
    entry = next((e for e in raw if isinstance(e, dict) and e.get("id") == lp_id), {})
    return set(entry) - LOADPOINT_KEYS
