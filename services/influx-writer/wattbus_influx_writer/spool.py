"""The on-disk spool (points waiting for the database) and the dead-letter file.

The spool is a directory of segment files `<seq>.lp`, one per batch, plain line protocol, written
atomically (temp file + rename, optionally fsync'ed) so a crash never leaves half a segment. They
are replayed oldest first; a segment stays until the server took every line of it. The spool is
bounded: past `max_bytes` the oldest segments are dropped, counted and logged loudly — the one
place points are lost, and only after the database was away long enough to fill it.

Thread-safe: the MQTT network thread appends during shutdown while the event loop replays.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wattbus.counters import Counters
from wattbus.log import Logger


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    lines: list[str]
    created: float  # wall-clock seconds, for the lag figure


class Spool:
    def __init__(self, directory: Path, max_bytes: int, fsync: bool, counters: Counters, log: Logger) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.counters = counters
        self.log = log
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()  # a crash mid-write: the lines were never acknowledged as spooled
        self._segments: list[tuple[Path, int, int]] = []  # path, bytes, points (oldest first)
        for path in sorted(self.dir.glob("*.lp")):
            data = path.read_bytes()
            self._segments.append((path, len(data), data.count(b"\n")))
        self._seq = int(self._segments[-1][0].stem) + 1 if self._segments else 1
        self._publish_gauges()

    @property
    def points(self) -> int:
        with self._lock:
            return sum(s[2] for s in self._segments)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._segments)

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        data = "".join(lines).encode()
        with self._lock:
            path = self.dir / f"{self._seq:016d}.lp"
            self._seq += 1
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as out:
                out.write(data)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, path)
            self._segments.append((path, len(data), len(lines)))
            self._enforce_bound()
        self.counters.inc("spooled", len(lines))
        self._publish_gauges()

    def oldest(self) -> Segment | None:
        with self._lock:
            if not self._segments:
                return None
            path = self._segments[0][0]
        data = path.read_bytes()
        return Segment(path, data.decode().splitlines(keepends=True), path.stat().st_mtime)

    def done(self, segment: Segment, remaining: list[str]) -> None:
        """Drop a replayed segment, or shrink it to the lines the server has not taken yet."""
        with self._lock:
            if not self._segments or self._segments[0][0] != segment.path:
                return  # dropped by the bound meanwhile
            if remaining:
                data = "".join(remaining).encode()
                tmp = segment.path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, segment.path)
                self._segments[0] = (segment.path, len(data), len(remaining))
            else:
                segment.path.unlink(missing_ok=True)
                self._segments.pop(0)
        self._publish_gauges()

    def _enforce_bound(self) -> None:
        total = sum(s[1] for s in self._segments)
        while total > self.max_bytes and len(self._segments) > 1:
            path, size, points = self._segments.pop(0)
            path.unlink(missing_ok=True)
            total -= size
            self.counters.inc("spool_dropped", points)
            self.log.error("spool full: dropped the oldest points", segment=path.name, points=points,
                           max_bytes=self.max_bytes)

    def _publish_gauges(self) -> None:
        with self._lock:
            self.counters.set("spool_points", sum(s[2] for s in self._segments))
            self.counters.set("spool_bytes", sum(s[1] for s in self._segments))


class DeadLetters:
    """JSON lines: the point (or payload), why it was refused, and when. Rotated once at max_bytes."""

    def __init__(self, path: Path, max_bytes: int, counters: Counters, log: Logger) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.counters = counters
        self.log = log
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, reason: str, *, line: str | None = None, topic: str | None = None,
            payload: bytes | None = None, counter: str = "dead_lettered") -> None:
        record: dict[str, str | float] = {"time": round(time.time(), 3), "reason": reason}
        if line is not None:
            record["line"] = line.rstrip("\n")
        if topic is not None:
            record["topic"] = topic
        if payload is not None:
            record["payload"] = payload[:4096].decode("utf-8", "replace")
        text = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self.path.exists() and self.path.stat().st_size + len(text) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as out:
                out.write(text)
        count = self.counters.inc(counter)
        if count <= 20 or count % 100 == 0:
            self.log.warning("dead-lettered", reason=reason, topic=topic, file=str(self.path), total=count)
