"""The simulated house as a GivEnergy inverter: the FlowProvider behind house_devices' giv face."""

from __future__ import annotations

from .giv import Battery as GivBattery
from .giv import Inverter as GivInverter
from .house import House


class HouseGiv:
    """The house as the GivEnergy simulator's giv.FlowProvider: PV, grid and the house battery.

    The inverter's load is everything the house consumes (household, EV, relays), so that
    grid = load - PV - battery holds on the wire as in the house. Writes that the House battery
    can follow reach it: reserve (HR 110, also the eco pause at 100) becomes its min SOC, the
    charge/discharge rates (HR 111/112 in C/100 of its capacity, capped at its nominal power) its
    power limits. The
    House battery always runs self-consumption: it has no charge target (HR 20/116), no AC charge
    or forced export slots (HR 27/31/32/44/45/56/57/59/94-96) and no clock; such writes are
    accepted by the inverter's registers only and counted in `not_followed`.
    """

    RESERVE, CHARGE_RATE, DISCHARGE_RATE = 110, 111, 112

    def __init__(self, house: House) -> None:
        self.house = house
        b = house.battery
        self.nominal_charge_w = b.max_charge_w if b else 0.0
        self.nominal_discharge_w = b.max_discharge_w if b else 0.0
        self.not_followed: dict[int, int] = {}

    def pv_power_w(self) -> float:
        return self.house.pv_power_w()

    def load_power_w(self) -> float:
        h = self.house
        return h.load_power_w() + h.charger.power_w() + h.relay_power_w()

    def battery_power_w(self) -> float:
        return self.house.battery.power_w() if self.house.battery else 0.0

    def grid_power_w(self) -> float:
        return self.house.grid_power_w()

    def battery_soc_pct(self) -> float:
        return self.house.battery.soc_pct() if self.house.battery else 0.0

    def energy_wh(self) -> dict[str, float]:
        h, b = self.house, self.house.battery
        return {"pv": h.pv_energy_wh, "import": h.grid_import_wh, "export": h.grid_export_wh,
                "charge": b.energy_charge_wh if b else 0.0, "discharge": b.energy_discharge_wh if b else 0.0}

    def holding_written(self, register: int, value: int) -> None:
        b = self.house.battery
        if b is not None and register == self.RESERVE:
            b.min_soc_pct = float(value)
        elif b is not None and register == self.CHARGE_RATE:
            b.max_charge_w = min(b.capacity_wh * value / 100, self.nominal_charge_w)
        elif b is not None and register == self.DISCHARGE_RATE:
            b.max_discharge_w = min(b.capacity_wh * value / 100, self.nominal_discharge_w)
        else:
            self.not_followed[register] = self.not_followed.get(register, 0) + 1

    def inverter(self, batteries: int) -> GivInverter:
        """A giv.Inverter over this house; its packs split the house battery's capacity."""
        b = self.house.battery
        n = batteries if b is not None else 0
        serials = ["BG2345G001", "DZ2345G002", "BE2345G003", "BJ2345G004", "AC2345G005", "BG2345G006"]
        packs = [GivBattery(serials[i], capacity_ah=b.capacity_wh / 51.2 / n) for i in range(n)] if b else []
        inverter = GivInverter(packs, provider=self)
        if b is not None:
            inverter.hr.update({55: round(b.capacity_wh / 51.2), 110: min(100, max(4, round(b.min_soc_pct)))})
        return inverter
