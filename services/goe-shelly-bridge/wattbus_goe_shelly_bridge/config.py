"""The bridge's config section: global poll settings and one entry per device."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ServiceCommon, read_secret

Url = Annotated[str, Meta(pattern=r"^https?://[^/\s]+/?$", description="http://host[:port] of the device")]
Amps = Annotated[float, Meta(ge=6, le=32)]


class DeviceConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    username: str | None = None  # Shelly: admin (Gen1 may use another user)
    password: str | None = None
    password_file: str | None = None
    max_current_a: Amps = 16.0  # chargers: never offer more (cable, fuse, contract)
    min_current_a: Amps = 6.0  # chargers: never offer less while charging
    # Contactors and relays wear with every switch; cars dislike rapid start/stop and phase changes.
    min_switch_interval_s: Annotated[float, Meta(ge=0, le=86400)] = 60.0
    min_phase_switch_interval_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    poll_interval_s: Annotated[float, Meta(ge=0.2, le=3600)] | None = None

    def resolved_password(self) -> str | None:
        return read_secret(self.password, self.password_file, f"[goe-shelly-bridge] device {self.url}")


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    devices: list[DeviceConfig] = []
    poll_interval_s: Annotated[float, Meta(ge=0.2, le=3600)] = 2.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 3.0
    max_backoff_s: Annotated[float, Meta(ge=1, le=3600)] = 60.0
    # `--scale` replicas share the devices (wattbus.bridge.ownership); 0 = poll every device here
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S
    offline_after_failures: Annotated[int, Meta(ge=1, le=100)] = 2
    confirm_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0  # read-back after a write
    # Poll go-e chargers and Shellies the discovery service announces (configured devices win).
    adopt: bool = True
    deny: list[str] = []  # serials/MACs, device ids or addresses (host or host:port) never to adopt
    # Shellies announced with authentication on are adopted only with this password (user admin).
    shelly_password: str | None = None
    shelly_password_file: str | None = None
