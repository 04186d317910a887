"""Counters a service reports in its status: messages in/out, rejected, errors, and its own."""

from __future__ import annotations

import threading


class Counters:
    """Thread-safe (paho's thread and the asyncio loop both count)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: int = 1) -> int:
        with self._lock:
            value = self._values.get(name, 0) + amount
            self._values[name] = value
            return value

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._values[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._values.items()))
