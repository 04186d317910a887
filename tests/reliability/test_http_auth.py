"""Security: every HTTP write endpoint of the real http-api refuses a request without the bearer
token (401, JSON error) or with a wrong one, and nothing reaches the bus; reads stay open."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from wattbus import topics
from wattbus.bus import Message

from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto, free_port, wait_port

TOKEN = "s3cret-token-for-tests"
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/devices/goe-shelly-bridge/goe-1/command", {"command": "set_charge_current", "current_a": 16}),
    ("PUT", "/api/v1/loadpoints/lp1/mode", {"mode": "now"}),
    ("POST", "/api/v1/loadpoints/lp1/mode", {"mode": "now"}),
    ("PUT", "/api/v1/loadpoints/lp1/limits", {"max_current_a": 32}),
    ("POST", "/api/v1/discovery/rescan", None),
    ("POST", "/enableChargeSchedule", None),  # GivTCP REST
    ("POST", "/setChargeTarget", {"chargeToPercent": 100}),
    ("POST", "/", {"water_vto": 1}),  # MeterHub push
    ("POST", "/command/lp1?mode=now", None),  # MeterHub's command URL as a query (a GET: 405)
    ("POST", "/command/lp1", {"mode": "now"}),
]


def call(port: int, method: str, path: str, body: dict[str, Any] | None, token: str | None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.strip().startswith(b"{") else raw


@pytest.fixture
def http_api(broker: Mosquitto, start_service: Any, tmp_path: Path) -> int:
    port = free_port()
    config = tmp_path / "http.toml"
    config.write_text(f'[http-api]\nhost = "127.0.0.1"\nports = [{port}]\ntoken = "{TOKEN}"\n'
                      "trusted_networks = []\ncommand_timeout_s = 2\nstatus_interval_s = 1\n")
    start_service("wattbus_http_api", "--config", str(config), env=broker.env("http-api"))
    wait_port(port, 30)
    return port


async def test_writes_without_token_are_401(broker: Mosquitto, http_api: int) -> None:
    admin = await started_bus(broker, "test-admin", "http-auth")
    commands: list[str] = []

    def seen(msg: Message[bytes]) -> None:
        commands.append(msg.topic)

    for pattern in (f"{topics.PREFIX}/device/+/+/command", f"{topics.PREFIX}/loadpoint/+/command",
                    topics.DISCOVERY_COMMAND):
        admin.subscribe(pattern, bytes, seen)
    # The HTTP calls below block this loop, and the Bus sends its SUBSCRIBEs from the loop: make
    # sure they are active before, or the one command that should pass could be missed.
    await subscriptions_active(admin)
    try:
        for method, path, body in WRITES:
            for token in (None, "wrong-token", ""):
                status, doc = call(http_api, method, path, body, token)
                assert status == 401, f"{method} {path} token={token!r}: HTTP {status} {doc}"
                assert isinstance(doc, dict) and "token" in json.dumps(doc).lower(), doc
        read_status, _ = call(http_api, "GET", "/api/v1/devices", None, None)
        assert read_status == 200, "reads must stay open without a token"
        # The right token gets through to the bus: the 401s were the door, not a broken endpoint.
        status, doc = call(http_api, "POST", "/api/v1/discovery/rescan", None, TOKEN)
        assert status != 401, doc
        await until(lambda: topics.DISCOVERY_COMMAND in commands, 20, "rescan with the token reached the bus")
        assert commands == [topics.DISCOVERY_COMMAND], f"unauthorised requests reached the bus: {commands}"
    finally:
        await admin.stop()
