"""What a probe found, before it becomes a retained DeviceAnnouncement."""

from __future__ import annotations

from dataclasses import dataclass, field

from wattbus import apsystems, goe, shelly, topics
from wattbus import messages as m


@dataclass(frozen=True, slots=True)
class Found:
    protocol: m.Protocol
    address: str
    port: int
    serial: str | None
    manufacturer: str | None = None
    model: str | None = None
    kind: m.DeviceKind | None = None
    unit_id: int | None = None
    firmware: str | None = None
    via: str = "sweep"
    extra: dict[str, m.ExtraValue] = field(default_factory=dict)

    @property
    def device_id(self) -> str:
        """The id the owning bridge uses for the same device, so adoption needs no mapping table.
        Serial based, so a device that moves to a new address (DHCP) keeps its id."""
        fallback = f"{self.address}-{self.port}" + (f"-{self.unit_id}" if self.unit_id is not None else "")
        match self.protocol:
            case "sunspec":
                return topics.slug(self.manufacturer or "sunspec", self.serial or fallback)
            case "aps-ecu":
                return apsystems.ecu_device_id(self.serial or fallback)
            case "givenergy":
                return topics.slug("givenergy", self.serial or fallback)
            case "goe":
                return goe.device_id(self.serial or fallback)
            case "shelly":
                return shelly.device_id(self.serial or fallback)
        return topics.slug(self.protocol, self.serial or fallback)
