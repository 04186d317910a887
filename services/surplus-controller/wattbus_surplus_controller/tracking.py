"""What the controller believes each charger was told, and how that belief is corrected.

A command is only a wish until the bridge confirms it. Three ways the belief goes wrong on a real
bus, each with its own repair:
- the bridge was not subscribed yet (it is starting, or restarting): the command is lost without a
  refusal. When the bridge's retained availability turns online, forget what was sent so the next
  decision sends the whole setting again;
- the bridge refused it (`refused`, `failed`, `invalid`, `unsupported`, `timeout`): the charger
  kept its old value. Take the reason, and believe the charger's own readings at once instead of
  waiting for a periodic resync; the same command is not repeated for `resync_s` so a bridge that
  keeps refusing does not get a command per meter reading;
- nobody answered (response-topic mode times out): as lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import ChargerView, Phases, Setting

# the tags of the charger commands the controller sends
PHASES, CURRENT, CHARGING = "set_phases", "set_charge_current", "set_charging"


@dataclass
class Sent:
    """What the controller last commanded a charger, and when (controller clock)."""

    enabled: bool | None = None
    current_a: float | None = None
    phases: int | None = None
    at: float = float("-inf")
    blocked: dict[str, float] = field(default_factory=dict)  # command tag -> not again before

    def from_readings(self, view: ChargerView, now: float) -> None:
        """Believe the charger: what it reports is what it does (unknown stays unknown)."""
        self.enabled, self.current_a, self.phases = view.enabled, view.set_current_a, view.phases
        self.at = now

    def forget(self) -> None:
        """The next decision sends the whole setting again (the bridge may have missed it)."""
        self.enabled = self.current_a = self.phases = None
        self.at = float("-inf")
        self.blocked.clear()

    def is_blocked(self, tag: str, now: float) -> bool:
        until = self.blocked.get(tag)
        if until is None:
            return False
        if now >= until:
            del self.blocked[tag]
            return False
        return True


def adopt_readings(setting: Setting, view: ChargerView, refused_tag: str) -> None:
    """After a refusal, the strategy plans from what the charger does, not from what it was told.

    Only the refused dimension is taken over; the others may well have been applied."""
    if refused_tag == CHARGING and view.enabled is not None:
        setting.enabled = view.enabled
    elif refused_tag == CURRENT and view.set_current_a is not None:
        setting.current_a = view.set_current_a
    elif refused_tag == PHASES and view.phases in (1, 3):
        phases: Phases = 1 if view.phases == 1 else 3
        setting.phases = phases
