"""Real servers for the tests, each on a free loopback port in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from wattbus.config import BusConfig
from wattbus.embedded import BrokerFiles, write_broker

ROOT = Path(__file__).resolve().parents[2]
TEST_ADMIN = "test-admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary) if p.exists()), None)
    if path is None:
        pytest.fail(f"{binary} not found: `make test` installs the Debian package {package}")
    return path


class Mosquitto:
    """A real Mosquitto with the project's ACL and per-service users; anonymous access off."""

    def __init__(self, run_dir: Path) -> None:
        self.binary = require("mosquitto", "mosquitto")
        self.port = free_port()
        self.files: BrokerFiles = write_broker(
            ROOT, run_dir, self.port, anonymous=False, extra_users=(TEST_ADMIN,),
            extra_acl=f"\nuser {TEST_ADMIN}\ntopic readwrite #\ntopic readwrite $SYS/#\n",
            persistence=False)
        self.log = run_dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.files.conf)], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)
        self.proc = None

    def bus_config(self, user: str = TEST_ADMIN, **overrides: object) -> BusConfig:
        values: dict[str, object] = {"host": "127.0.0.1", "port": self.port, "username": user,
                                     "password": self.files.password(user), "reconnect_max_s": 2.0}
        values.update(overrides)
        return BusConfig(**values)  # type: ignore[arg-type]

    def env(self, user: str) -> dict[str, str]:
        """Environment for a service subprocess logging in as `user`."""
        return {"WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(self.port),
                "WATTBUS_BUS_USERNAME": user, "WATTBUS_BUS_PASSWORD": self.files.password(user),
                "WATTBUS_BUS_RECONNECT_MAX_S": "2"}


class InfluxDB1:
    """Debian's influxd (1.x): the v1 /write and /query API."""

    def __init__(self, run_dir: Path) -> None:
        self.binary = require("influxd", "influxdb")
        self.port, rpc = free_port(), free_port()
        self.dir = run_dir
        conf = run_dir / "influxdb.conf"
        conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{run_dir}/meta"
[data]
  dir = "{run_dir}/data"
  wal-dir = "{run_dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
""")
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.dir / "influxd.log").open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-config", str(self.conf)], stdout=log, stderr=log)
        wait_http(f"{self.url}/ping")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc = None


class VictoriaMetrics:
    """Debian's victoria-metrics: accepts InfluxDB line protocol on /write and /api/v2/write."""

    def __init__(self, run_dir: Path) -> None:
        self.binary = require("victoria-metrics", "victoria-metrics")
        self.port = free_port()
        self.dir = run_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.dir / "victoria.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"-storageDataPath={self.dir}/data", f"-httpListenAddr=127.0.0.1:{self.port}",
                 "-search.latencyOffset=0s", "-search.disableCache"], stdout=log, stderr=log)
        wait_http(f"{self.url}/health")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc = None


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class SimulatorProcess:
    """A device simulator (`python -m wattbus_sim <module> --port <free port> ...`) as a subprocess."""

    def __init__(self, log: Path, module: str, *args: str) -> None:
        self.port = free_port()
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "wattbus_sim", module, "--port", str(self.port), *args],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
