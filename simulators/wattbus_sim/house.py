"""The simulated house: one physical model at 1 s resolution that every device simulator shares.

    house = House.from_profile("broken", start="06:00")
    house.charger.set_current_a(10); house.charger.set_enabled(True)
    house.step(1.0)                       # advance one second (any dt; internally 1 s steps)
    house.grid_power_w()                  # + import, - export (the contract's sign)
    house.pv_power_w(), house.load_power_w(), house.battery.power_w(), house.battery.soc_pct()
    house.charger.power_w(), house.relays["heater"].set_on(True)

Energy balance: grid = household load + EV + relay loads − PV + battery charge − battery discharge.
The battery is a hybrid inverter in self-consumption mode: it charges from what would be exported
and discharges to cover what would be imported, within its power and SOC limits, as commercial
systems do. Time is seconds since local midnight of the simulated day (`time_s`), and
`timestamp()` turns it into a UTC datetime on `date` for readings.

This module is a library, not a runnable simulator (`wattbus-sim` skips it); `house_bus` puts a
house on the bus, and the device simulators of other issues drive their values from a House.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .house_ev import Charger, ChargerTiming, Ev
from .house_profiles import BatterySpec, DayProfile, Household, Sky, clock_s, load_profile

__all__ = ["Battery", "Charger", "ChargerTiming", "Ev", "House", "Relay"]


@dataclass
class Battery:
    capacity_wh: float
    soc: float  # percent
    max_charge_w: float
    max_discharge_w: float
    min_soc_pct: float = 5.0
    efficiency: float = 0.95
    _power_w: float = 0.0  # + discharge, - charge (contract sign)
    energy_charge_wh: float = 0.0
    energy_discharge_wh: float = 0.0

    @classmethod
    def from_spec(cls, spec: BatterySpec) -> Battery:
        return cls(spec.capacity_wh, spec.soc_pct, spec.max_charge_w, spec.max_discharge_w,
                   spec.min_soc_pct, spec.efficiency)

    def power_w(self) -> float:
        return self._power_w

    def soc_pct(self) -> float:
        return self.soc

    def balance(self, net_w: float, dt_s: float) -> float:
        """Cover net_w (+ import need, - export surplus) as far as limits allow; returns battery power."""
        if net_w < 0:  # surplus: charge
            room_wh = (100.0 - self.soc) / 100.0 * self.capacity_wh / self.efficiency
            power = -min(-net_w, self.max_charge_w, room_wh * 3600.0 / dt_s)
        else:
            avail_wh = max(0.0, self.soc - self.min_soc_pct) / 100.0 * self.capacity_wh * self.efficiency
            power = min(net_w, self.max_discharge_w, avail_wh * 3600.0 / dt_s)
        energy_wh = power * dt_s / 3600.0
        if power < 0:
            self.soc += 100.0 * (-energy_wh * self.efficiency) / self.capacity_wh
            self.energy_charge_wh += -energy_wh
        else:
            self.soc -= 100.0 * (energy_wh / self.efficiency) / self.capacity_wh
            self.energy_discharge_wh += energy_wh
        self.soc = min(100.0, max(0.0, self.soc))
        self._power_w = power
        return power


@dataclass
class Relay:
    """A switchable surplus load (Shelly relay) with an optional thermostat (a water heater).

    With `max_temperature_c` set, the load heats a tank while on and its own thermostat cuts the
    element off at that temperature: the relay stays on but draws nothing, as in a real boiler.
    """

    name: str
    rated_w: float
    on: bool = False
    temperature_c: float | None = None
    max_temperature_c: float | None = None
    heat_k_per_kwh: float = 4.0  # ~ a 200 l tank
    loss_k_per_h: float = 0.4
    energy_wh: float = 0.0
    switches: int = 0

    def set_on(self, on: bool) -> None:
        if on != self.on:
            self.switches += 1
        self.on = on

    def power_w(self) -> float:
        if not self.on:
            return 0.0
        if self.temperature_c is not None and self.max_temperature_c is not None \
                and self.temperature_c >= self.max_temperature_c:
            return 0.0
        return self.rated_w

    def step(self, dt_s: float) -> None:
        power = self.power_w()
        self.energy_wh += power * dt_s / 3600.0
        if self.temperature_c is not None:
            self.temperature_c += power * dt_s / 3.6e6 * self.heat_k_per_kwh - self.loss_k_per_h * dt_s / 3600.0


@dataclass
class House:
    profile: DayProfile
    time_s: float = 0.0
    date: date = field(default_factory=lambda: date(2026, 6, 21))
    battery: Battery | None = None
    charger: Charger = field(default_factory=Charger)
    relays: dict[str, Relay] = field(default_factory=dict)
    sky: Sky = field(init=False)
    household: Household = field(init=False)
    # the last step's flows, in W
    _pv_w: float = 0.0
    _load_w: float = 0.0
    _grid_w: float = 0.0
    # energy totals, in Wh
    grid_import_wh: float = 0.0
    grid_export_wh: float = 0.0
    pv_energy_wh: float = 0.0
    _ev_window: tuple[float, float] | None = None
    _ev_template: Ev | None = None

    def __post_init__(self) -> None:
        self.sky = Sky(self.profile)
        self.household = Household(self.profile)
        self._pv_w = self.sky.pv_w(self.time_s)
        self._load_w = self.household.load_w(self.time_s)
        self._grid_w = self._load_w - self._pv_w

    @classmethod
    def from_profile(cls, profile: str | DayProfile, start: str = "00:00", *, with_heater: bool = True,
                     timing: ChargerTiming | None = None) -> House:
        day = load_profile(profile) if isinstance(profile, str) else profile
        battery = Battery.from_spec(day.battery) if day.battery else None
        relays = {"heater": Relay("heater", 2000.0, temperature_c=45.0, max_temperature_c=65.0)} if with_heater else {}
        house = cls(day, time_s=clock_s(start), battery=battery, charger=Charger(timing or ChargerTiming()),
                    relays=relays)
        if day.ev:
            spec = day.ev
            house._ev_template = Ev(spec.capacity_wh, spec.soc_pct, spec.max_current_a, spec.max_phases)
            house._ev_window = (clock_s(spec.connected_from), clock_s(spec.connected_until))
            house._update_plug()
        return house

    # ------------------------------------------------------------------ accessors (W, + as in messages.py)

    def timestamp(self) -> datetime:
        return datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC) + timedelta(seconds=self.time_s)

    def pv_power_w(self) -> float:
        return self._pv_w

    def load_power_w(self) -> float:
        """The household's own consumption (without EV, relays and battery)."""
        return self._load_w

    def relay_power_w(self) -> float:
        return sum(r.power_w() for r in self.relays.values())

    def grid_power_w(self) -> float:
        return self._grid_w

    def surplus_w(self) -> float:
        """PV minus household load: what an EV or a surplus load could take (before the battery)."""
        return self._pv_w - self._load_w

    # ------------------------------------------------------------------ time

    def _update_plug(self) -> None:
        if self._ev_window is None:
            return
        start, end = self._ev_window
        present = start <= self.time_s < end
        if present and self.charger.ev is None:
            self.charger.plug(self._ev_template)
        elif not present and self.charger.ev is not None:
            self.charger.plug(None)

    def step(self, dt_s: float = 1.0) -> None:
        """Advance by dt_s in steps of at most 1 s."""
        remaining = dt_s
        while remaining > 1e-9:
            dt = min(1.0, remaining)
            self._step(dt)
            remaining -= dt

    def _step(self, dt: float) -> None:
        self.time_s += dt
        self._update_plug()
        self.charger.step(dt)
        for relay in self.relays.values():
            relay.step(dt)
        self._pv_w = self.sky.pv_w(self.time_s)
        self._load_w = self.household.load_w(self.time_s)
        net = self._load_w + self.charger.power_w() + self.relay_power_w() - self._pv_w
        battery_w = self.battery.balance(net, dt) if self.battery else 0.0
        self._grid_w = net - battery_w
        energy = self._grid_w * dt / 3600.0
        if energy > 0:
            self.grid_import_wh += energy
        else:
            self.grid_export_wh -= energy
        self.pv_energy_wh += self._pv_w * dt / 3600.0
