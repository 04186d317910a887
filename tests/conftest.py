"""Session fixtures: real servers on free loopback ports (see tests/support/servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ROOT, InfluxDB1, Mosquitto, VictoriaMetrics


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that kill and restart it."""
    server = Mosquitto(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    server.start()
    yield server
    server.stop()


class ServiceProcess:
    """A service started as a real subprocess (`python -m wattbus_<name>`)."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", module, *args], env=full_env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[object]:
    started: list[ServiceProcess] = []

    def start(module: str, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        proc = ServiceProcess(module, list(args), env or {}, tmp_path / f"{module}-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
