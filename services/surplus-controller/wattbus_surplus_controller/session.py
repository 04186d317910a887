"""What a person wants to see on the loadpoint: this session's energy and duration, and in one
word why the car is (not) charging (the decision's `reason` has the detail)."""

from __future__ import annotations

from dataclasses import dataclass

from .model import ChargerView, Setting

# the charger states in which no car is plugged in (or nothing is known)
UNPLUGGED = ("idle", "unknown")


@dataclass
class Session:
    """One plug-in: from the first reading with a car connected until it is unplugged."""

    plugged_at: float | None = None
    energy_wh: float = 0.0  # integrated from the charger's power when it reports no session energy
    _at: float | None = None
    _power_w: float = 0.0

    def note(self, now: float, view: ChargerView) -> None:
        if view.state in UNPLUGGED:
            self.plugged_at, self._at, self.energy_wh, self._power_w = None, None, 0.0, 0.0
            return
        if self.plugged_at is None:
            self.plugged_at = now
        if self._at is not None:
            self.energy_wh += self._power_w * min(60.0, max(0.0, now - self._at)) / 3600.0
        self._at, self._power_w = now, view.power_w or 0.0

    def duration_s(self, now: float) -> float | None:
        return None if self.plugged_at is None else max(0.0, now - self.plugged_at)

    def session_energy_wh(self, view: ChargerView) -> float | None:
        """The charger's own session counter when it has one (go-e), else the integral."""
        if self.plugged_at is None:
            return None
        return view.session_energy_wh if view.session_energy_wh is not None else round(self.energy_wh, 1)


def status(setting: Setting, view: ChargerView, alert: str | None) -> str:
    """A short, fixed vocabulary for why the car is (not) charging."""
    reason = setting.reason
    if view.state == "idle":
        return "no_vehicle"
    if view.state == "complete":
        return "vehicle_full"
    if alert is not None or reason.startswith("safe state"):
        return "safe_state"
    if reason.startswith("mode off"):  # a note may follow (the charger's current range)
        return "mode_off"
    if not setting.enabled:
        if "import allowance" in reason:
            return "waiting_import_window"
        if "minimum off time" in reason or "starting after" in reason:
            return "waiting_delay"
        return "waiting_for_surplus"
    if reason.startswith("plan: "):
        return "charging_by_plan"
    if reason.startswith("mode now"):
        return "charging_now"
    if "at minimum" in reason or "import allowance" in reason:
        return "charging_at_minimum"
    return "charging_from_surplus"
