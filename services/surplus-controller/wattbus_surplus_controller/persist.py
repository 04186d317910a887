"""Mode and limits per loadpoint survive a restart: a small JSON file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from .model import LoadpointChoices


class StoredLoadpoint(msgspec.Struct, forbid_unknown_fields=False):
    mode: str
    min_current_a: float
    max_current_a: float
    plan_soc_pct: int | None = None  # absent in files written before the plan existed
    plan_time: str | None = None
    plan_min_soc_pct: int | None = None
    plan_set: bool = False  # False in a file from before the plan: the config's plan applies


class StateFile:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def load(self) -> tuple[dict[str, StoredLoadpoint], str | None]:
        """The stored settings, and a problem description when the file was unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            return {}, f"state file {self.path}: cannot read it ({exc.strerror})"
        try:
            return msgspec.json.decode(raw, type=dict[str, StoredLoadpoint]), None
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return {}, f"state file {self.path}: {exc}; starting from the config"

    def save(self, settings: dict[str, LoadpointChoices]) -> None:
        data = {k: StoredLoadpoint(v.mode, v.min_current_a, v.max_current_a, v.plan_soc_pct, v.plan_time,
                                   v.plan_min_soc_pct, True) for k, v in settings.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(data))
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a file
