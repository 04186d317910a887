"""The setup REST endpoints on the simulated house: roles, sections, adopt/ignore, devices added by
hand, refusals naming the field, and a loadpoint that charges after the wizard (real controller).

The broker runs the project's ACL plus the line this issue asks for (http-api may write
`wattbus/v1/service/+/+/command`, see SETUP_ACL); everything else is the real thing."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.embedded import write_broker
from wattbus.runner import RELOAD_EXIT_CODE
from wattbus.settings import ConfigFile

from tests.http_api.conftest import HttpApi
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto, SimulatorProcess, free_port, wait_port

SETUP_ACL = "\nuser http-api\ntopic write wattbus/v1/service/+/+/command\n"


class SetupBroker(Mosquitto):
    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.files = write_broker(ROOT, run_dir, self.port, anonymous=False, extra_users=(TEST_ADMIN,),
                                  extra_acl=f"\nuser {TEST_ADMIN}\ntopic readwrite #\n{SETUP_ACL}",
                                  persistence=False)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = SetupBroker(tmp_path_factory.mktemp("setup-broker"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def house_file(broker: Mosquitto, tmp_path: Path, start_service: Any) -> tuple[Path, HttpApi]:
    """Nothing set up yet: the simulated house on the bus and an http-api with an almost empty file."""
    start_service("wattbus_sim", "house_bus", "--speed", "1", "--interval", "1", "--start", "12:00", "--end",
                  "18:00", "--profile", "clear", env=broker.env("house-sim"))
    port = free_port()
    path = tmp_path / "wattbus.toml"
    path.write_text(f"# my house\n[http-api]\nports = [{port}]  # the web UI\nstatus_interval_s = 5\n"
                    'trusted_networks = ["127.0.0.1/32"]  # as in the embedded demo\n\n'
                    "[http-api.setup]\nreload_timeout_s = 0.3\nprobe_timeout_s = 2\n")
    proc = start_service("wattbus_http_api", "--config", str(path), env=broker.env("http-api"))
    wait_port(port, 30)
    return path, HttpApi(port, proc)


async def wait_devices(api: HttpApi, *refs: str) -> None:
    """Wait (yielding to the loop, so this test's own bus clients keep running) until the setup page
    lists these devices on the bus."""
    doc: Any = None

    def listed() -> bool:
        nonlocal doc
        status, doc, _ = api.call("GET", "/api/v1/setup/devices")
        assert status == 200, doc
        return set(refs) <= {d["ref"] for d in doc["on_bus"]}

    try:
        await until(listed, 30, f"{refs} on the bus")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {doc}") from None


def role(api: HttpApi, ref: str, **body: Any) -> tuple[int, Any]:
    status, doc, _ = api.call("PUT", f"/api/v1/setup/roles/{ref}", body)
    return status, doc


async def test_roles_are_validated_and_written(house_file: tuple[Path, HttpApi], broker: Mosquitto) -> None:
    path, api = house_file
    admin = await started_bus(broker, "test-admin")
    try:  # a second meter (a sub meter), so a duplicate grid meter can be tried
        admin.publish(topics.device_meta("sml-reader", "emh-sub"), m.DeviceMeta(
            device_id="emh-sub", kind="meter", source="sml-reader", protocol="sml", serial="sub"), retain=True)
        await wait_devices(api, "house-sim/house-meter", "house-sim/house-wallbox", "sml-reader/emh-sub")
        status, doc, _ = api.call("GET", "/api/v1/setup")
        assert status == 200 and doc["first_run"] is True and doc["problems"] == {}

        status, doc = role(api, "house-sim/house-wallbox", role="charger")
        assert (status, doc["where"]) == (400, "$.role") and "grid meter first" in doc["error"]
        status, doc = role(api, "house-sim/house-battery", role="grid")
        assert (status, doc["where"]) == (400, "$.role") and "needs a meter" in doc["error"]
        status, doc = role(api, "house-sim/house-meter", role="grid")
        assert status == 200, doc
        assert doc["applied"]["surplus-controller"]["status"] == "timeout"  # not running yet: saved for its start
        assert doc["applied"]["site"] == {"status": "ok", "message": "applied now"}  # the flow: in place
        status, doc = role(api, "sml-reader/emh-sub", role="grid")
        assert (status, doc["where"]) == (400, "$.role") and "house-sim/house-meter is already the grid" in doc["error"]
        status, doc = role(api, "house-sim/house-wallbox", role="charger", min_current_a=5)
        assert (status, doc["where"]) == (400, "$.min_current_a") and ">= 6" in doc["error"]
        status, doc = role(api, "house-sim/house-wallbox", role="charger", min_current_a=10, breaker_a=8)
        assert (status, doc["where"]) == (400, "$.min_current_a") and "breaker" in doc["error"]
        status, doc = role(api, "house-sim/house-heater", role="relay")
        assert (status, doc["where"]) == (400, "$.power_w")
        for ref, body in (("house-sim/house-pv", {"role": "pv"}), ("house-sim/house-battery", {"role": "battery"}),
                          ("house-sim/house-wallbox", {"role": "charger", "loadpoint_id": "garage",
                                                       "max_current_a": 16, "breaker_a": 20, "phases": 3}),
                          ("house-sim/house-heater", {"role": "relay", "power_w": 2000, "priority": 2})):
            status, doc = role(api, ref, **body)
            assert status == 200, doc

        text = path.read_text()
        assert "# my house" in text and "# the web UI" in text  # the person's comments stay
        data = tomllib.loads(text)
        # One [site] table says what is what; the controller's own keys stay in its section.
        assert "surplus-controller" not in data  # nothing of the controller's own was set
        assert "site" not in data["http-api"] and "breakers" not in data["http-api"]["setup"]
        assert data["site"] == {"grid": "house-sim/house-meter", "pv": ["house-sim/house-pv"],
                                "battery": ["house-sim/house-battery"],
                                "loadpoints": [{"id": "garage", "charger": "house-sim/house-wallbox", "mode": "pv",
                                                "min_current_a": 6.0, "max_current_a": 16.0, "phases": 3,
                                                "breaker_a": 20.0}],
                                "relays": [{"id": "house-heater", "device": "house-sim/house-heater",
                                            "power_w": 2000.0, "priority": 2, "channel": 0}]}
        # Keys set by hand survive a change in the wizard; the stored breaker still limits the maximum.
        path.write_text(text.replace('phases = 3', 'phases = 3\npriority = 5  # mine') +
                        '\n[surplus-controller.tuning.garage]\nimport_allowance_wh = 80.0  # mine too\n')
        # The breaker caps what the controller may offer: max current = min(charger max, breaker).
        status, doc = role(api, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", max_current_a=25)
        assert status == 200 and "(20 A)" in doc["note"], doc
        assert tomllib.loads(path.read_text())["site"]["loadpoints"][0]["max_current_a"] == 20
        lps = tomllib.loads(path.read_text())["site"]
        lps["loadpoints"][0]["max_current_a"] = 24  # past the breaker through the section endpoint: refused
        status, doc, _ = api.call("PUT", "/api/v1/setup/sections/site", lps)
        assert (status, doc["where"]) == (400, "$.loadpoints.0") and "breaker" in doc["error"], doc
        status, doc = role(api, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", max_current_a=12,
                           max_phase_switches_per_hour=2, phases=3)
        assert status == 200, doc
        data = tomllib.loads(path.read_text())
        loadpoint, tuning = data["site"]["loadpoints"][0], data["surplus-controller"]["tuning"]["garage"]
        assert loadpoint["priority"] == 5 and loadpoint["max_current_a"] == 12.0
        assert tuning == {"import_allowance_wh": 80.0, "max_phase_switches_per_hour": 2}
        text = path.read_text()
        assert "priority = 5  # mine" in text and "import_allowance_wh = 80.0  # mine too" in text
        status, doc = role(api, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", enable_delay_s=-1)
        assert (status, doc["where"]) == (400, "$.config") and "tuning.garage.enable_delay_s" in doc["error"], doc
        roles = api.call("GET", "/api/v1/setup")[1]["roles"]
        assert roles["house-sim/house-wallbox"]["breaker_a"] == 20
        # The power flow follows the new roles without a restart.
        await until(lambda: api.call("GET", "/api/v1/site")[1]["flow"]["grid_w"] is not None, 20, "grid in the flow")
        status, doc = role(api, "sml-reader/emh-sub", role="grid", replace=True)
        assert status == 200 and tomllib.loads(path.read_text())["site"]["grid"] == "sml-reader/emh-sub"
        status, doc, _ = api.call("GET", "/api/v1/setup")
        assert doc["roles"]["sml-reader/emh-sub"] == {"role": "grid"} and "house-sim/house-meter" not in doc["roles"]
    finally:
        await admin.stop()


async def test_sections_devices_and_bad_requests(house_file: tuple[Path, HttpApi], broker: Mosquitto,
                                                 tmp_path: Path, start_service: Any) -> None:
    path, api = house_file
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/site",
                              {"grid": "house-sim/house-meter", "loadpoints": [{"id": "x", "charger": "a/b",
                                                                                "min_current_a": 5}]})
    assert status == 400 and doc["where"] == "$.loadpoints.0.min_current_a", doc
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/site", {"loadpoints": [{"id": "x", "charger": "a b"}]})
    assert status == 400 and doc["where"] == "$.loadpoints.0.charger" and "[site] loadpoints.0.charger" in doc["error"]
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/surplus-controller", [1])
    assert status == 400 and doc["where"] == "body"
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/toaster", {})
    assert status == 400 and "no service 'toaster'" in doc["error"]
    paths = api.call("GET", "/api/v1/openapi.json")[1]["paths"]
    assert "put" in paths["/api/v1/setup/roles/{source}/{device_id}"]
    status, doc, _ = api.call("GET", "/api/v1/setup/sections/sunspec-bridge")
    assert status == 200 and doc["values"] == {} and doc["valid"] is True
    assert "surplus-controller" not in tomllib.loads(path.read_text())  # nothing invalid reached the file

    closed = free_port()
    status, doc, _ = api.call("POST", "/api/v1/setup/devices", {"protocol": "zigbee", "host": "127.0.0.1"})
    assert status == 400 and doc["where"] == "$.protocol" and "no running bridge offers 'zigbee'" in doc["error"]
    status, doc, _ = api.call("POST", "/api/v1/setup/devices", {"protocol": "sml", "serial_port": "/etc/hostname"})
    assert status == 400 and doc["where"] == "$.serial_port"  # a file is never a meter, whoever reads it
    sim = SimulatorProcess(tmp_path / "sunspec.log", "sunspec")
    try:
        # The bridge offers its form and reads the device before it is saved: no sunspec-bridge, no form.
        body = {"protocol": "sunspec", "host": "127.0.0.1", "port": sim.port, "unit_id": 1}
        status, doc, _ = api.call("POST", "/api/v1/setup/devices", body)
        assert (status, doc["where"]) == (400, "$.protocol") and "no running bridge offers" in doc["error"], doc
        assert "sunspec-bridge" not in tomllib.loads(path.read_text())
        bridge = start_service("wattbus_sunspec_bridge", "--config", str(path), env=broker.env("sunspec-bridge"))
        await until(lambda: api.call("POST", "/api/v1/setup/probe", body)[0] == 200, 40, "the bridge answering")
        # Its form as it announced it: inputs typed from its config Struct (the unit id's bounds).
        forms = {f["name"]: f for f in api.call("GET", "/api/v1/setup")[1]["forms"]}
        unit = next(f for f in forms["sunspec"]["fields"] if f["key"] == "unit_id")
        assert (forms["sunspec"]["bridge"], unit["min"], unit["max"], unit["default"]) == ("sunspec-bridge", 0, 255, 1)
        refusals = [({"protocol": "sunspec", "host": "127.0.0.1", "port": closed}, "$.host", "cannot reach"),
                    ({**body, "host": "127.0.0.1/latest/meta-data?"}, "$.host", "does not fit"),
                    ({**body, "values": {"colour": "red"}}, "$.colour", "not a field of the SunSpec"),
                    ({"protocol": "sunspec", "port": sim.port}, "$.host", "Host is needed")]
        for ask, where, words in refusals:
            status, doc, _ = api.call("POST", "/api/v1/setup/probe", ask)
            assert (status, doc["where"]) == (400, where) and words in doc["error"], (ask, doc)
        status, doc, _ = api.call("POST", "/api/v1/setup/devices", body)
        assert status == 201 and doc["probe"]["status"] == "ok", doc
        assert {r["kind"] for r in doc["probe"]["readings"]} >= {"inverter"}
        await until(lambda: bridge.proc.poll() is not None, 20, "sunspec-bridge restarting on the new section")
        assert bridge.proc.returncode == RELOAD_EXIT_CODE
        assert tomllib.loads(path.read_text())["sunspec-bridge"]["devices"] == [
            {"host": "127.0.0.1", "port": sim.port, "unit_ids": [1]}]
        # Stopped, the bridge stays known but offers nothing: the page says it is not running.
        await until(lambda: "sunspec-bridge" in api.call("GET", "/api/v1/setup")[1]["not_running"], 20, "offline")
        status, doc, _ = api.call("POST", "/api/v1/setup/probe", body)
        assert (status, doc["where"]) == (400, "$.protocol") and "not running" in doc["error"], doc
        # Running again (on its new section), it offers the form; the same device is already there.
        start_service("wattbus_sunspec_bridge", "--config", str(path), env=broker.env("sunspec-bridge"))
        await until(lambda: "already configured" in api.call("POST", "/api/v1/setup/devices",
                                                             {**body, "save_anyway": True})[1]["error"], 30, "refused")
    finally:
        sim.stop()

    # giv-bridge tells which protocol it adopts when it starts (its device list stays empty).
    start_service("wattbus_giv_bridge", "--config", str(path), env=broker.env("giv-bridge"))
    await until(lambda: any(f["name"] == "givenergy" for f in api.call("GET", "/api/v1/setup")[1]["forms"]), 30,
                "giv-bridge's form")
    disco = await started_bus(broker, "discovery")
    try:
        for ann in (m.DeviceAnnouncement(device_id="sma-3004", protocol="sunspec", address="127.0.0.1", port=502,
                                         kind="inverter", manufacturer="SMA", serial="3004"),
                    m.DeviceAnnouncement(device_id="giv-ce123", protocol="givenergy", address="127.0.0.1")):
            disco.publish(topics.discovery(ann.device_id), ann, retain=True)
        await until(lambda: len(api.call("GET", "/api/v1/setup/devices")[1]["discovered"]) >= 2, 20, "announcements")
        status, doc, _ = api.call("POST", "/api/v1/setup/devices/sma-3004/ignore")
        assert status == 200 and doc["state"] == "ignored"
        assert tomllib.loads(path.read_text())["sunspec-bridge"]["deny"] == ["sma-3004"]
        found = {d["device_id"]: d for d in api.call("GET", "/api/v1/setup/devices")[1]["discovered"]}
        assert found["sma-3004"]["state"] == "ignored" and found["sma-3004"]["manufacturer"] == "SMA"
        status, doc, _ = api.call("POST", "/api/v1/setup/devices/sma-3004/adopt")
        assert status == 200 and "deny" not in tomllib.loads(path.read_text())["sunspec-bridge"]
        status, doc, _ = api.call("POST", "/api/v1/setup/devices/giv-ce123/ignore")
        assert status == 200 and tomllib.loads(path.read_text())["giv-bridge"]["deny"] == ["giv-ce123"]
        status, doc, _ = api.call("POST", "/api/v1/setup/devices/nobody/ignore")
        assert status == 404
    finally:
        for device_id in ("sma-3004", "giv-ce123"):
            disco.publish(topics.discovery(device_id), b"", retain=True)
        await disco.stop()


async def test_writes_need_the_token(broker: Mosquitto, tmp_path: Path, start_service: Any) -> None:
    port = free_port()
    path = tmp_path / "wattbus.toml"
    path.write_text(f'[http-api]\nports = [{port}]\ntoken = "s3cret"\ntrusted_networks = []\n')
    api = HttpApi(port, start_service("wattbus_http_api", "--config", str(path), env=broker.env("http-api")))
    wait_port(port, 30)
    body = {"ports": [port], "token": "s3cret", "trusted_networks": [], "stale_after_s": 30}
    assert api.call("PUT", "/api/v1/setup/sections/http-api", body)[0] == 401
    assert api.call("PUT", "/api/v1/setup/sections/http-api", body, token="wrong")[0] == 401
    assert api.call("PUT", "/api/v1/setup/roles/house-sim/house-meter", {"role": "grid"})[0] == 401
    assert "stale_after_s" not in path.read_text()
    site = {**body, "stale_after_s": 60, "site": {"grid": "house-sim/house-meter"}}
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/http-api", site, token="s3cret")
    assert status == 200 and doc["applied"] == {"status": "ok", "message": "applied now"}  # roles: in place
    assert api.call("GET", "/api/v1/setup/sections/http-api")[0] == 401  # the config is not for everyone
    shown = api.call("GET", "/api/v1/setup/sections/http-api", token="s3cret")[1]["values"]
    assert shown["site"] == {"grid": "house-sim/house-meter"} and shown["token"] == "set"  # never the token
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/http-api", body, token="s3cret")
    assert status == 200 and "restarts" in doc["applied"]["message"]
    assert tomllib.loads(path.read_text())["http-api"]["stale_after_s"] == 30
    # A listener/access change needs our own restart: asked for over the bus once the answer is out.
    await until(lambda: api.proc.proc.poll() is not None, 20, "http-api restarting itself")
    assert api.proc.proc.returncode == RELOAD_EXIT_CODE


async def test_wizard_to_a_charging_loadpoint_and_a_live_change(house_file: tuple[Path, HttpApi],
                                                                start_service: Any, broker: Mosquitto,
                                                                tmp_path: Path) -> None:
    """From nothing to a charging loadpoint over REST, then a limit change the controller applies by
    restarting itself (exit RELOAD_EXIT_CODE; the test restarts it as supervisord would)."""
    path, api = house_file
    await wait_devices(api, "house-sim/house-meter", "house-sim/house-wallbox")
    assert role(api, "house-sim/house-meter", role="grid")[0] == 200
    # A path is not settable over HTTP: the state file goes into the file as a person (or `wattbus config
    # set`) writes it; the section PUT then keeps it.
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/surplus-controller",
                              {**api.call("GET", "/api/v1/setup/sections/surplus-controller")[1]["values"],
                               "state_file": str(tmp_path / "controller.json")})
    assert (status, doc["where"]) == (400, "$.state_file") and "file path" in doc["error"], doc
    by_hand = ConfigFile(path)
    by_hand.set_value("surplus-controller", "state_file", str(tmp_path / "controller.json"))
    by_hand.save()
    status, doc, _ = api.call("GET", "/api/v1/setup/sections/surplus-controller")
    values = {**doc["values"], "command_replies": "result_topic", "status_interval_s": 5}
    assert api.call("PUT", "/api/v1/setup/sections/surplus-controller", values)[0] == 200
    status, doc = role(api, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", mode="now",
                       max_current_a=16)
    assert status == 200, doc
    env = broker.env("surplus-controller")
    controller = start_service("wattbus_surplus_controller", "--config", str(path), env=env)

    def garage() -> dict[str, Any] | None:
        return next((lp for lp in api.call("GET", "/api/v1/loadpoints")[1] if lp["loadpoint_id"] == "garage"), None)

    await until(lambda: (lp := garage()) is not None and lp["charging"], 40, "the garage loadpoint charging")
    own = api.call("GET", "/api/v1/setup/sections/http-api")[1]["values"]
    own["setup"]["reload_timeout_s"] = 20  # the running controller answers; give it time under load
    status, doc, _ = api.call("PUT", "/api/v1/setup/sections/http-api", own)
    assert status == 200 and doc["applied"] == {"status": "ok", "message": "applied now"}
    status, doc = role(api, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", mode="now",
                       max_current_a=10)
    assert status == 200 and doc["applied"]["surplus-controller"]["status"] == "ok", doc
    await until(lambda: controller.proc.poll() is not None, 20, "controller restart after the change")
    assert controller.proc.returncode == RELOAD_EXIT_CODE
    start_service("wattbus_surplus_controller", "--config", str(path), env=env)
    await until(lambda: (lp := garage()) is not None and lp["max_current_a"] == 10 and lp["charging"], 40,
                "the new limit in the loadpoint state")
