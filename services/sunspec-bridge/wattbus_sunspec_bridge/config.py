"""Configuration of the sunspec-bridge: `[sunspec-bridge]` with one `[[sunspec-bridge.devices]]` per endpoint."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, field
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ConfigStruct, ServiceCommon
from wattbus.sunspec import DEFAULT_BASES, DEFAULT_UNITS

UnitId = Annotated[int, Meta(ge=0, le=255)]


class DeviceConfig(ConfigStruct, kw_only=True):
    """One Modbus endpoint: a TCP host (or RS485 port) and the unit ids behind it."""

    host: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] = 502
    serial_port: str | None = None  # "/dev/ttyUSB0": Modbus RTU instead of TCP
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    # "sunspec" probes for SunSpec maps; anything else names a register profile (eastron_sdm630).
    protocol: str = "sunspec"
    # probe order; every unit that answers is used
    unit_ids: list[UnitId] = field(default_factory=lambda: list(DEFAULT_UNITS))
    base_addresses: list[Annotated[int, Meta(ge=0, le=65535)]] = field(default_factory=lambda: list(DEFAULT_BASES))
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 2.0
    probe_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    poll_interval_s: Annotated[float, Meta(gt=0)] | None = None  # default: the service's
    models: list[int] = []  # poll only these SunSpec models (+ common); empty = all
    controls: bool = False  # allow commands that write to the device (model 123); off by default
    serial: str | None = None  # for profile meters whose serial number cannot be read
    name: str | None = None


class Config(ServiceCommon, kw_only=True):
    poll_interval_s: Annotated[float, Meta(gt=0)] = 2.0
    stats_interval_s: Annotated[float, Meta(gt=0)] = 60.0
    native: bool = True  # every decoded point on native/model_<id> (iotic's `live`)
    # Not every poll: the native documents were 35 % of the demo house's bus traffic at 1 Hz, read by
    # few, while the readings carry the same values each poll. 0 = every poll.
    native_interval_s: Annotated[float, Meta(ge=0)] = 10.0
    offline_after_failures: Annotated[int, Meta(ge=1)] = 3
    max_backoff_s: Annotated[float, Meta(gt=0)] = 60.0
    # `--scale` replicas share the devices (wattbus.bridge.ownership); 0 = poll every device here
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S
    rescan_interval_s: Annotated[float, Meta(gt=0)] = 300.0  # probe again for units that did not answer
    profiles_dir: str | None = None  # extra register profiles (*.toml) beside the shipped ones
    devices: list[DeviceConfig] = []
    # Poll SunSpec devices the discovery service announces (configured devices win).
    adopt: bool = True
    deny: list[str] = []  # serials, device ids or addresses (host or host:port) never to adopt
