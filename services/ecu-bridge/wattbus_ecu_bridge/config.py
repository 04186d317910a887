"""The [ecu-bridge] config section: one table per ECU under `ecus`, shared defaults beside them."""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta, Struct, field
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ServiceCommon

ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM local time")]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]


class EcuSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """How to poll an ECU; `[ecu-bridge.adopted]` holds these for ECUs found by discovery."""

    # The ECU refreshes its data about every 5 minutes; asking faster only stresses it.
    poll_interval_s: Annotated[float, Meta(ge=0.05, le=3600)] = 300.0
    # Polls are aligned to the ECU's own refresh (its answer's timestamp + poll_interval_s + this),
    # so the data is fresh when read instead of up to one interval old.
    refresh_margin_s: Annotated[float, Meta(ge=0, le=600)] = 20.0
    # The ECU needs time between receiving a command and having its answer ready.
    answer_delay_s: Annotated[float, Meta(ge=0, le=30)] = 5.0
    pause_between_commands_s: Annotated[float, Meta(ge=0, le=60)] = 1.0
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 15.0
    retry_after_failure_s: Annotated[float, Meta(ge=0.05, le=3600)] = 60.0
    signal: bool = True  # also ask for Zigbee signal strength
    # Local time window in which the ECU does its nightly maintenance and must be left alone
    # (the same start and end switch it off).
    maintenance_start: ClockTime | None = "02:45"
    maintenance_end: ClockTime | None = "03:15"
    timezone: str | None = None  # IANA name; default: what the ECU reports, else the host's zone
    stop_at_night: bool = False
    latitude: Latitude = 48.864716
    longitude: Longitude = 2.349014
    night_margin_min: Annotated[float, Meta(ge=0, le=180)] = 15.0  # keep polling this long after sunset
    auto_restart: bool = False  # ECU-C and ECU-R 2162xxxx only
    restart_after_failures: Annotated[int, Meta(ge=1, le=100)] = 5
    http_port: Annotated[int, Meta(ge=1, le=65535)] = 80
    wifi_ssid: str = ""
    wifi_password: str = ""


class EcuConfig(EcuSettings, kw_only=True, forbid_unknown_fields=True):
    host: str
    port: Annotated[int, Meta(ge=1, le=65535)] = 8899
    name: str | None = None


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    ecus: list[EcuConfig] = []
    # Also publish aps2mqtt's own topics (aps/<ECU_ID>/..., aps/status) for drop-in replacement.
    aps2mqtt_topics: bool = False
    aps2mqtt_prefix: str = ""  # aps2mqtt's MQTT_TOPIC_PREFIX
    aps2mqtt_retain: bool = False
    # aps2mqtt's Home Assistant discovery (MQTT_DISCOVERY_ENABLED): its entities, unique ids and
    # state topics, retained under this prefix; implies aps2mqtt_topics (the entities read them).
    aps2mqtt_discovery: bool = False
    # `--scale` replicas share the devices (wattbus.bridge.ownership); 0 = poll every device here
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S
    aps2mqtt_discovery_prefix: Annotated[str, Meta(pattern=r"^[^#+\s]+$")] = "homeassistant"
    # Poll ECUs the discovery service announces (configured ECUs win), with these settings.
    adopt: bool = True
    deny: list[str] = []  # ECU ids, device ids or addresses (host or host:port) never to adopt
    adopted: EcuSettings = field(default_factory=EcuSettings)


def minutes(clock: str) -> int:
    match = re.match(r"^(\d\d):(\d\d)$", clock)
    if not match:
        raise ValueError(f"not HH:MM: {clock!r}")
    return int(match.group(1)) * 60 + int(match.group(2))
