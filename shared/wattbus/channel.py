"""One device's topic space as its owning service publishes it: meta, availability, readings, errors."""

from __future__ import annotations

from collections.abc import Callable

from . import messages as m
from . import topics
from .bus import Bus


class DeviceChannel:
    """Publishes one device's meta, availability and readings under its owner's topic space.

    `set_error(reason)` reports why the device cannot be read (its owner's `ServiceStatus.device_errors`,
    re-published at once); the next good reading clears it. Availability stays the bridge's call."""

    def __init__(self, bus: Bus, meta: m.DeviceMeta, on_error_change: Callable[[], None] | None = None) -> None:
        self.bus = bus
        self.meta = meta
        self._online: bool | None = None
        self.error: m.DeviceError | None = None
        self._on_error_change = on_error_change

    @property
    def device_id(self) -> str:
        return self.meta.device_id

    def announce(self, meta: m.DeviceMeta | None = None) -> None:
        if meta is not None:
            self.meta = meta
        self.bus.publish(topics.device_meta(self.meta.source, self.device_id), self.meta, retain=True)

    def set_online(self, online: bool) -> None:
        """Publish availability when it changes (retained)."""
        if online != self._online:
            self._online = online
            self.bus.publish(topics.device_availability(self.meta.source, self.device_id),
                             m.ONLINE if online else m.OFFLINE, retain=True)

    def set_error(self, reason: str) -> None:
        """The device could not be read, for this reason; `since` stays the first failure of the run."""
        if self.error is not None and self.error.error == reason:
            return
        self.error = m.DeviceError(device_id=self.device_id, address=self.meta.address, name=self.meta.name,
                                   error=reason, since=self.error.since if self.error else m.utc_now())
        if self._on_error_change is not None:
            self._on_error_change()

    def clear_error(self) -> None:
        if self.error is not None:
            self.error = None
            if self._on_error_change is not None:
                self._on_error_change()

    def publish_reading(self, reading: m.ReadingBase) -> None:
        self.set_online(True)
        self.clear_error()
        self.bus.publish(topics.device_reading(self.meta.source, self.device_id), reading)

    def offline_message(self) -> tuple[str, bytes]:
        return topics.device_availability(self.meta.source, self.device_id), m.OFFLINE.encode()
