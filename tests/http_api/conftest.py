"""The http-api as a real subprocess on a free loopback port, logged in as `http-api`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.house_site import HOUSE_SITE
from tests.support.servers import Mosquitto, SimulatorProcess, free_port, wait_port

MODULE = "wattbus_http_api"
DATA = Path(__file__).parent / "data"


# The house's roles: the session broker also holds other tests' retained devices (giv-bridge, ...),
# so automatic role detection would see several meters and inverters.
HOUSE_ROLES = """
[site]
grid = "house-sim/house-meter"
pv = ["house-sim/house-pv"]
battery = ["house-sim/house-battery"]
chargers = ["house-sim/house-wallbox"]
"""


@dataclass
class HttpApi:
    port: int
    proc: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        """One real HTTP request; returns (status, decoded JSON or text, headers)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text, headers = resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, text, headers = exc.code, exc.read().decode(), dict(exc.headers)
        try:
            return status, json.loads(text), headers
        except json.JSONDecodeError:
            return status, text, headers


@pytest.fixture
def http_api(broker: Mosquitto, tmp_path: Path, start_service: Any) -> Callable[..., HttpApi]:
    def start(config: str = "", user: str = "http-api", roles: str = HOUSE_ROLES) -> HttpApi:
        port = free_port()
        path = tmp_path / f"http-api-{port}.toml"
        # Loopback trusted, as in the embedded demo, unless the test's config says otherwise.
        trusted = "" if "trusted_networks" in config else 'trusted_networks = ["127.0.0.1/32"]\n'
        history = "" if "history_file" in config else f'history_file = "{tmp_path / f"history-{port}.sqlite3"}"\n'
        path.write_text(f'[http-api]\nports = [{port}]\ninstance = "t{port}"\nstatus_interval_s = 5\n{trusted}'
                        f'{history}{config}\n{roles}\n')
        proc = start_service(MODULE, "--config", str(path), env=broker.env(user))
        try:
            wait_port(port, 30)
        except TimeoutError:
            pytest.fail(f"http-api did not listen on {port}:\n{proc.output()[-3000:]}")
        return HttpApi(port, proc)
    return start


def load_readings(name: str) -> list[tuple[str, bytes]]:
    """Recorded bus traffic: JSON lines {"topic": ..., "payload": <the JSON the bridge published>}."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            record = json.loads(line)
            payload = record["payload"]
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            out.append((record["topic"], data))
    return out


@pytest.fixture
def giv_sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path / "giv-sim.log", "giv", "--batteries", "2")
    yield sim
    sim.stop()


CONTROLLER = HOUSE_SITE + """
[surplus-controller]
state_file = "{state}"
status_interval_s = 5
"""


@pytest.fixture
def house(broker: Mosquitto, tmp_path: Path, start_service: Any) -> Any:
    """The simulated house on the bus in real time plus the real surplus controller for loadpoint `garage`."""
    config = tmp_path / "controller.toml"
    config.write_text(CONTROLLER.format(state=tmp_path / "controller-state.json"))
    start_service("wattbus_sim", "house_bus", "--speed", "1", "--interval", "1", "--start", "12:00", "--end",
                  "18:00", "--profile", "clear", env=broker.env("house-sim"))
    return start_service("wattbus_surplus_controller", "--config", str(config), env=broker.env("surplus-controller"))
