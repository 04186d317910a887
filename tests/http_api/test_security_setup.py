"""Issue #21, items 1, 3 and 4 against a real http-api over real sockets: the config is read only
with the token, secrets never come back, a rebinding Host cannot write, the access keys and paths
cannot be changed over HTTP. Every refusal leaves the config file's bytes as they were."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.http_api.raw import OTHER, Answer, send
from tests.support.servers import Mosquitto, free_port, wait_port

TOKEN = "api-token-777"
SECRETS = ("bus-secret-1", TOKEN, "shelly-secret-2", "goe-secret-3", "influx-secret-4", "wifi-secret-5")
CONFIG = """# the installation's file
[bus]
password = "bus-secret-1"

[http-api]
ports = [{port}]
status_interval_s = 5
token = "api-token-777"
trusted_networks = ["127.0.0.1/32"]  # as in the embedded demo
allowed_hosts = ["gateway.home.lan"]

[http-api.setup]
reload_timeout_s = 0.2

[goe-shelly-bridge]
shelly_password = "shelly-secret-2"

[[goe-shelly-bridge.devices]]
url = "http://192.0.2.10"
password = "goe-secret-3"

[[goe-shelly-bridge.devices]]
url = "http://192.0.2.11"
password_file = "/run/secrets/goe-2"

[influx-writer]
url = "http://127.0.0.1:8086"
password = "influx-secret-4"
spool_dir = "/var/lib/wattbus/spool"

[ecu-bridge]
[[ecu-bridge.ecus]]
host = "192.0.2.20"
wifi_password = "wifi-secret-5"

[sml-reader]
[[sml-reader.meters]]
key = "main"
port = "/dev/ttyUSB0"
"""


@pytest.fixture
def gateway(broker: Mosquitto, tmp_path: Path, start_service: Any) -> Callable[[str], tuple[Path, int]]:
    def start(text: str = CONFIG) -> tuple[Path, int]:
        port = free_port()
        path = tmp_path / "wattbus.toml"
        path.write_text(text.format(port=port))
        start_service("wattbus_http_api", "--config", str(path), env=broker.env("http-api"))
        wait_port(port, 30)
        return path, port
    return start


def section(port: int, name: str, **kw: Any) -> Answer:
    return send(port, "GET", f"/api/v1/setup/sections/{name}", **kw)


def put(port: int, name: str, body: Any, **kw: Any) -> Answer:
    return send(port, "PUT", f"/api/v1/setup/sections/{name}", body, **kw)


def no_secret_in(answer: Answer) -> None:
    text = str(answer.doc)
    assert not [s for s in SECRETS if s in text], f"a secret came back: {text[:2000]}"


def test_config_reads_need_the_token_and_never_show_a_secret(gateway: Callable[[str], tuple[Path, int]]) -> None:
    _path, port = gateway(CONFIG)
    for path in ("/api/v1/setup", "/api/v1/setup/devices", "/api/v1/setup/sections/goe-shelly-bridge"):
        refused = send(port, "GET", path, source=OTHER)
        assert refused.status == 401 and "Bearer" in refused.error, (path, refused)
        assert send(port, "GET", path, source=OTHER, token="wrong").status == 401
        assert send(port, "GET", path, source=OTHER, token=TOKEN).status == 200, path
    assert send(port, "GET", "/api/v1/site", source=OTHER).status == 200  # live data stays open (MeterHub clients)
    overview = send(port, "GET", "/api/v1/setup", source=OTHER, token=TOKEN)
    no_secret_in(overview)
    for name in ("bus", "http-api", "goe-shelly-bridge", "influx-writer", "ecu-bridge"):
        answer = section(port, name, source=OTHER, token=TOKEN)
        assert answer.status == 200, answer
        no_secret_in(answer)
    values = section(port, "goe-shelly-bridge", token=TOKEN).doc["values"]
    assert values["shelly_password"] == "set" and values["devices"][0]["password"] == "set"
    assert values["devices"][1]["password_file"] == "/run/secrets/goe-2"  # a path, not a secret: shown
    assert section(port, "http-api", token=TOKEN).doc["values"]["token"] == "set"
    assert section(port, "bus", token=TOKEN).doc["values"]["password"] == "set"
    assert section(port, "ecu-bridge", token=TOKEN).doc["values"]["ecus"][0]["wifi_password"] == "set"


def test_a_problem_message_never_carries_a_secret(gateway: Callable[[str], tuple[Path, int]]) -> None:
    """A secret of the wrong type makes the section invalid; the message names the key, not the value."""
    _path, port = gateway(CONFIG.replace('shelly_password = "shelly-secret-2"', "shelly_password = 98765432"))
    answer = section(port, "goe-shelly-bridge", token=TOKEN)
    assert answer.status == 200 and answer.doc["valid"] is False and "shelly_password" in answer.doc["problem"]
    assert "98765432" not in str(answer.doc), answer.doc
    assert "98765432" not in str(send(port, "GET", "/api/v1/setup", token=TOKEN).doc)


def test_set_keeps_each_stored_secret_and_no_secret_follows_a_new_address(
        gateway: Callable[[str], tuple[Path, int]]) -> None:
    path, port = gateway(CONFIG)
    values = section(port, "goe-shelly-bridge", token=TOKEN).doc["values"]
    saved = put(port, "goe-shelly-bridge", {**values, "poll_interval_s": 5}, token=TOKEN)
    assert saved.status == 200, saved
    data = tomllib.loads(path.read_text())["goe-shelly-bridge"]
    assert data["shelly_password"] == "shelly-secret-2" and data["devices"][0]["password"] == "goe-secret-3"
    assert data["poll_interval_s"] == 5
    # Reordered: each device keeps its own password (matched by its other keys, not its position).
    swapped = {**values, "devices": values["devices"][::-1]}
    assert put(port, "goe-shelly-bridge", swapped, token=TOKEN).status == 200
    devices = tomllib.loads(path.read_text())["goe-shelly-bridge"]["devices"]
    assert devices == [{"url": "http://192.0.2.11", "password_file": "/run/secrets/goe-2"},
                       {"url": "http://192.0.2.10", "password": "goe-secret-3"}]
    before = path.read_bytes()
    for index, device in enumerate(swapped["devices"]):  # the stored password (or its file) to another host
        moved = {**swapped, "devices": [dict(d) for d in swapped["devices"]]}
        moved["devices"][index] = {**device, "url": "http://203.0.113.66"}
        refused = put(port, "goe-shelly-bridge", moved, token=TOKEN)
        assert (refused.status, refused.doc["where"]) == (400, f"$.devices.{index}.url"), refused
        assert "never follows a new address" in refused.error
    assert put(port, "goe-shelly-bridge", {"devices": [{"url": "http://192.0.2.12", "password": "set"}]},
               token=TOKEN).doc["where"] == "$.devices.0.password"  # "set" with nothing stored there
    influx = section(port, "influx-writer", token=TOKEN).doc["values"]
    refused = put(port, "influx-writer", {**influx, "url": "http://203.0.113.66:8086"}, token=TOKEN)
    assert (refused.status, refused.doc["where"]) == (400, "$.url"), refused
    assert path.read_bytes() == before
    # With the secret given again, the address may change: the person typed it for that address.
    fresh = put(port, "influx-writer", {**influx, "url": "http://192.0.2.30:8086", "password": "new-pass"},
                token=TOKEN)
    assert fresh.status == 200, fresh
    assert tomllib.loads(path.read_text())["influx-writer"]["password"] == "new-pass"


def test_dns_rebinding_chain_is_refused(gateway: Callable[[str], tuple[Path, int]]) -> None:
    """The issue's chain: PUT http-api with Host rebind.evil.example:8008 wrote trusted_networks =
    ["0.0.0.0/0"], after which writes from another address needed no token."""
    path, port = gateway(CONFIG)
    before = path.read_bytes()
    current = section(port, "http-api").doc["values"]  # from 127.0.0.1: trusted, as the demo's browser
    widened = {**current, "trusted_networks": ["0.0.0.0/0"]}
    rebound = {"Host": "rebind.evil.example:8008"}
    answer = put(port, "http-api", widened, headers=rebound)
    assert answer.status == 421 and "rebind.evil.example" in answer.error and answer.doc["where"] == "header.Host"
    assert section(port, "http-api", headers=rebound).status == 421  # no config read under that name either
    for token in (None, TOKEN):  # the right Host, even with the token: not over HTTP
        answer = put(port, "http-api", widened, token=token)
        assert (answer.status, answer.doc["where"]) == (400, "$.trusted_networks"), answer
    for key, value in (("token", "mine-now"), ("token_file", "/tmp/t"), ("allowed_hosts", ["*.evil.example"])):
        answer = put(port, "http-api", {**current, key: value}, token=TOKEN)
        assert (answer.status, answer.doc["where"]) == (400, f"$.{key}"), answer
    assert path.read_bytes() == before
    # Still no write from another address without the token.
    assert send(port, "POST", "/api/v1/discovery/rescan", source=OTHER).status == 401
    # A configured name and an address literal are the gateway's own: answered.
    assert section(port, "http-api", headers={"Host": f"gateway.home.lan:{port}"}).status == 200
    assert section(port, "http-api", headers={"Host": f"[::1]:{port}"}).status == 200
    # The unchanged section goes through ("set" keeps the token).
    assert put(port, "http-api", current).status == 200
    assert tomllib.loads(path.read_text())["http-api"]["token"] == TOKEN


@pytest.mark.parametrize(("name", "change", "where"), [
    ("http-api", {"setup": {"reload_timeout_s": 0.2, "config_file": "{tmp}/any/path.toml"}}, "$.setup.config_file"),
    ("goe-shelly-bridge", {"shelly_password_file": "/etc/shadow"}, "$.shelly_password_file"),
    ("influx-writer", {"spool_dir": "/tmp/elsewhere"}, "$.spool_dir"),
    ("influx-writer", {"dead_letter_file": "/etc/cron.d/x"}, "$.dead_letter_file"),
    ("integrations", {"template_files": ["/etc/passwd"]}, "$.template_files.0"),
    ("surplus-controller", {"grid_meter": "a/b", "state_file": "/etc/x.json"}, "$.state_file"),
    ("sml-reader", {"meters": [{"key": "main", "port": "file:///etc/shadow"}]}, "$.meters.0.port"),
    ("sml-reader", {"meters": [{"key": "main", "port": "/etc/shadow"}]}, "$.meters.0.port"),
    ("sml-reader", {"meters": [{"key": "main", "port": "/dev/../etc/shadow"}]}, "$.meters.0.port"),
    ("bus", {"host": "203.0.113.66"}, "path"),
])
def test_paths_urls_and_the_bus_section_are_not_settable(gateway: Callable[[str], tuple[Path, int]], tmp_path: Path,
                                                         name: str, change: dict[str, Any], where: str) -> None:
    path, port = gateway(CONFIG)
    current = section(port, name, token=TOKEN).doc["values"]
    body = {**current, **json.loads(json.dumps(change).replace("{tmp}", str(tmp_path)))}
    before = path.read_bytes()
    answer = put(port, name, body, token=TOKEN)
    assert answer.status == (403 if name == "bus" else 400) and answer.doc["where"] == where, answer
    key = [part for part in where.split(".") if not part.isdigit()][-1]
    assert key in answer.error or name == "bus", answer
    assert path.read_bytes() == before
    assert not (tmp_path / "any").exists()


def test_a_kept_path_and_a_serial_device_stay_settable(gateway: Callable[[str], tuple[Path, int]]) -> None:
    path, port = gateway(CONFIG)
    influx = section(port, "influx-writer", token=TOKEN).doc["values"]
    assert put(port, "influx-writer", {**influx, "batch_size": 100}, token=TOKEN).status == 200
    assert tomllib.loads(path.read_text())["influx-writer"]["spool_dir"] == "/var/lib/wattbus/spool"
    meters = {"meters": [{"key": "main", "port": "/dev/ttyAMA0"}, {"key": "ir", "port": "socket://192.0.2.7:8888"}]}
    assert put(port, "sml-reader", meters, token=TOKEN).status == 200
    assert tomllib.loads(path.read_text())["sml-reader"] == meters


def test_a_device_added_by_hand_cannot_name_a_file(gateway: Callable[[str], tuple[Path, int]], tmp_path: Path) -> None:
    """The wizard's serial port: a device under /dev/ (or a link to one), never a file such as /etc/passwd."""
    path, port = gateway(CONFIG)
    before = path.read_bytes()
    (tmp_path / "link-to-file").symlink_to("/etc/passwd")
    for serial_port in ("/etc/passwd", str(tmp_path / "link-to-file"), "/dev/../etc/passwd"):
        for endpoint in ("/api/v1/setup/probe", "/api/v1/setup/devices"):
            answer = send(port, "POST", endpoint, {"protocol": "sml", "serial_port": serial_port, "save_anyway": True},
                          token=TOKEN)
            assert (answer.status, answer.doc["where"]) == (400, "$.serial_port") and "/dev/" in answer.error, answer
    assert path.read_bytes() == before
