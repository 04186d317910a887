"""A device on another broker than wattbus's (a second real Mosquitto, TLS with its own CA, a login
from a password file): its topics read into a charger reading, its commands published there and read
back from what it reports, the password nowhere in the meta, the status or the log; and a charger
over plain HTTP (a real aiohttp server standing in for its API) written with a JSON body."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message
from wattbus.config import BusConfig

from tests.conftest import ServiceProcess
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto, free_port, wait_port

SOURCE = "generic-bridge"
PASSWORD = "s3cret-Heat-0815"  # must never show up on wattbus's bus or in the bridge's log
CHARGER = """
[[generic-bridge.devices]]
id = "far-wallbox"
name = "wallbox on the garage broker"
max_current_a = 20
broker = {{ host = "127.0.0.1", port = {port}, username = "wattbus", password_file = "{pw}", tls = true, \
ca_file = "{ca}", client_id = "wattbus-garage" }}
[generic-bridge.devices.description]
kind = "charger"
source = {{ type = "mqtt", topic = "garage/wallbox/status", stale_after_s = 30 }}
values = [{{ field = "set_current_a", select = "$.amps", unit = "A" }},
          {{ field = "enabled", select = "$.charging" }},
          {{ field = "phases_active", select = "$.phases" }},
          {{ field = "power_w", select = "$.power", unit = "kW" }}]
[generic-bridge.devices.description.write]
max_current_a = 32
charge_current = {{ topic = "garage/wallbox/set/amps" }}
charging = {{ topic = "garage/wallbox/set/charging", values = {{ on = "true", off = "false" }} }}
phases = {{ topic = "garage/wallbox/set/phases" }}

[[generic-bridge.devices]]
id = "far-plug"
broker = {{ host = "127.0.0.1", port = {port}, username = "wattbus", password_file = "{pw}", tls = true, \
ca_file = "{ca}", client_id = "wattbus-garage" }}
[generic-bridge.devices.description]
kind = "relay"
source = {{ type = "mqtt", topic = "garage/plug/POWER", payload = "plain" }}
values = [{{ field = "on" }}]
write = {{ min_switch_interval_s = 0, relay = {{ topic = "garage/plug/set", values = {{ on = "ON", off = "OFF" }} }} }}

[[generic-bridge.devices]]
id = "gone-broker"
template = "tasmota-sml-mqtt"
vars = {{ topic = "gone" }}
broker = {{ host = "127.0.0.1", port = {closed}, username = "wattbus", password_file = "{pw}" }}

[[generic-bridge.devices]]
id = "http-wallbox"
max_current_a = 16
[generic-bridge.devices.description]
kind = "charger"
source = {{ type = "http", url = "http://127.0.0.1:{http}/api/status", interval_s = 0.5 }}
values = [{{ field = "set_current_a", select = "$.amps" }}, {{ field = "enabled", select = "$.allow" }}]
[generic-bridge.devices.description.write]
charge_current = {{ url = "http://127.0.0.1:{http}/api/set", method = "POST", body = '{{"amps": {{value}}}}' }}
charging = {{ url = "http://127.0.0.1:{http}/api/allow?on={{value}}", values = {{ on = "1", off = "0" }} }}
"""


@dataclass
class Garage:
    """The other broker: TLS only, its own CA, one login."""

    proc: subprocess.Popen[bytes]
    port: int
    ca: Path

    def config(self, password: str) -> BusConfig:
        return BusConfig(host="127.0.0.1", port=self.port, username="wattbus", password=password, tls=True,
                         ca_file=str(self.ca), reconnect_max_s=2.0)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def start_garage(run: Path) -> Garage:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=garage-ca",
            cwd=run)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=run)
    (run / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=run)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(run / "passwd"), "wattbus", PASSWORD], check=True,
                   capture_output=True)
    port = free_port()
    conf = run / "garage.conf"
    conf.write_text(f"user {pwd.getpwuid(os.geteuid()).pw_name}\npersistence false\nallow_anonymous false\n"
                    f"password_file {run / 'passwd'}\nlistener {port} 127.0.0.1\ncafile {run / 'ca.pem'}\n"
                    f"certfile {run / 'server.pem'}\nkeyfile {run / 'server.key'}\nlog_dest stdout\n")
    with (run / "garage.log").open("ab") as log:
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    return Garage(proc, port, run / "ca.pem")


class Wallbox:
    """The charger on the garage broker: takes its set topics, reports its state (as such devices do)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.state: dict[str, Any] = {"amps": 16, "charging": True, "phases": 3, "power": 11.0}
        self.received: list[tuple[str, str]] = []
        bus.subscribe("garage/wallbox/set/+", bytes, self.on_set)
        bus.subscribe("garage/plug/set", bytes, self.on_plug)

    def on_plug(self, msg: Message[bytes]) -> None:  # a Tasmota-like plug: cmnd in, its POWER state out
        self.received.append((msg.topic, msg.payload.decode()))
        self.bus.publish("garage/plug/POWER", msg.payload)

    def on_set(self, msg: Message[bytes]) -> None:
        text = msg.payload.decode()
        self.received.append((msg.topic, text))
        key = msg.topic.rsplit("/", 1)[1]
        self.state[key] = text == "true" if key == "charging" else int(float(text))
        self.report()

    def report(self) -> None:
        self.bus.publish("garage/wallbox/status", json.dumps(self.state).encode())


class HttpCharger:
    """A charger's JSON API: GET /api/status, POST /api/set {"amps": n}, GET /api/allow?on=1|0."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"amps": 10, "allow": True}
        self.requests: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/api/status", self.status)
        self.app.router.add_post("/api/set", self.set_amps)
        self.app.router.add_get("/api/allow", self.allow)

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state)

    async def set_amps(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(f"POST {request.content_type} {json.dumps(body)}")
        self.state["amps"] = body["amps"]
        return web.json_response({"ok": True})

    async def allow(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET allow on={request.query['on']}")
        self.state["allow"] = request.query["on"] == "1"
        return web.json_response({"ok": True})


@dataclass
class Stack:
    garage: Garage
    bridge: ServiceProcess
    http_port: int
    run: Path


@pytest.fixture(scope="module")
def stack(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = tmp_path_factory.mktemp("generic-garage")
    garage = start_garage(run)
    secret = run / "garage-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    http_port = free_port()
    config = run / "wattbus.toml"
    config.write_text('[generic-bridge]\nstatus_interval_s = 1\nmax_backoff_s = 2\ninstance = "garage"\n'
                      + CHARGER.format(port=garage.port, pw=secret, ca=garage.ca, http=http_port, closed=free_port()))
    bridge = ServiceProcess("wattbus_generic_bridge", ["--config", str(config)], broker.env(SOURCE),
                            run / "bridge.log")
    yield Stack(garage, bridge, http_port, run)
    bridge.stop()
    garage.proc.terminate()
    garage.proc.wait(10)


async def watching(broker: Mosquitto, seen: dict[str, Any]) -> Bus:
    bus = await started_bus(broker, TEST_ADMIN, "garage")

    def keep(msg: Message[bytes]) -> None:
        seen[msg.topic] = msg.payload
    for suffix in ("reading", "meta"):
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/{suffix}", bytes, keep)
    bus.subscribe(topics.service_status(SOURCE, "garage"), bytes, keep)
    await subscriptions_active(bus)
    return bus


def reading(seen: dict[str, Any], device: str) -> Any:
    payload = seen.get(f"wattbus/v1/device/{SOURCE}/{device}/reading")
    return msgspec.json.decode(payload, type=m.Reading) if payload else None


async def test_a_charger_on_another_broker_reads_writes_and_keeps_its_secret(broker: Mosquitto,
                                                                            stack: Stack) -> None:
    seen: dict[str, Any] = {}
    ours = await watching(broker, seen)
    device = Bus(stack.garage.config(PASSWORD), "wallbox", "garage", client_id="garage-wallbox")
    await device.start()
    assert await device.wait_connected(10), (stack.run / "garage.log").read_text()[-1000:]
    wallbox = Wallbox(device)
    command = topics.device_command(SOURCE, "far-wallbox")
    try:
        for _ in range(100):  # the device reports until the bridge (subscribed by then) shows it
            wallbox.report()
            if reading(seen, "far-wallbox") is not None:
                break
            await asyncio.sleep(0.1)
        first = reading(seen, "far-wallbox")
        assert isinstance(first, m.ChargerReading), stack.bridge.output()[-2000:]
        assert (first.set_current_a, first.enabled, first.phases_active, first.power_w) == (16, True, 3, 11_000)
        result = await ours.request(command, m.SetChargeCurrent(current_a=12), timeout=15)
        assert (result.status, result.applied) == ("ok", {"set_current_a": 12}), result.message
        assert ("garage/wallbox/set/amps", "12") in wallbox.received  # published on the garage broker
        too_much = await ours.request(command, m.SetChargeCurrent(current_a=25), timeout=15)
        assert too_much.status == "refused" and "25 A is above max_current_a = 20 A" in too_much.message
        off = await ours.request(command, m.SetCharging(enabled=False), timeout=15)
        assert off.status == "ok" and ("garage/wallbox/set/charging", "false") in wallbox.received
        one = await ours.request(command, m.SetPhases(phases=1), timeout=15)
        assert (one.status, one.applied) == ("ok", {"phases_active": 1}), one.message
        await until(lambda: getattr(reading(seen, "far-wallbox"), "phases_active", None) == 1, 10, "1 phase")
        meta = msgspec.json.decode(seen[f"wattbus/v1/device/{SOURCE}/far-wallbox/meta"], type=m.DeviceMeta)
        assert meta.address == f"mqtts://wattbus@127.0.0.1:{stack.garage.port}/garage/wallbox/status"
        assert meta.capabilities == ["set_charge_current", "set_charging", "set_phases"]
        await until(lambda: topics.service_status(SOURCE, "garage") in seen, 10, "the service status")
        for _ in range(200):  # the plug reports until the bridge shows it (its replica may take a moment)
            device.publish("garage/plug/POWER", b"OFF")
            if getattr(reading(seen, "far-plug"), "on", None) is False:
                break
            await asyncio.sleep(0.1)
        assert getattr(reading(seen, "far-plug"), "on", None) is False, stack.bridge.output()[-2000:]
        switched = await ours.request(topics.device_command(SOURCE, "far-plug"), m.SetRelay(on=True), timeout=15)
        assert (switched.status, switched.applied) == ("ok", {"on": True, "channel": 0}), switched.message
        assert ("garage/plug/set", "ON") in wallbox.received
        status_topic = topics.service_status(SOURCE, "garage")

        def gone() -> list[m.DeviceError]:
            status = msgspec.json.decode(seen[status_topic], type=m.ServiceStatus) if status_topic in seen else None
            return [e for e in (status.device_errors if status else []) if e.device_id == "gone-broker"]
        await until(lambda: bool(gone()), 20, "the unreachable broker in the status")
        assert "broker mqtt://wattbus@127.0.0.1:" in gone()[0].error and "not connected" in gone()[0].error
        everything = b"".join(seen.values()) + stack.bridge.output().encode()
        assert PASSWORD.encode() not in everything
    finally:
        await device.stop()
        await ours.stop()


async def test_a_charger_over_http_is_written_with_its_body(broker: Mosquitto, stack: Stack) -> None:
    charger = HttpCharger()
    runner = web.AppRunner(charger.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stack.http_port).start()
    seen: dict[str, Any] = {}
    ours = await watching(broker, seen)
    command = topics.device_command(SOURCE, "http-wallbox")
    try:
        await until(lambda: reading(seen, "http-wallbox") is not None, 20, "an HTTP charger reading")
        result = await ours.request(command, m.SetChargeCurrent(current_a=14), timeout=15)
        assert (result.status, result.applied) == ("ok", {"set_current_a": 14}), result.message
        assert charger.requests == ['POST application/json {"amps": 14}'] and charger.state["amps"] == 14
        over = await ours.request(command, m.SetChargeCurrent(current_a=17), timeout=15)
        assert over.status == "refused" and "17 A is above max_current_a = 16 A" in over.message
        stop = await ours.request(command, m.SetCharging(enabled=False), timeout=15)
        assert stop.status == "ok" and charger.requests[-1] == "GET allow on=0" and charger.state["allow"] is False
        again = await ours.request(command, m.SetCharging(enabled=False), timeout=15)
        assert again.status == "ok" and len(charger.requests) == 2  # already off: nothing written
        await until(lambda: getattr(reading(seen, "http-wallbox"), "enabled", None) is False, 10, "off in readings")
    finally:
        await ours.stop()
        await runner.cleanup()


async def test_a_probe_logs_in_to_the_other_broker_with_the_forms_password(broker: Mosquitto,
                                                                          stack: Stack) -> None:
    """The setup form's way: the password in the entry's broker table (not a file); the probe connects
    under a client id of its own, so the bridge's own garage connection stays up."""
    device = Bus(stack.garage.config(PASSWORD), "head", "garage", client_id="garage-head")
    await device.start()
    ours = await started_bus(broker, TEST_ADMIN, "garage-probe")
    entry: dict[str, Any] = {"id": "garage-head", "template": "tasmota-sml-mqtt", "vars.topic": "garage-head",
                             "vars.meter": "Strom", "vars.power": "Power_cur",
                             "broker.host": "127.0.0.1", "broker.port": stack.garage.port, "broker.tls": True,
                             "broker.ca_file": str(stack.garage.ca), "broker.username": "wattbus",
                             "broker.password": PASSWORD, "interval_s": 5}
    try:
        assert await device.wait_connected(10)
        device.publish("tele/garage-head/SENSOR", (Path(__file__).parent / "data" / "tasmota_sml_sensor.json")
                       .read_bytes(), retain=True)
        service = topics.service_command(SOURCE, "garage")
        result = await ours.request(service, m.ProbeDevice(entry=entry), timeout=15)
        assert result.status == "ok" and isinstance(result.readings[0], m.MeterReading), result.message
        assert result.devices[0].address == f"mqtts://wattbus@127.0.0.1:{stack.garage.port}/tele/garage-head/SENSOR"
        wrong = await ours.request(service, m.ProbeDevice(entry={**entry, "broker.password": "not-it"}), timeout=15)
        assert wrong.status == "failed" and "not connected" in wrong.message, wrong.message
        assert PASSWORD not in msgspec.json.encode(result).decode() + stack.bridge.output()
    finally:
        device.publish("tele/garage-head/SENSOR", b"", retain=True)
        await device.stop()
        await ours.stop()
