"""iotic's daily stats: per-day min/max of every numeric point and the operating states seen."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from .decode import DecodedModel

STATE_POINTS = ("St", "ChaSt", "DCSt", "State")


class DailyStats:
    def __init__(self) -> None:
        self.day: date | None = None
        self.models: dict[int, dict[str, Any]] = {}

    def update(self, ts: datetime, decoded: list[DecodedModel]) -> None:
        local_day = ts.astimezone().date()  # "today" is the installation's local day
        if local_day != self.day:
            self.day, self.models = local_day, {}
        for model in decoded:
            if model.model_id == 1:
                continue
            entry = self.models.setdefault(model.model_id, {"min": {}, "max": {}, "states": []})
            for name, value in model.values.items():
                if name.endswith("_SF"):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    low, high = entry["min"].get(name), entry["max"].get(name)
                    entry["min"][name] = value if low is None else min(low, value)
                    entry["max"][name] = value if high is None else max(high, value)
                elif name in STATE_POINTS and isinstance(value, str) and value not in entry["states"]:
                    entry["states"].append(value)

    def document(self, model_id: int) -> dict[str, Any]:
        entry = self.models.get(model_id, {"min": {}, "max": {}, "states": []})
        return {"day": self.day.isoformat() if self.day else None, **entry}
