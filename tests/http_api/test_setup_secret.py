"""A form's secret input (a device's password): the bridge gets it and logs in, nobody reads it back.
A Shelly-like relay behind HTTP basic auth (the generic simulator with --password) added through the
generic-bridge's form: refused without the password, read with it, saved; afterwards no answer, page
or log line carries the password, and the restarted bridge reads the relay with it. And a Modbus
description over a serial line: its RTU form refuses a file, and reads an EVSE over socket://.

Real broker (project ACL), the simulator, the http-api and the generic-bridge (in `wattbus run-many`,
which restarts it on its new section as supervisord would)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from tests.http_api.test_setup import broker  # noqa: F401  (the module's broker fixture)
from tests.http_api.test_setup_generic_browser import start_with_generic_bridge
from tests.http_api.test_setup_probe import wait_forms
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto, SimulatorProcess

FORM = "generic:shelly-relay-http"
PASSWORD = "Relay-Pa55-7f3e"  # nothing else in the stack contains this text


async def test_a_password_reaches_the_bridge_and_nothing_shows_it(tmp_path: Path, start_service: Any,
                                                                  broker: Mosquitto) -> None:  # noqa: F811
    relay = SimulatorProcess(tmp_path / "relay.log", "generic_http", "--device", "relay", "--password", PASSWORD)
    evse = SimulatorProcess(tmp_path / "evse.log", "evse_din", "--rtu-over-tcp")  # RTU frames over TCP
    path, api = start_with_generic_bridge(tmp_path, start_service, broker)
    try:
        await wait_forms(api, FORM)
        offered = next(f for f in api.call("GET", "/api/v1/setup")[1]["forms"] if f["name"] == FORM)
        assert {f["key"]: f["input"] for f in offered["fields"]}["password"] == "secret"
        values = {"id": "relay", "host": "127.0.0.1", "port": relay.port}
        status, doc, _ = api.call("POST", "/api/v1/setup/probe", {"protocol": FORM, "values": values})
        assert status == 400 and "401 unauthorized" in doc["error"], doc  # the device wants the password
        wrong = {**values, "username": "admin", "password": "not-" + PASSWORD}
        status, doc, _ = api.call("POST", "/api/v1/setup/probe", {"protocol": FORM, "values": wrong})
        assert status == 400 and "401" in doc["error"] and "not-" not in json.dumps(doc), doc

        # A Modbus description over a serial line: offered with the line's fields, the port checked as for
        # every serial form (a file is never a meter).
        rtu = {"protocol": "generic:sdm630-modbus:rtu", "values": {"id": "grid", "serial_port": "/etc/passwd"}}
        status, doc, _ = api.call("POST", "/api/v1/setup/probe", rtu)
        assert (status, doc["where"]) == (400, "$.serial_port") and "under /dev/" in doc["error"], doc
        evse_line = {"protocol": "generic:evse-din-modbus:rtu",
                     "values": {"id": "evse", "serial_port": f"socket://127.0.0.1:{evse.port}", "baudrate": 9600}}
        status, doc, _ = api.call("POST", "/api/v1/setup/probe", evse_line)
        assert status == 200 and doc["entry"]["serial_port"] == f"socket://127.0.0.1:{evse.port}", doc
        assert doc["probe"]["readings"][0]["device_id"] == "evse" and doc["probe"]["devices"][0]["kind"] == "charger"

        given = {"protocol": FORM, "values": {**values, "username": "admin", "password": PASSWORD}}
        answers = [api.call("POST", "/api/v1/setup/probe", given), api.call("POST", "/api/v1/setup/devices", given)]
        assert [a[0] for a in answers] == [200, 201], answers
        assert answers[0][1]["probe"]["readings"][0]["device_id"] == "relay"  # it logged in and read
        assert answers[1][1]["entry"]["password"] == "set" and answers[1][1]["entry"]["username"] == "admin"
        saved = tomllib.loads(path.read_text())["generic-bridge"]["devices"]
        assert saved[0]["password"] == PASSWORD  # stored for the bridge (the file is the operator's)

        # The restarted bridge reads the relay with the stored password.
        def on_bus() -> Any:
            status, device, _ = api.call("GET", "/api/v1/devices/generic-bridge/relay")
            return status == 200 and (device.get("reading") or {}).get("power_w") is not None
        await until(on_bus, 40, "the relay read by the restarted bridge")
        shown = [api.call("GET", p)[1] for p in ("/api/v1/setup", "/api/v1/setup/sections/generic-bridge",
                                                 "/api/v1/setup/devices", "/api/v1/devices",
                                                 "/api/v1/devices/generic-bridge/relay", "/ui/setup/advanced",
                                                 "/ui/setup", "/api/v1/status")]
        assert all(PASSWORD not in json.dumps(doc) for doc in [*shown, *(a[1] for a in answers)])
        section = api.call("GET", "/api/v1/setup/sections/generic-bridge")[1]
        assert "set" in json.dumps(section) and "relay" in json.dumps(section)  # the device is shown, masked
        logs = [p.read_text(errors="replace") for p in tmp_path.glob("*.log")]
        assert len(logs) >= 3 and not any(PASSWORD in text for text in logs)
    finally:
        relay.stop()
        evse.stop()
