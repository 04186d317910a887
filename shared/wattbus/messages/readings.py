"""What devices are (`DeviceMeta`) and what they measure: one tagged Struct per device kind."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from .values import DeviceKind, ExtraValue, Percent, PhaseNumber, Protocol

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
