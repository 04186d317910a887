"""giv-bridge's configuration: the service section and one entry per inverter (dongle)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from wattbus.bridge.settings import PollSettings
from wattbus.config import ConfigStruct

INVERTER_ADDRESS = 0x31  # normal polling of AC / Gen1 hybrid units (0x11 also reports to the cloud)


class InverterConfig(ConfigStruct, kw_only=True):
    host: str
    port: Annotated[int, Meta(ge=1, le=65535)] = 8899
    batteries: Annotated[int, Meta(ge=0, le=6)] = 1
    address: Annotated[int, Meta(ge=0, le=255)] = INVERTER_ADDRESS
    meters: list[Annotated[int, Meta(ge=1, le=8)]] = []
    ems: bool = False
    name: str | None = None
    battery_max_power_w: Annotated[float, Meta(gt=0, le=20000)] = 2600.0  # the inverter's battery limit


class Config(PollSettings, kw_only=True):
    inverters: list[InverterConfig] = []
    poll_interval_s: Annotated[float, Meta(ge=1, le=3600)] = 15.0  # a dongle serves one request at a time
    offline_after_failures: Annotated[int, Meta(ge=1, le=100)] = 1  # a dongle that drops a poll is gone
    retries: Annotated[int, Meta(ge=0, le=5)] = 2
    print_raw: bool = False  # GivTCP's PRINT_RAW: raw registers inside runAll
    # Poll inverters the discovery service announces (configured inverters win).
    adopt: bool = True
    deny: list[str] = []  # serials, device ids or addresses (host or host:port) never to adopt
    adopted_batteries: Annotated[int, Meta(ge=0, le=6)] = 1  # batteries to look for behind an adopted inverter
    # GivTCP's MQTT layout (<topic>/<serial>/Power/Power/SOC ...), GivTCP's MQTT_OUTPUT/MQTT_TOPIC/MQTT_RETAIN.
    # The broker's ACL lets giv-bridge write GivEnergy/# only: another root needs an ACL line.
    givtcp_mqtt: bool = False
    givtcp_mqtt_topic: Annotated[str, Meta(pattern=r"^[^#+$\s/][^#+\s]*$")] = "GivEnergy"
    givtcp_mqtt_retain: bool = False
