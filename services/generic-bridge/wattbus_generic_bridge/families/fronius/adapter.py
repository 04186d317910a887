"""Fronius Solar API v1 as a generic-bridge family: one address, several devices.

Identify checks the API version (v1 only) and reads the serials; each poll reads the power flow,
each inverter, the meters and the batteries, so one added later appears and an absent one is not
announced. The site is a gateway (the entry's id) with children `<id>-inverter-<n>`,
`<id>-meter-<n>` and `<id>-battery-<n>`. Which key fills which field, in which unit: fronius.toml.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from wattbus import messages as m
from wattbus.bridge import answer
from wattbus.config import ConfigStruct

from ...fetch import FetchError, HttpDevice
from ..common import Entry, Key, load_data, number, values


class Location(ConfigStruct, kw_only=True):
    name: str
    sign: Literal[1, -1]  # turns the meter's power into the contract's + import


class Data(ConfigStruct, kw_only=True):
    about: str
    manufacturer: str
    dc_inputs: list[Key]
    paths: dict[str, str]
    site: dict[str, Key]
    site_extra: dict[str, Key]
    inverter: dict[str, Key]
    inverter_state: dict[str, str]
    meter: dict[str, Key]
    meter_phase: dict[str, Key]
    meter_location: dict[str, Location]
    battery: dict[str, Key]


DATA = load_data(__package__, "fronius.toml", Data)


class FroniusSite:
    errors: tuple[type[Exception], ...] = (FetchError,)
    commands: tuple[type[m.CommandBase], ...] = ()
    push = False

    def __init__(self, source_name: str, dev: Entry) -> None:
        self.source, self.id, self.name = source_name, dev.id, dev.name
        self.base = f"http://{dev.host}:{dev.port or 80}"
        self.interval_s = dev.interval_s or 5.0
        self.http = HttpDevice(5.0, None, None, "basic")  # the Solar API reads without a login
        self.serials: dict[str, str] = {}
        self.metas = [self.meta("gateway", self.id, {}, None)]  # the fleet keys its poller by this id

    async def get(self, path: str, **args: str) -> dict[str, Any]:
        url = self.base + DATA.paths[path].format(**args)
        doc = await self.http.get_json(url)
        head, body = (doc.get("Head"), doc.get("Body")) if isinstance(doc, dict) else (None, None)
        status = head.get("Status") if isinstance(head, dict) else None
        if not isinstance(status, dict) or not isinstance(body, dict):
            raise FetchError(f"GET {url}: not a Solar API answer (no Head.Status or Body)")
        if status.get("Code") != 0:
            raise FetchError(f"GET {url}: Fronius status {status.get('Code')} {status.get('Reason') or ''}".rstrip())
        return body["Data"] if isinstance(body.get("Data"), dict) else {}

    async def identify(self) -> list[m.DeviceMeta]:
        url = self.base + DATA.paths["version"]
        version = await self.http.get_json(url)
        if (got := version.get("APIVersion") if isinstance(version, dict) else version) != 1:
            raise FetchError(f"GET {url}: APIVersion {got!r}; this family reads Solar API version 1")
        self.serials = {f"{cls}/{n}": str(info["Serial"]) for cls, found in (await self.get("devices")).items()
                        if isinstance(found, dict) for n, info in found.items()
                        if isinstance(info, dict) and info.get("Serial")}
        self.metas = [self.meta("gateway", self.id, {"Model": "Solar API v1"}, None)]
        return self.metas

    def meta(self, kind: m.DeviceKind, device_id: str, details: dict[str, Any], parent: str | None) -> m.DeviceMeta:
        return m.DeviceMeta(device_id=device_id, kind=kind, source=self.source, protocol="http",
                            manufacturer=details.get("Manufacturer") or DATA.manufacturer,
                            model=details.get("Model") or None, serial=details.get("Serial") or None,
                            address=self.base, name=None if parent else self.name, parent_id=parent)

    async def read(self) -> list[m.ReadingBase]:
        now, flow = datetime.now(UTC), await self.get("flow")
        site: dict[str, Any] = flow.get("Site") or {}
        metas, readings, failed = self.metas[:1], list[m.ReadingBase](), 0
        for n in sorted(flow.get("Inverters") or {}, key=int):
            ident = f"{self.id}-inverter-{n}"
            metas.append(self.meta("inverter", ident, {"Serial": self.serials.get(f"Inverter/{n}")}, self.id))
            try:
                readings.append(self.inverter(ident, await self.get("inverter", id=n), now))
            except FetchError as exc:  # one inverter not answering: the rest of the site still reads
                failed += 1
                readings.append(m.InverterReading(device_id=ident, timestamp=now, extra={"error": str(exc)}))
        for n, meter in sorted((await self.get("meter")).items()):
            metas.append(self.meta("meter", f"{self.id}-meter-{n}", meter.get("Details") or {}, self.id))
            readings.append(self.meter(metas[-1].device_id, meter, now))
        storages = await self.get("storage")
        for n, storage in sorted(storages.items()):
            ctrl: dict[str, Any] = storage.get("Controller") or {}
            metas.append(self.meta("battery", f"{self.id}-battery-{n}", ctrl.get("Details") or {}, self.id))
            power = number(site.get("P_Akku")) if len(storages) == 1 else None  # + discharge, a site total
            readings.append(m.BatteryReading(device_id=metas[-1].device_id, timestamp=now, power_w=power,
                                             **values(ctrl, DATA.battery)))
        extra = values(site, DATA.site_extra) | {"mode": site.get("Mode"), "meter_location": site.get("Meter_Location")}
        self.metas = metas
        return [m.GatewayReading(device_id=self.id, timestamp=now, devices_total=len(readings),
                                 devices_online=len(readings) - failed, **values(site, DATA.site),
                                 extra={k: v for k, v in extra.items() if isinstance(v, int | float | str)}),
                *readings]

    def inverter(self, ident: str, data: dict[str, Any], now: datetime) -> m.InverterReading:
        status, error = data.get("DeviceStatus") or {}, (data.get("DeviceStatus") or {}).get("ErrorCode")
        dc = [(number(data[u]), number(data.get(i))) for u, i in DATA.dc_inputs if u in data]
        dc_w = sum(u * i for u, i in dc if u is not None and i is not None) if dc else None
        return m.InverterReading(device_id=ident, timestamp=now, **values(data, DATA.inverter), dc_power_w=dc_w,
                                 state=DATA.inverter_state.get(str(status.get("StatusCode"))),
                                 extra={"error_code": error} if isinstance(error, int) and error else {})

    def meter(self, ident: str, meter: dict[str, Any], now: datetime) -> m.MeterReading:
        where = DATA.meter_location.get(str(meter.get("Meter_Location_Current")))
        sign = where.sign if where else 0  # an unknown location: no direction, so no power_w
        phases = [m.PhaseValues(phase=n, **{k: abs(v) if k == "power_factor" and v is not None else v
                                            for k, v in values(meter, DATA.meter_phase, n, sign).items()})
                  for n in (1, 2, 3) if any(v is not None for v in values(meter, DATA.meter_phase, n).values())]
        extra: dict[str, m.ExtraValue] = {"location": where.name} if where else \
            {"power_fronius_w": number(meter.get(DATA.meter["power_w"][0]))}
        return m.MeterReading(device_id=ident, timestamp=now, phases=phases, extra=extra,
                              **values(meter, DATA.meter, sign=sign))

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        return answer(command, self.id, "refused", f"{self.id}: the Solar API is read here, not written")

    async def close(self) -> None:
        await self.http.close()


FAMILY = FroniusSite
