"""What services say about themselves and the site: announcements, forms, status, loadpoint state."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct, field

from .commands import LoadpointMode
from .values import DeviceKind, ExtraValue, Protocol, utc_now

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

FormInput = Literal["text", "number", "select", "checkbox", "secret"]  # secret: written, never shown back


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
    after it stops: its availability says whether it runs; an `instance = "auto"` replica clears them on
    a clean stop). The setup page offers the forms of running bridges only, and knows from `protocols`
    which bridge owns a discovered device."""

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
