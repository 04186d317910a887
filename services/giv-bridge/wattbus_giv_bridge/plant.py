"""One inverter with its batteries (and optional meters / EMS) behind one dongle.

One poll reads every register block the maps list into per-address caches; values, contract
readings and the GivTCP document are all derived from those caches (measurements as data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from wattbus import messages as m
from wattbus import topics

from . import regmap
from .config import InverterConfig
from .dongle import Dongle, DongleError
from .regmap import RegisterCache, Value

BATTERY_BASE_ADDRESS = 0x32
EMS_ADDRESS = 0x11
FUNCTION = {"hr": 3, "ir": 4}
NOMINAL_CELL_STACK_V = 51.2  # an LV pack's nominal voltage: capacity Wh = HR 55 (Ah) x 51.2
MAX_RATE = 50  # HR 111/112 in C/100: 50 = 0.5 C, the documented top of the range
# IR 0: waiting, normal, warning, fault, firmware update
STATUS = {0: "sleeping", 1: "mppt", 2: "throttled", 3: "fault", 4: "starting"}


@dataclass
class Plant:
    config: InverterConfig
    dongle: Dongle
    caches: dict[int, RegisterCache] = field(default_factory=dict)
    serial: str | None = None
    battery_serials: dict[int, str] = field(default_factory=dict)
    last_poll: datetime | None = None
    previous_poll: datetime | None = None
    _decoded: dict[tuple[str, int], tuple[int, Mapping[str, Value]]] = field(default_factory=dict, repr=False)

    def cache(self, address: int) -> RegisterCache:
        return self.caches.setdefault(address, RegisterCache())

    async def read_map(self, address: int, name: str) -> None:
        for block in regmap.load(name).blocks:
            answer = await self.dongle.read(address, FUNCTION[block.bank], block.base, block.count)
            self.cache(address).update(block.bank, answer.base, answer.values)

    async def poll(self) -> list[str]:
        """Read everything once; returns the problems with optional parts (missing batteries...)."""
        problems: list[str] = []
        await self.read_map(self.config.address, "inverter")
        values = self.inverter_values()
        serial = values.get("serial_number")
        if isinstance(serial, str):
            if self.serial and serial != self.serial:
                raise DongleError(f"inverter serial changed from {self.serial} to {serial}: suspicious block")
            self.serial = serial
        for index in range(self.config.batteries):
            address = BATTERY_BASE_ADDRESS + index
            try:
                await self.read_map(address, "battery")
            except DongleError as exc:
                problems.append(f"battery {index + 1} at {address:#04x}: {exc}")
                continue
            bserial = regmap.load("battery").decode(self.cache(address)).get("serial_number")
            if isinstance(bserial, str):
                self.battery_serials[index] = bserial
        for meter in self.config.meters:
            try:
                await self.read_map(meter, "meter")
            except DongleError as exc:
                problems.append(f"meter at {meter:#04x}: {exc}")
        if self.config.ems:
            try:
                await self.read_map(EMS_ADDRESS, "ems")
            except DongleError as exc:
                problems.append(f"EMS at {EMS_ADDRESS:#04x}: {exc}")
        self.previous_poll, self.last_poll = self.last_poll, datetime.now(UTC)
        return problems

    # ------------------------------------------------------------------ values

    def decoded(self, name: str, address: int) -> Mapping[str, Value]:
        """The register map decoded from the cache, once per poll: the readings, the device metas
        and GivTCP's runAll all ask for the same values (decoding was half the bridge's CPU)."""
        cache = self.cache(address)
        hit = self._decoded.get((name, address))
        if hit is None or hit[0] != cache.version:
            hit = self._decoded[(name, address)] = (cache.version, MappingProxyType(regmap.load(name).decode(cache)))
        return hit[1]

    def inverter_values(self) -> Mapping[str, Value]:
        return self.decoded("inverter", self.config.address)

    def battery_values(self, index: int) -> Mapping[str, Value]:
        return self.decoded("battery", BATTERY_BASE_ADDRESS + index)

    def meter_values(self, address: int) -> Mapping[str, Value]:
        return self.decoded("meter", address)

    def ems_values(self) -> Mapping[str, Value]:
        return self.decoded("ems", EMS_ADDRESS)

    def capacity_wh(self) -> float | None:
        """The battery capacity the inverter is set up for (HR 55 Ah at the LV pack's 51.2 V)."""
        ah = self.inverter_values().get("battery_capacity_ah")
        return float(ah) * NOMINAL_CELL_STACK_V if isinstance(ah, int) and ah > 0 else None

    def max_rate_w(self) -> float:
        """The most the battery can charge or discharge: the configured limit, at most 0.5 C."""
        capacity = self.capacity_wh()
        limit = self.config.battery_max_power_w
        return limit if capacity is None else min(limit, capacity * MAX_RATE / 100)

    def rate_w(self, raw: Value) -> int | None:
        """A rate register (C/100 of the pack) in watts, capped by what the battery can do."""
        if not isinstance(raw, int) or isinstance(raw, bool):
            return None
        capacity = self.capacity_wh()
        if capacity is None:  # no capacity set: 50 stands for the configured limit
            return round(min(raw, MAX_RATE) / MAX_RATE * self.config.battery_max_power_w)
        return round(min(raw / 100 * capacity, self.max_rate_w()))

    def rate_register(self, watts: float) -> int:
        """The rate register value (C/100) for a power in watts (at or under max_rate_w)."""
        capacity = self.capacity_wh()
        if watts >= self.max_rate_w():
            return MAX_RATE
        if capacity is None:
            return round(watts / self.config.battery_max_power_w * MAX_RATE)
        return min(MAX_RATE, math.ceil(watts / capacity * 100))

    # ------------------------------------------------------------------ identity

    @property
    def device_id(self) -> str:
        ident: str = topics.slug("givenergy", self.serial or f"{self.config.host}-{self.config.port}")
        return ident

    def battery_id(self, index: int) -> str:
        serial = self.battery_serials.get(index)
        return topics.slug("givenergy", serial) if serial else f"{self.device_id}-battery-{index + 1}"

    def metas(self, source: str, capabilities: Sequence[str] = ()) -> list[m.DeviceMeta]:
        """The inverter and its children; `capabilities` (command tags) for the inverter and its battery."""
        values = self.inverter_values()
        address = f"tcp://{self.config.host}:{self.config.port}/{self.config.address}"
        firmware = f"D0.{values.get('dsp_firmware')}-A0.{values.get('arm_firmware')}"
        metas = [m.DeviceMeta(device_id=self.device_id, kind="inverter", source=source, protocol="givenergy",
                              manufacturer="GivEnergy", model=model_name(values.get("device_type_code")),
                              serial=self.serial, firmware=firmware, address=address, name=self.config.name,
                              capabilities=list(capabilities)),
                 m.DeviceMeta(device_id=f"{self.device_id}-grid", kind="meter", source=source,
                              protocol="givenergy", manufacturer="GivEnergy", model="CT clamp",
                              parent_id=self.device_id, address=address),
                 m.DeviceMeta(device_id=f"{self.device_id}-battery", kind="battery", source=source,
                              protocol="givenergy", manufacturer="GivEnergy", model="battery (inverter view)",
                              parent_id=self.device_id, address=address, capabilities=list(capabilities))]
        for pv in (1, 2):
            metas.append(m.DeviceMeta(device_id=f"{self.device_id}-pv{pv}", kind="string", source=source,
                                      protocol="givenergy", manufacturer="GivEnergy", parent_id=self.device_id,
                                      name=f"PV string {pv}", address=address))
        for index, serial in sorted(self.battery_serials.items()):
            metas.append(m.DeviceMeta(device_id=self.battery_id(index), kind="battery", source=source,
                                      protocol="givenergy", manufacturer="GivEnergy", serial=serial,
                                      address=f"tcp://{self.config.host}:{self.config.port}/"
                                              f"{BATTERY_BASE_ADDRESS + index}",
                                      parent_id=self.device_id, name=f"battery {index + 1}"))
        for meter in self.config.meters:
            metas.append(m.DeviceMeta(device_id=f"{self.device_id}-meter-{meter}", kind="meter", source=source,
                                      protocol="givenergy", manufacturer="GivEnergy", parent_id=self.device_id,
                                      address=f"tcp://{self.config.host}:{self.config.port}/{meter}"))
        return metas


def model_name(code: Value) -> str | None:
    if not isinstance(code, int):
        return None
    family = {"2": "Hybrid", "3": "AC", "4": "Hybrid HV", "5": "EMS", "6": "Three phase", "8": "All in One"}
    return f"{family.get(f'{code:04x}'[0], 'Inverter')} ({code:04x})"


def _num(value: Value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sum(*values: Value) -> float | None:
    numbers = [_num(v) for v in values]
    return None if any(n is None for n in numbers) else sum(n for n in numbers if n is not None)


def readings(plant: Plant, now: datetime) -> list[m.ReadingBase]:
    """The contract readings of one poll (SI units, signs as in messages.py)."""
    v = plant.inverter_values()
    dev = plant.device_id
    grid_export = _num(v["grid_export_power_w"])
    out: list[m.ReadingBase] = [
        m.InverterReading(device_id=dev, timestamp=now, power_w=_num(v["inverter_power_w"]),
                          dc_power_w=_sum(v["pv1_power_w"], v["pv2_power_w"]),
                          energy_total_wh=_num(v["pv_total_wh"]), energy_today_wh=_num(v["pv_today_wh"]),
                          frequency_hz=_num(v["grid_frequency_hz"]), temperature_c=_num(v["heatsink_temperature_c"]),
                          state=STATUS.get(v["status"]) if isinstance(v["status"], int) else None, online=True,
                          phases=[m.PhaseValues(phase=1, voltage_v=_num(v["grid_voltage_v"]),
                                                current_a=_num(v["grid_current_a"]))],
                          extra={"load_power_w": v["load_power_w"], "eps_power_w": v["eps_power_w"],
                                 "fault_code": v["fault_code"], "warning_code": v["warning_code"]}),
        m.MeterReading(device_id=f"{dev}-grid", timestamp=now,
                       power_w=None if grid_export is None else -grid_export,
                       energy_import_wh=_num(v["import_total_wh"]), energy_export_wh=_num(v["export_total_wh"]),
                       frequency_hz=_num(v["grid_frequency_hz"])),
        m.BatteryReading(device_id=f"{dev}-battery", timestamp=now, power_w=_num(v["battery_power_w"]),
                         soc_pct=_num(v["battery_soc_pct"]), voltage_v=_num(v["battery_voltage_v"]),
                         current_a=_num(v["battery_current_a"]), temperature_c=_num(v["battery_temperature_c"]),
                         energy_charge_wh=_num(v["battery_charge_total_wh"]),
                         energy_discharge_wh=_num(v["battery_discharge_total_wh"])),
    ]
    for index in (1, 2):
        out.append(m.StringReading(device_id=f"{dev}-pv{index}", inverter_id=dev, index=index, timestamp=now,
                                   power_w=_num(v[f"pv{index}_power_w"]), voltage_v=_num(v[f"pv{index}_voltage_v"]),
                                   current_a=_num(v[f"pv{index}_current_a"])))
    for index in sorted(plant.battery_serials):
        b = plant.battery_values(index)
        cells = [_num(b[f"cell_{i:02d}_v"]) for i in range(1, 17)]
        temps = [_num(b[f"cells_{a:02d}_{a + 3:02d}_temperature_c"]) for a in (1, 5, 9, 13)]
        design_ah, volts = _num(b["capacity_design_ah"]), _num(b["cells_sum_v"])
        out.append(m.BatteryReading(
            device_id=plant.battery_id(index), timestamp=now, soc_pct=_num(b["soc_pct"]), voltage_v=volts,
            current_a=_num(b["current_a"]), temperature_c=_num(b["max_temperature_c"]),
            capacity_wh=None if design_ah is None or volts is None else round(design_ah * 51.2, 1),
            energy_charge_wh=_num(b["charge_total_wh"]), energy_discharge_wh=_num(b["discharge_total_wh"]),
            cell_voltages_v=[c for c in cells if c is not None],
            cell_temperatures_c=[t for t in temps if t is not None],
            extra={"cycles": b["cycles"], "bms_firmware": b["bms_firmware"]}))
    for meter in plant.config.meters:
        mv = plant.meter_values(meter)
        out.append(m.MeterReading(device_id=f"{dev}-meter-{meter}", timestamp=now, power_w=_num(mv["power_w"]),
                                  energy_import_wh=_num(mv["import_wh"]), energy_export_wh=_num(mv["export_wh"]),
                                  frequency_hz=_num(mv["frequency_hz"])))
    return out
