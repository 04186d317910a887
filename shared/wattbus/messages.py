"""The wattbus bus contract, version 1: every payload that crosses the bus.

Rules that keep the contract stable:
- Units are SI and in the field name (`power_w`, `energy_import_wh`, `voltage_v`).
- Sign conventions: grid/meter power is + import, - export; battery power is + discharge,
  - charge; inverter and PV power is + production.
- A value the device did not report is None (missing), never 0.
- Structs are frozen; a new field is only ever added with a default, so old payloads still decode.
- Readings and commands are tagged unions (`kind` / `command`), so one decoder takes any of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

CONTRACT_VERSION = "v1"

DeviceKind = Literal["meter", "inverter", "string", "battery", "charger", "relay", "gateway", "vehicle"]
Protocol = Literal[
    "sunspec", "modbus", "sml", "dsmr", "iec62056", "aps-ecu", "givenergy", "goe", "shelly", "http", "simulated",
    "mqtt",  # a device read from MQTT topics of its own (generic-bridge)
]

Percent = Annotated[float, Meta(ge=0, le=100)]
PhaseNumber = Annotated[int, Meta(ge=1, le=3)]
ExtraValue = float | int | str | bool | None


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- identity

class DeviceMeta(Struct, frozen=True, kw_only=True):
    """Who a device is. Retained on `.../meta`; the device id is stable (serial based)."""

    device_id: str
    kind: DeviceKind
    source: str  # the service that owns the device (its topic space)
    protocol: Protocol
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    address: str | None = None  # "tcp://192.0.2.10:502/1", "serial:///dev/ttyUSB0"
    name: str | None = None
    parent_id: str | None = None  # e.g. a battery or MPPT string inside an inverter
    capabilities: list[str] = []  # command names this device accepts


# --------------------------------------------------------------------------- readings

class PhaseValues(Struct, frozen=True, kw_only=True):
    """One phase of a reading. `power_factor` is the magnitude |P|/S (0..1): the direction of the
    flow is the sign of `power_w`, so the vendors' lead/lag (SunSpec) or current-direction (Eastron)
    signs are dropped at the bridge."""

    phase: PhaseNumber
    voltage_v: float | None = None
    current_a: float | None = None
    power_w: float | None = None
    power_factor: float | None = None


class ReadingBase(Struct, frozen=True, kw_only=True, tag_field="kind"):
    device_id: str
    timestamp: datetime  # when the device measured it (UTC), not when it arrived
    extra: dict[str, ExtraValue] = {}  # vendor values outside the common model


class MeterReading(ReadingBase, frozen=True, kw_only=True, tag="meter"):
    """A grid or sub meter. power_w: + import from the grid, - export to it."""

    power_w: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    energy_import_t1_wh: float | None = None
    energy_import_t2_wh: float | None = None
    energy_export_t1_wh: float | None = None
    energy_export_t2_wh: float | None = None
    frequency_hz: float | None = None
    phases: list[PhaseValues] = []
    # Extra M-Bus channels (gas m³, water m³) read through the same meter interface.
    gas_m3: float | None = None
    water_m3: float | None = None


class InverterReading(ReadingBase, frozen=True, kw_only=True, tag="inverter"):
    """A PV (or hybrid) inverter. power_w: AC output, + production."""

    power_w: float | None = None
    dc_power_w: float | None = None
    energy_total_wh: float | None = None
    energy_today_wh: float | None = None
    frequency_hz: float | None = None
    temperature_c: float | None = None
    state: str | None = None  # normalised: "off", "sleeping", "starting", "mppt", "throttled", "fault", ...
    online: bool | None = None
    phases: list[PhaseValues] = []


class StringReading(ReadingBase, frozen=True, kw_only=True, tag="string"):
    """One DC input (MPPT tracker, string or panel) of an inverter."""

    inverter_id: str
    index: Annotated[int, Meta(ge=1)]
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    energy_wh: float | None = None


class BatteryReading(ReadingBase, frozen=True, kw_only=True, tag="battery"):
    """A home battery. power_w: + discharge (into the house), - charge."""

    power_w: float | None = None
    soc_pct: Percent | None = None
    soh_pct: Percent | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    capacity_wh: float | None = None
    energy_charge_wh: float | None = None
    energy_discharge_wh: float | None = None
    cell_voltages_v: list[float] = []
    cell_temperatures_c: list[float] = []


ChargerState = Literal["idle", "waiting", "charging", "complete", "error", "unknown"]


class ChargerReading(ReadingBase, frozen=True, kw_only=True, tag="charger"):
    """An EV charger (wallbox)."""

    state: ChargerState = "unknown"
    power_w: float | None = None
    energy_total_wh: float | None = None
    session_energy_wh: float | None = None
    set_current_a: float | None = None  # the current the charger offers to the car
    phases_active: Literal[1, 3] | None = None
    enabled: bool | None = None  # charging allowed (go-e `alw`)
    forced: Literal["neutral", "off", "on"] | None = None
    phases: list[PhaseValues] = []
    error: str | None = None


class RelayReading(ReadingBase, frozen=True, kw_only=True, tag="relay"):
    """A switchable load (Shelly relay, smart plug), optionally metered."""

    on: bool | None = None
    channel: Annotated[int, Meta(ge=0)] = 0
    power_w: float | None = None
    energy_wh: float | None = None
    temperature_c: float | None = None
    voltage_v: float | None = None


class GatewayReading(ReadingBase, frozen=True, kw_only=True, tag="gateway"):
    """A data concentrator such as an APsystems ECU: totals over the devices behind it."""

    power_w: float | None = None
    energy_today_wh: float | None = None
    energy_total_wh: float | None = None
    devices_total: int | None = None
    devices_online: int | None = None


VehicleChargeState = Literal["disconnected", "connected", "charging", "complete"]


class VehicleReading(ReadingBase, frozen=True, kw_only=True, tag="vehicle"):
    """An electric vehicle as its own telematics report it (TeslaMate, WeConnect-mqtt, a vendor API),
    not the charger's view. Vehicles report on change, often minutes apart, and sleep: a reading
    stays the car's latest word until the next one."""

    soc_pct: Percent | None = None  # the traction battery's state of charge
    range_m: Annotated[float, Meta(ge=0)] | None = None  # estimated range, metres
    capacity_wh: Annotated[float, Meta(gt=0)] | None = None  # usable battery capacity
    limit_soc_pct: Percent | None = None  # the charge limit set in the car
    connected: bool | None = None  # a charge cable is plugged in
    charge_state: VehicleChargeState | None = None


Reading = (
    MeterReading | InverterReading | StringReading | BatteryReading | ChargerReading | RelayReading | GatewayReading
    | VehicleReading
)
READING_TYPES: tuple[type[ReadingBase], ...] = (
    MeterReading, InverterReading, StringReading, BatteryReading, ChargerReading, RelayReading, GatewayReading,
    VehicleReading,
)


# --------------------------------------------------------------------------- commands

ChargeCurrent = Annotated[float, Meta(ge=6, le=32, description="EV charge current per phase, 6-32 A")]
SocTarget = Annotated[int, Meta(ge=4, le=100, description="battery state of charge, 4-100 %")]
ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3])[0-5][0-9]$", description="HHMM, local time")]


class CommandBase(Struct, frozen=True, kw_only=True, tag_field="command"):
    """A request to a device. Sent with an MQTT v5 response topic + correlation data; a v3.1.1
    client may set request_id instead and read the answer on the device's result topic."""

    request_id: str | None = None


class SetChargeCurrent(CommandBase, frozen=True, kw_only=True, tag="set_charge_current"):
    current_a: ChargeCurrent


class SetCharging(CommandBase, frozen=True, kw_only=True, tag="set_charging"):
    """Start (enabled=True) or stop charging."""

    enabled: bool


class SetPhases(CommandBase, frozen=True, kw_only=True, tag="set_phases"):
    phases: Literal[1, 3]


class SetRelay(CommandBase, frozen=True, kw_only=True, tag="set_relay"):
    on: bool
    channel: Annotated[int, Meta(ge=0, le=3)] = 0


BatteryMode = Literal["eco", "eco_paused", "timed_demand", "timed_export"]


class SetBatteryMode(CommandBase, frozen=True, kw_only=True, tag="set_battery_mode"):
    mode: BatteryMode


class SetChargeTarget(CommandBase, frozen=True, kw_only=True, tag="set_charge_target"):
    soc_pct: SocTarget


class SetChargeTargetEnabled(CommandBase, frozen=True, kw_only=True, tag="set_charge_target_enabled"):
    """Follow the charge target when charging from the grid (True) or charge to 100 % (False)."""

    enabled: bool


class SetBatteryReserve(CommandBase, frozen=True, kw_only=True, tag="set_battery_reserve"):
    soc_pct: SocTarget


class SetChargeSlot(CommandBase, frozen=True, kw_only=True, tag="set_charge_slot"):
    slot: Annotated[int, Meta(ge=1, le=2)] = 1
    start: ClockTime
    end: ClockTime
    target_soc_pct: SocTarget | None = None


class SetDischargeSlot(CommandBase, frozen=True, kw_only=True, tag="set_discharge_slot"):
    slot: Annotated[int, Meta(ge=1, le=2)] = 1
    start: ClockTime
    end: ClockTime
    reserve_soc_pct: SocTarget | None = None


class SetSchedule(CommandBase, frozen=True, kw_only=True, tag="set_schedule"):
    """Enable or pause the timed charge or discharge schedule."""

    which: Literal["charge", "discharge"]
    enabled: bool


class SetBatteryPowerLimit(CommandBase, frozen=True, kw_only=True, tag="set_battery_power_limit"):
    direction: Literal["charge", "discharge"]
    power_w: Annotated[float, Meta(ge=0, le=20000)]


class SetClock(CommandBase, frozen=True, kw_only=True, tag="set_clock"):
    time: datetime


class Restart(CommandBase, frozen=True, kw_only=True, tag="restart"):
    """Restart the device (ECU, inverter). Bridges refuse it for devices that cannot do it."""


class Rescan(CommandBase, frozen=True, kw_only=True, tag="rescan"):
    """Ask the discovery service for a sweep now."""


LoadpointMode = Literal["off", "now", "minpv", "pv"]


class SetLoadpointMode(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_mode"):
    mode: LoadpointMode


class SetLoadpointLimits(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_limits"):
    min_current_a: ChargeCurrent | None = None
    max_current_a: ChargeCurrent | None = None


class SetLoadpointPlan(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_plan"):
    """The loadpoint's charge plan, as a whole (fields left out clear their part): reach soc_pct by
    `time` (HHMM local, the next such time, every day) from the grid when the sun will not make it
    in time; below min_soc_pct charge at full power. Needs a vehicle that reports its SoC."""

    soc_pct: Annotated[int, Meta(ge=1, le=100)] | None = None
    time: ClockTime | None = None
    min_soc_pct: Annotated[int, Meta(ge=0, le=100)] | None = None


class SetPowerLimit(CommandBase, frozen=True, kw_only=True, tag="set_power_limit"):
    """Limit an inverter's AC output to a share of its rated power (SunSpec model 123 WMaxLimPct);
    limit_pct None lifts the limit."""

    limit_pct: Percent | None = None


class SetConnected(CommandBase, frozen=True, kw_only=True, tag="set_connected"):
    """Connect (True) or disconnect (False) an inverter from the grid (SunSpec model 123 Conn)."""

    connected: bool


class ReloadConfig(CommandBase, frozen=True, kw_only=True, tag="reload_config"):
    """Re-read this service's config section (sent to `service/<name>/<instance>/command`). The runner
    validates it with the service's own config Struct: `invalid` with the message if it does not
    decode, `ok` + a clean exit with RELOAD_EXIT_CODE (the supervisor restarts only this service)
    if it changed, `ok` with "unchanged" otherwise."""


class ProbeDevice(CommandBase, frozen=True, kw_only=True, tag="probe_device"):
    """Read a device once without adopting it (sent to `service/<bridge>/<instance>/command` by the
    setup page before it saves a device added by hand). `entry` is the item the bridge's config list
    would hold (e.g. sunspec-bridge `{host, port, unit_ids}`, sml-reader `{key, format, port}`); the
    bridge validates it with its own config Struct and reads it with the adapter it polls with. The
    answer is `ok` with `devices` + `readings`, or `failed`/`invalid` with the precise reason."""

    entry: dict[str, ExtraValue | list[ExtraValue]]


Command = (
    SetChargeCurrent | SetCharging | SetPhases | SetRelay | SetBatteryMode | SetChargeTarget | SetBatteryReserve
    | SetChargeSlot | SetDischargeSlot | SetSchedule | SetBatteryPowerLimit | SetClock | Restart | Rescan
    | SetLoadpointMode | SetLoadpointLimits | SetPowerLimit | SetConnected | SetChargeTargetEnabled
    | ReloadConfig | ProbeDevice | SetLoadpointPlan
)

CommandStatus = Literal["ok", "refused", "invalid", "failed", "timeout"]


class CommandResult(Struct, frozen=True, kw_only=True):
    """The answer to a command: `ok` only after the bridge read the new value back."""

    status: CommandStatus
    command: str | None = None  # the command's tag; None when the payload could not be decoded
    target: str | None = None  # device id or loadpoint id
    request_id: str | None = None
    message: str = ""  # why it was refused / failed, for a person
    applied: dict[str, ExtraValue] = {}  # the values read back
    timestamp: datetime = field(default_factory=utc_now)
    devices: list[DeviceMeta] = []  # probe_device: who answered (identity as the bridge would announce it)
    readings: list[Reading] = []  # probe_device: what it read, in the contract's units


# --------------------------------------------------------------------------- discovery & services

class DeviceAnnouncement(Struct, frozen=True, kw_only=True):
    """A device the discovery service found. Retained on `wattbus/v1/discovery/<device_id>`."""

    device_id: str
    protocol: Protocol
    address: str  # host or host:port
    port: int | None = None
    unit_id: int | None = None
    kind: DeviceKind | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    present: bool = True  # False once the device vanished
    first_seen: datetime = field(default_factory=utc_now)
    last_seen: datetime = field(default_factory=utc_now)
    firmware: str | None = None
    via: Literal["sweep", "mdns"] | None = None  # how it was found (a TCP sweep or an mDNS announcement)
    extra: dict[str, ExtraValue] = {}  # protocol details a bridge may use (e.g. dongle serial, API version)


# --------------------------------------------------------------------------- bridge forms (add by hand)

FormInput = Literal["text", "number", "select", "checkbox"]


class FormField(Struct, frozen=True, kw_only=True):
    """One input of a manual-add form, typed from the bridge's config Struct (bounds, choices, pattern
    and help from its `Meta`). `key` is the value's name; the form's `entry` uses it as "{key}"."""

    key: str
    label: str
    input: FormInput = "text"
    help: str | None = None
    optional: bool = False  # may stay empty: `default` (when set) or the bridge's own default applies
    default: ExtraValue = None
    choices: list[str | int | float] = []  # input "select"
    min: float | None = None  # input "number": inclusive bounds ...
    max: float | None = None
    above: float | None = None  # ... and exclusive ones
    below: float | None = None
    step: float | str | None = None  # 1 for whole numbers, "any" otherwise
    pattern: str | None = None  # input "text": the whole value must match (Python `re.fullmatch`)


class AddForm(Struct, frozen=True, kw_only=True):
    """How the setup page adds one kind of device to a bridge's config by hand: the inputs, and the
    config list item they make. `entry` holds the item with "{key}" placeholders: a string that is
    one placeholder takes the value with its type, others are formatted; a dotted key ("vars.x")
    is a nested table in the saved item (flat in `probe_device`); an empty optional value drops the key."""

    name: str  # unique on the page: the protocol ("sunspec"), or "generic:<template>"
    title: str  # for a person: "SunSpec inverter or meter"
    protocol: str | None = None  # the contract protocol its devices announce, when one applies
    list_key: str  # the bridge's device list in its config section ("devices", "ecus", "meters")
    entry: dict[str, ExtraValue | list[ExtraValue]]
    fields: list[FormField] = []
    address: Literal["host", "serial", "none"] = "host"  # what the setup page checks first: host:port
    # ("host", "port"), a serial device ("serial_port"), or nothing (a device that is not read on demand)
    about: str = ""


class BridgeForms(Struct, frozen=True, kw_only=True):
    """A bridge's manual-add forms, retained on `service/<bridge>/<instance>/forms` at start (and kept
    after it stops: its availability says whether it runs). The setup page offers the forms of running
    bridges only, and knows from `protocols` which bridge owns a discovered device."""

    version: int = 1  # of this description; a reader skips versions it does not know
    service: str
    instance: str
    protocols: list[str] = []  # discovered devices of these protocols are this bridge's to adopt/ignore
    deny: bool = False  # the section has a `deny` list: "ignore" works for its discovered devices
    probe_wait_s: float = 10.0  # how long `probe_device` may take (two slow ECU commands: 30 s)
    forms: list[AddForm] = []
    timestamp: datetime = field(default_factory=utc_now)


class DeviceError(Struct, frozen=True, kw_only=True):
    """A device the service cannot read right now, and why (cleared by its next good reading).

    `device_id` is None for a configured device that never answered, so it has no id yet; `address`
    then says which one (`tcp://192.0.2.10:502/1`, `/dev/ttyUSB0`) and `name` what the config calls it.
    A bridge sets these through the runner: `DeviceChannel.set_error(reason)` (cleared by the channel's
    next `publish_reading`) and `ServiceContext.device_error(address, reason, name)` /
    `clear_device_error(address)` for a device without an id yet."""

    device_id: str | None = None
    address: str | None = None
    name: str | None = None
    error: str  # for a person: "tcp://192.0.2.10:502/1: no answer", "cannot open /dev/ttyUSB0: ..."
    since: datetime  # when this run of failures began (the first failure, not the latest)


class ServiceStatus(Struct, frozen=True, kw_only=True):
    """Periodic, retained heartbeat of a service instance; re-sent at once when `device_errors` changes."""

    service: str
    instance: str
    version: str
    started_at: datetime
    uptime_s: float
    counters: dict[str, int] = {}
    devices: int = 0
    timestamp: datetime = field(default_factory=utc_now)
    device_errors: list[DeviceError] = []  # the service's devices (or configured addresses) failing now


class LoadpointState(Struct, frozen=True, kw_only=True):
    """The surplus controller's view of one loadpoint (retained)."""

    loadpoint_id: str
    mode: LoadpointMode
    charger_id: str | None = None
    charging: bool = False
    set_current_a: float | None = None
    phases: Literal[1, 3] | None = None
    power_w: float | None = None
    surplus_w: float | None = None
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    phase_switches_last_hour: int = 0
    reason: str = ""
    timestamp: datetime = field(default_factory=utc_now)
    alert: str | None = None  # set while the loadpoint is held in a safe state (e.g. stale grid data)
    strategy: str | None = None  # which regulation ran ("wattbus")
    # the present plug-in session: energy (the charger's own counter when it has one) and time since
    # the car was plugged in; None without a car
    session_energy_wh: float | None = None
    session_duration_s: float | None = None
    # why the car is (not) charging, one word: no_vehicle, vehicle_full, safe_state, mode_off,
    # waiting_for_surplus, waiting_delay, waiting_import_window, charging_now, charging_at_minimum,
    # charging_from_surplus, charging_by_plan (`reason` has the detail)
    status: str | None = None
    # the loadpoint's vehicle (a VehicleReading device) and its charge plan (set_loadpoint_plan)
    vehicle_id: str | None = None
    vehicle_soc_pct: float | None = None  # the vehicle's latest reported SoC; None without one
    plan_soc_pct: int | None = None
    plan_time: str | None = None  # HHMM, local time of the controller
    plan_min_soc_pct: int | None = None
    plan_active: bool = False  # the plan has taken over from the mode (charging from the grid)
    plan_start: datetime | None = None  # when the plan takes (took) over, as planned now
    # for a person: "plan: charging from the grid from 05:10 to reach 80 % by 07:00", "plan met",
    # "no SoC from vehicle"; None without a plan
    plan_status: str | None = None


ONLINE = "online"
OFFLINE = "offline"
