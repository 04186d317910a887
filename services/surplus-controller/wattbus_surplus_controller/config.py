"""The controller's config section `[surplus-controller]` (see services/surplus-controller/embedded.toml)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct
from wattbus.config import ServiceCommon

# "<source>/<device_id>": the topic space a device lives in, e.g. "goe-shelly-bridge/goe-123456"
DeviceRef = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*/[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Amps = Annotated[float, Meta(ge=6, le=32)]
Seconds = Annotated[float, Meta(ge=0)]
Watts = Annotated[float, Meta(ge=0)]
WattHours = Annotated[float, Meta(ge=0)]  # energy, not power: the allowances and buffers
Soc = Annotated[float, Meta(ge=0, le=100)]
Mode = Literal["off", "now", "minpv", "pv"]


class LoadpointConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
    charger: DeviceRef
    mode: Mode = "pv"  # the mode until a person changes it (then the state file wins)
    priority: int = 0  # higher is served first when several loadpoints share the surplus
    min_current_a: Amps = 6.0
    max_current_a: Amps = 16.0
    phases: Literal["auto", 1, 3] = "auto"
    voltage_v: Annotated[float, Meta(ge=100, le=260)] = 230.0
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


class RelayConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
    device: DeviceRef
    channel: Annotated[int, Meta(ge=0, le=3)] = 0
    power_w: Annotated[float, Meta(gt=0)]  # what the load draws when on (used before it is metered)
    priority: int = 0  # higher is served first; relays share what the loadpoints leave
    on_threshold_w: float = 0.0  # switch on when the surplus exceeds power_w + this
    off_threshold_w: float = 0.0  # switch off when the import exceeds this
    min_on_s: Seconds = 300.0
    min_off_s: Seconds = 300.0
    max_temperature_c: float | None = None  # thermal strategy: off at this reported temperature


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    # one regulation; the key stays so existing config files still load (the benchmark's evcc-style
    # baseline lives in bench/evcc_baseline.py, not in the service)
    strategy: Literal["wattbus"] = "wattbus"
    clock: Literal["wall", "readings"] = "wall"  # "readings": simulated time from reading timestamps
    # None on a first run (empty section): the service stays up idle and says so until setup sets it
    grid_meter: DeviceRef | None = None
    battery: DeviceRef | None = None
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
    state_interval_s: Annotated[float, Meta(gt=0)] = 10.0  # LoadpointState at least this often
    # "response_topic": MQTT v5 request/response (the contract's way); "result_topic": request_id and
    # the device's result topic, for bridges whose broker user may not write reply topics
    command_replies: Literal["response_topic", "result_topic"] = "response_topic"
    loadpoints: list[LoadpointConfig] = []
    relays: list[RelayConfig] = []
