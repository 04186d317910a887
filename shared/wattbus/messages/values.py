"""Shared value types of the contract: units, ranges, kinds, the clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from msgspec import Meta

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
