"""The go-e Charger adapter: one interface (`read()`, `set_current_a()`, ...) over API v1 or v2."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from wattbus import messages as m
from wattbus.goe import MANUFACTURER, V2_IDENTITY_KEYS, Api, GoeIdentity, GoeIdentityError, device_id, identity

from .goe_wire import decode_status
from .transport import DeviceError, HttpDevice, ResponseRejected

# The keys one poll needs; a filtered v2 status is a fraction of the full document.
V2_POLL_KEYS = f"{V2_IDENTITY_KEYS},car,amp,ama,alw,frc,psm,err,eto,wh,nrg"
V2_CAPABILITIES = ["set_charge_current", "set_charging", "set_phases"]
V1_CAPABILITIES = ["set_charge_current", "set_charging"]


class GoeCharger:
    """A go-e Charger (V2/V3/V4/Gemini/HomeFix on API v2, older firmware on API v1)."""

    kind: Literal["goe"] = "goe"

    def __init__(self, http: HttpDevice, api: Api, ident: GoeIdentity) -> None:
        self.http = http
        self.api = api
        self.ident = ident
        self.device_id = device_id(ident.serial)

    @property
    def generation(self) -> str:
        return self.api

    @property
    def capabilities(self) -> list[str]:
        return V2_CAPABILITIES if self.api == "v2" else V1_CAPABILITIES

    def metas(self, source: str) -> list[m.DeviceMeta]:
        return [m.DeviceMeta(device_id=self.device_id, kind="charger", source=source, protocol="goe",
                             manufacturer=MANUFACTURER, model=self.ident.model, serial=self.ident.serial,
                             firmware=self.ident.firmware, address=self.http.base_url,
                             capabilities=self.capabilities)]

    async def status_doc(self) -> dict[str, Any]:
        if self.api == "v2":
            return await self.http.get_object("/api/status", {"filter": V2_POLL_KEYS})
        return await self.http.get_object("/status")

    async def read_charger(self) -> m.ChargerReading:
        doc = await self.status_doc()
        where = f"{self.http.base_url} go-e API {self.api} status"
        try:
            serial = identity(doc, self.api, where).serial
        except GoeIdentityError as exc:
            raise ResponseRejected(str(exc)) from None
        if serial != self.ident.serial:
            # Another charger answers on this address now (DHCP); do not mix its values into ours.
            raise ResponseRejected(f"{where}: serial changed from {self.ident.serial} to {serial}")
        return decode_status(doc, self.api, self.device_id, datetime.now(UTC), where)

    async def read(self) -> list[m.ReadingBase]:
        return [await self.read_charger()]

    # ---- writes (the command layer checks limits and confirms by reading back)
    async def _set_v2(self, key: str, value: int) -> None:
        status, doc = await self.http.request("/api/set", {key: str(value)})
        answer = doc.get(key) if isinstance(doc, dict) else None
        if status != 200 or answer is not True:
            raise DeviceError(f"go-e {self.ident.serial} refused {key}={value}: HTTP {status}, {answer or doc!r}")

    async def _set_v1(self, key: str, value: int) -> None:
        status, _doc = await self.http.request("/mqtt", {"payload": f"{key}={value}"})
        if status != 200:
            raise DeviceError(f"go-e {self.ident.serial} refused {key}={value}: HTTP {status}")

    async def set_current_a(self, amps: int) -> None:
        if self.api == "v2":
            await self._set_v2("amp", amps)
        else:
            await self._set_v1("amx", amps)  # amx: not written to EEPROM, safe to change every few seconds

    async def set_charging(self, enabled: bool) -> None:
        if self.api == "v2":
            await self._set_v2("frc", 2 if enabled else 1)
        else:
            await self._set_v1("alw", 1 if enabled else 0)

    async def set_phases(self, phases: Literal[1, 3]) -> None:
        if self.api != "v2":
            raise DeviceError("go-e API v1 firmware cannot switch phases (no psm)")
        await self._set_v2("psm", 1 if phases == 1 else 2)


def charging_requested(reading: m.ChargerReading, api: Api) -> bool | None:
    """What the last SetCharging asked for, as the charger reports it (v2 frc, v1 alw)."""
    if api == "v2" and reading.forced in ("on", "off"):
        return reading.forced == "on"
    return reading.enabled  # v1, or v2 in neutral: the charger's own `alw` decides
