"""The devices discovery knows: one entry per stable device id, whatever its current address.

A device is keyed by its serial-based id, so the same serial at a new address (DHCP) updates
the entry instead of creating a second device. An entry is marked gone after it was missing in
`gone_after` consecutive sweeps, or at once when its mDNS record says goodbye.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from wattbus import messages as m

from .found import Found


@dataclass
class Entry:
    announcement: m.DeviceAnnouncement
    misses: int = 0


class Registry:
    def __init__(self, gone_after: int) -> None:
        self.gone_after = gone_after
        self.entries: dict[str, Entry] = {}

    def present(self) -> list[m.DeviceAnnouncement]:
        return [e.announcement for e in self.entries.values() if e.announcement.present]

    def restore(self, announcement: m.DeviceAnnouncement) -> bool:
        """Take over a retained announcement from an earlier run (keeps first_seen, and lets a
        device that is no longer there be marked gone)."""
        if announcement.device_id in self.entries:
            return False
        self.entries[announcement.device_id] = Entry(announcement)
        return True

    def seen(self, found: Found, now: datetime | None = None) -> tuple[m.DeviceAnnouncement, str | None]:
        """Record a find; returns the announcement and the previous address if the device moved."""
        now = now or datetime.now(UTC)
        device_id = found.device_id
        entry = self.entries.get(device_id)
        moved: str | None = None
        first_seen = now
        if entry is not None:
            old = entry.announcement
            first_seen = old.first_seen
            if (old.address, old.port) != (found.address, found.port):
                moved = f"{old.address}:{old.port}"
        announcement = m.DeviceAnnouncement(
            device_id=device_id, protocol=found.protocol, address=found.address, port=found.port,
            unit_id=found.unit_id, kind=found.kind, manufacturer=found.manufacturer, model=found.model,
            serial=found.serial, present=True, first_seen=first_seen, last_seen=now, firmware=found.firmware,
            via="mdns" if found.via == "mdns" else "sweep", extra=dict(found.extra))
        self.entries[device_id] = Entry(announcement)
        return announcement, moved

    def end_sweep(self, seen_ids: set[str]) -> list[m.DeviceAnnouncement]:
        """Count a miss for every present device not seen; return the ones that are now gone."""
        gone: list[m.DeviceAnnouncement] = []
        for device_id, entry in self.entries.items():
            if device_id in seen_ids or not entry.announcement.present:
                entry.misses = 0 if device_id in seen_ids else entry.misses
                continue
            entry.misses += 1
            if entry.misses >= self.gone_after:
                entry.announcement = msgspec.structs.replace(entry.announcement, present=False)
                gone.append(entry.announcement)
        return gone

    def removed(self, device_id: str) -> m.DeviceAnnouncement | None:
        entry = self.entries.get(device_id)
        if entry is None or not entry.announcement.present:
            return None
        entry.announcement = msgspec.structs.replace(entry.announcement, present=False)
        return entry.announcement
