"""The embedded stack (`wattbus embedded`: Mosquitto + every service + simulators under supervisord)
started in a temporary run directory, with an admin observer on the bus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from wattbus import codec, topics
from wattbus import messages as m

from tests.reliability.mqtt_probe import Probe
from tests.support.servers import ROOT, free_port, wait_port


class Stack:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        self.log = (run_dir.parent / "embedded.log").open("wb")
        wattbus = Path(sys.executable).parent / "wattbus"
        self.proc = subprocess.Popen([str(wattbus), "embedded", "--root", str(ROOT), "--run-dir", str(run_dir)],
                                     env={**os.environ, "WATTBUS_EMBEDDED_PORT": str(self.port)},
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        wait_port(self.port, 60)
        self.observer = Probe(self.port, "admin", (run_dir / "secrets" / "admin").read_text().strip())
        if self.observer.connect() is None:
            raise RuntimeError("admin cannot log in to the embedded broker")
        self.observer.subscribe("wattbus/v1/#")

    def ctl(self, *args: str) -> str:
        ctl = Path(sys.executable).parent / "supervisorctl"
        out = subprocess.run([str(ctl), "-c", str(self.run_dir / "supervisord.conf"), *args],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def pid(self, program: str) -> int:
        text = self.ctl("pid", program)
        return int(text) if text.isdigit() else 0

    def last(self, topic: str) -> bytes | None:
        for got, payload in reversed(self.observer.received):
            if got == topic:
                return payload
        return None

    def availability(self, service: str) -> str | None:
        raw = self.last(topics.service_availability(service, "main"))
        return raw.decode() if raw is not None else None

    def status(self, service: str) -> m.ServiceStatus | None:
        raw = self.last(topics.service_status(service, "main"))
        return codec.decode(raw, m.ServiceStatus) if raw else None

    def messages_since(self, index: int, predicate: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p in self.observer.received[index:] if predicate(t)]

    def stop(self) -> None:
        self.observer.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Wait for predicate; returns the seconds it took (a figure for the report)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start
