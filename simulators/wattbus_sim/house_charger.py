"""The simulated house's wallbox as the go-e simulator's ChargerModel (house_devices' go-e face)."""

from __future__ import annotations

from .house import House
from .house_ev import VOLTAGE_V, Ev

GOE_BASE_WH = 1_234_500.0  # the charger's lifetime total starts from a number, not from zero


class HouseCharger:
    """The house's wallbox as a goe.ChargerModel: the go-e firmware layer writes and reads it.

    The House owns the clock: `step()` from the firmware (on every status request) is a no-op,
    because the house advances on its own schedule (real time or faster) and must not be stepped
    twice. Plugging follows the day profile's EV window; `plug()` overrides it for tests.
    """

    def __init__(self, house: House) -> None:
        self.house = house
        self._last_ev: Ev | None = house.charger.ev

    def set_current_a(self, amps: float) -> None:
        self.house.charger.set_current_a(amps)

    def set_phases(self, phases: int) -> None:
        self.house.charger.set_phases(phases)

    def set_enabled(self, enabled: bool) -> None:
        self.house.charger.set_enabled(enabled)

    def plug(self, connected: bool) -> None:
        charger = self.house.charger
        if charger.ev is not None:
            self._last_ev = charger.ev
        charger.plug(self._last_ev if connected else None)

    def step(self, now_s: float) -> None:
        return None  # the house steps itself (see the class docstring)

    def power_w(self) -> float:
        return self.house.charger.power_w()

    def phase_currents_a(self) -> tuple[float, float, float]:
        c = self.house.charger
        amps = round(c.current_a(), 2)
        n = c.effective_phases() if amps > 0 else 0
        return (amps if n >= 1 else 0.0, amps if n >= 2 else 0.0, amps if n >= 3 else 0.0)

    def voltages_v(self) -> tuple[float, float, float]:
        return (VOLTAGE_V, VOLTAGE_V, VOLTAGE_V)

    def energy_total_wh(self) -> float:
        return GOE_BASE_WH + self.house.charger.energy_total_wh

    def session_energy_wh(self) -> float:
        return self.house.charger.session_energy_wh

    def car_connected(self) -> bool:
        return self.house.charger.ev is not None

    def car_full(self) -> bool:
        ev = self.house.charger.ev
        return ev is not None and ev.full

    def phases(self) -> int:
        return self.house.charger.phases
