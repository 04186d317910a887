"""The Shelly adapter: relays (`set_relay()`, `relay_on()`) and meters over Gen1 REST or Gen2+ RPC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from wattbus import messages as m
from wattbus.shelly import MANUFACTURER, ShellyInfo

from .shelly_wire import decode_gen1, decode_gen2
from .transport import DeviceError, HttpDevice, ResponseRejected


class ShellyDevice:
    kind: Literal["shelly"] = "shelly"

    def __init__(self, http: HttpDevice, info: ShellyInfo) -> None:
        self.http = http
        self.info = info
        self.device_id = info.relay_id()

    @property
    def generation(self) -> str:
        return "gen1" if self.info.gen == 1 else f"gen{self.info.gen}"

    @property
    def capabilities(self) -> list[str]:
        return ["set_relay"]

    def metas(self, source: str, readings: list[m.ReadingBase]) -> list[m.DeviceMeta]:
        """One meta per device id the status produced: the relay block and each meter."""
        metas: dict[str, m.DeviceMeta] = {}
        for reading in readings:
            relay = isinstance(reading, m.RelayReading)
            metas.setdefault(reading.device_id, m.DeviceMeta(
                device_id=reading.device_id, kind="relay" if relay else "meter", source=source, protocol="shelly",
                manufacturer=MANUFACTURER, model=self.info.model_name, serial=self.info.mac,
                firmware=self.info.firmware, address=self.http.base_url, name=self.info.hostname,
                capabilities=self.capabilities if relay else []))
        return list(metas.values())

    async def read(self) -> list[m.ReadingBase]:
        now = datetime.now(UTC)
        if self.info.gen == 1:
            where = f"{self.http.base_url}/status"
            return decode_gen1(await self.http.get_object("/status"), self.info, now, where)
        where = f"{self.http.base_url}/rpc/Shelly.GetStatus"
        return decode_gen2(await self.http.get_object("/rpc/Shelly.GetStatus"), self.info, now, where)

    async def relay_state(self, channel: int) -> tuple[bool, list[str]]:
        """Whether the output is on, and the faults it reports (Gen1 `overpower`, Gen2 `errors`):
        a protected output opens by itself, and the fault tells a command why it did not stay on."""
        if self.info.gen == 1:
            doc = await self.http.get_object(f"/relay/{channel}")
            key = "ison"
            faults = ["overpower"] if doc.get("overpower") is True else []
        else:
            doc = await self.http.get_object("/rpc/Switch.GetStatus", {"id": str(channel)})
            key = "output"
            errors = doc.get("errors")
            faults = [str(e) for e in errors] if isinstance(errors, list) else []
        value = doc.get(key)
        if not isinstance(value, bool):
            raise ResponseRejected(f"{self.http.base_url}: relay {channel} {key} = {value!r} is not true/false")
        return value, faults

    async def relay_on(self, channel: int) -> bool:
        return (await self.relay_state(channel))[0]

    async def set_relay(self, channel: int, on: bool) -> None:
        if self.info.gen == 1:
            status, _doc = await self.http.request(f"/relay/{channel}", {"turn": "on" if on else "off"})
        else:
            status, _doc = await self.http.request("/rpc/Switch.Set", {"id": str(channel),
                                                                       "on": "true" if on else "false"})
        if status != 200:
            raise DeviceError(f"{self.http.base_url}: switching relay {channel} failed with HTTP {status}")
