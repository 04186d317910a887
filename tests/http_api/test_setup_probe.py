"""Setup against the real bridges: a device added by hand is read once by its own bridge (probe_device)
before it is saved, an ignored discovered device is never adopted by the bridge that owns its protocol,
`instance = "auto"` replicas reload over service/<name>/all/command, and environment overrides are
shown with their source. Real broker (project ACL), real simulators on loopback, real services."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.instance import resolve_instance
from wattbus.runner import RELOAD_EXIT_CODE

from tests.http_api.conftest import HttpApi
from tests.http_api.test_setup import broker  # noqa: F401  (the module's broker fixture)
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto, SimulatorProcess, free_port, wait_port

BRIDGES = ("sunspec-bridge", "sml-reader", "ecu-bridge", "giv-bridge", "goe-shelly-bridge")


def module(service: str) -> str:
    return "wattbus_" + service.replace("-", "_")


def start_api(tmp_path: Path, start_service: Any, broker: Mosquitto, text: str = "",  # noqa: F811
              env: dict[str, str] | None = None, reload_timeout_s: float = 0.5) -> tuple[Path, HttpApi]:
    """An http-api on a fresh config file; reload_timeout_s: how long it waits for a told service."""
    port = free_port()
    path = tmp_path / "wattbus.toml"
    path.write_text(f"[http-api]\nports = [{port}]\nstatus_interval_s = 5\ntrusted_networks = [\"127.0.0.1/32\"]\n\n"
                    f"[http-api.setup]\nreload_timeout_s = {reload_timeout_s}\n\n{text}")
    proc = start_service("wattbus_http_api", "--config", str(path), env={**broker.env("http-api"), **(env or {})})
    wait_port(port, 30)
    return path, HttpApi(port, proc)


async def wait_online(broker: Mosquitto, services: tuple[str, ...], instance: str = "main") -> None:  # noqa: F811
    """Until each service announced itself online (it subscribed to its command topics before that)."""
    admin = await started_bus(broker, "test-admin", instance="probe-wait")
    online: set[str] = set()

    def seen(msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        if msg.payload == b"online" and parsed.ident == instance and parsed.source:
            online.add(parsed.source)

    admin.subscribe(f"{topics.PREFIX}/service/+/+/availability", bytes, seen)
    try:
        await until(lambda: set(services) <= online, 60, f"{services} online")
    finally:
        await admin.stop()


async def wait_forms(api: HttpApi, *names: str, running: bool = True) -> None:
    """Until the http-api holds these bridges' forms (announced retained as each bridge starts)."""
    def held() -> set[str]:
        doc = api.call("GET", "/api/v1/setup")[1]
        return {f["name"] for f in doc["forms"]} if running else set(doc["not_running"])
    await until(lambda: set(names) <= held(), 30, f"forms {names}")


@pytest.fixture
def sims(tmp_path: Path, start_service: Any) -> Iterator[dict[str, Any]]:
    started = {"goe": SimulatorProcess(tmp_path / "goe.log", "goe", "--serial", "204712"),
               "shelly": SimulatorProcess(tmp_path / "shelly.log", "shelly", "--model", "SHSW-PM"),
               "giv": SimulatorProcess(tmp_path / "giv.log", "giv", "--batteries", "1"),
               "ecu": SimulatorProcess(tmp_path / "ecu.log", "ecu", "--pv-fraction", "0.5"),
               "sunspec": SimulatorProcess(tmp_path / "sunspec.log", "sunspec", "--static")}
    link, second = tmp_path / "sml-meter", tmp_path / "sml-meter-2"
    start_service("wattbus_sim", "sml", "--link", str(link), "--interval", "1")
    start_service("wattbus_sim", "sml", "--link", str(second), "--interval", "1", "--serial", "60694612")
    yield {**started, "sml_link": link, "sml_link_2": second}
    for sim in started.values():
        sim.stop()


async def test_each_bridge_reads_a_device_once_before_it_is_saved(tmp_path: Path, start_service: Any,
                                                                   broker: Mosquitto,  # noqa: F811
                                                                   sims: dict[str, Any]) -> None:
    path, api = start_api(tmp_path, start_service, broker)
    for service in BRIDGES:
        start_service(module(service), "--config", str(path), env=broker.env(service))
    await until(lambda: sims["sml_link"].exists() and sims["sml_link_2"].exists(), 20, "the meters' ptys")
    await wait_online(broker, BRIDGES)
    await wait_forms(api, "goe", "shelly", "givenergy", "aps-ecu", "sunspec", "sml", "dsmr")
    host = {"host": "127.0.0.1"}
    asks = {
        "goe": {"protocol": "goe", **host, "port": sims["goe"].port},
        "shelly": {"protocol": "shelly", **host, "port": sims["shelly"].port},
        "giv": {"protocol": "givenergy", **host, "port": sims["giv"].port},
        "ecu": {"protocol": "aps-ecu", **host, "port": sims["ecu"].port},
        "sunspec": {"protocol": "sunspec", **host, "port": sims["sunspec"].port, "unit_id": 1},
        "sml": {"protocol": "sml", "serial_port": str(sims["sml_link"]), "key": "house"},
        # the wrong protocol on a live port, the wrong format on a live line: refused with the bridge's reason
        "ecu_on_http": {"protocol": "aps-ecu", **host, "port": sims["goe"].port},
        # (a line of its own: one serial line has one reader at a time)
        "dsmr_on_sml": {"protocol": "dsmr", "serial_port": str(sims["sml_link_2"]), "key": "other"},
    }
    answers = dict(zip(asks, await asyncio.gather(*(
        asyncio.to_thread(api.call, "POST", "/api/v1/setup/probe", body) for body in asks.values())), strict=True))
    for name in ("goe", "shelly", "giv", "ecu", "sunspec", "sml"):
        status, doc, _ = answers[name]
        assert status == 200 and doc["probe"]["status"] == "ok", (name, doc)

    def kinds(name: str) -> set[str]:
        return {r["kind"] for r in answers[name][1]["probe"]["readings"]}

    goe = answers["goe"][1]["probe"]
    assert goe["devices"][0]["device_id"] == "goe-204712" and goe["readings"][0]["set_current_a"] is not None
    assert kinds("shelly") == {"relay"} and answers["shelly"][1]["probe"]["readings"][0]["power_w"] is not None
    assert {"inverter", "battery"} <= kinds("giv")
    assert "gateway" in kinds("ecu") and "inverter" in kinds("ecu")
    assert "inverter" in kinds("sunspec")
    sml = answers["sml"][1]["probe"]
    assert kinds("sml") == {"meter"} and sml["readings"][0]["power_w"] is not None and "60694611" in \
        sml["devices"][0]["device_id"]
    status, doc, _ = answers["ecu_on_http"]
    assert (status, doc["where"]) == (400, "$.host") and "ecu-bridge could not read" in doc["error"], doc
    status, doc, _ = answers["dsmr_on_sml"]
    assert (status, doc["where"]) == (400, "$.serial_port") and "no good dsmr frame" in doc["error"], doc
    assert tomllib.loads(path.read_text()).keys() == {"http-api"}  # probing saves nothing

    # A bridge checks the entry with its own config Struct: an impossible one is `invalid`, named.
    admin = await started_bus(broker, "test-admin", instance="probe")
    try:
        await subscriptions_active(admin)
        bad = await admin.request(topics.service_command("sunspec-bridge", "main"),
                                  m.ProbeDevice(entry={"host": "127.0.0.1", "port": 70000}), 20)
        assert bad.status == "invalid" and "port" in bad.message and bad.command == "probe_device", bad
    finally:
        await admin.stop()

    # Saved only after a good read; the bridge is told and restarts on its new section.
    status, doc, _ = api.call("POST", "/api/v1/setup/devices", asks["sml"])
    assert status == 201 and doc["probe"]["status"] == "ok", doc
    assert tomllib.loads(path.read_text())["sml-reader"]["meters"] == [
        {"key": "house", "format": "sml", "port": str(sims["sml_link"])}]
    status, doc, _ = api.call("POST", "/api/v1/setup/devices", asks["dsmr_on_sml"] | {"save_anyway": True})
    assert status == 201 and doc["checked"] is False and doc["probe"] is None, doc  # saved unread, as asked
    assert len(tomllib.loads(path.read_text())["sml-reader"]["meters"]) == 2


# protocol, bridge, simulator module + args, announced port is the simulator's
KINDS = [("sunspec", "sunspec-bridge", ("sunspec", "--static")), ("aps-ecu", "ecu-bridge", ("ecu",)),
         ("givenergy", "giv-bridge", ("giv", "--batteries", "0")), ("goe", "goe-shelly-bridge", ("goe",)),
         ("shelly", "goe-shelly-bridge", ("shelly",))]


@pytest.mark.parametrize(("protocol", "bridge", "sim_args"), KINDS, ids=[k[0] for k in KINDS])
async def test_an_ignored_device_is_not_adopted(protocol: str, bridge: str, sim_args: tuple[str, ...],
                                                tmp_path: Path, start_service: Any,
                                                broker: Mosquitto) -> None:  # noqa: F811
    sim = SimulatorProcess(tmp_path / "sim.log", *sim_args)
    device_id = f"ignore-me-{protocol}"
    disco = await started_bus(broker, "discovery", instance=f"ignore-{protocol}")
    watcher = await started_bus(broker, "test-admin", instance=f"ignore-{protocol}")
    status: dict[str, int] = {}
    metas: list[str] = []
    watcher.subscribe(topics.service_status(bridge, "main"), bytes,
                      lambda msg: status.update(codec.decode(msg.payload, m.ServiceStatus).counters))
    watcher.subscribe(f"{topics.PREFIX}/device/{bridge}/+/meta", bytes, lambda msg: metas.append(msg.topic))
    try:
        await subscriptions_active(watcher)
        path, api = start_api(tmp_path, start_service, broker, f"[{bridge}]\nstatus_interval_s = 1\n")
        # The bridge says which protocols it adopts when it starts; it ran before, it is stopped now.
        first = start_service(module(bridge), "--config", str(path), env=broker.env(bridge))
        await wait_forms(api, protocol)
        first.stop()
        await wait_forms(api, bridge, running=False)
        ann = m.DeviceAnnouncement(device_id=device_id, protocol=protocol,  # type: ignore[arg-type]
                                   address="127.0.0.1", port=sim.port, serial=f"SN-{protocol}")
        disco.publish(topics.discovery(device_id), ann, retain=True)
        await until(lambda: any(d["device_id"] == device_id for d in
                                api.call("GET", "/api/v1/setup/devices")[1]["discovered"]), 20, "announced")
        code, doc, _ = api.call("POST", f"/api/v1/setup/devices/{device_id}/ignore")
        assert code == 200 and doc["bridge"] == bridge, doc
        assert tomllib.loads(path.read_text())[bridge]["deny"] == [device_id]
        proc = start_service(module(bridge), "--config", str(path), env=broker.env(bridge))
        try:
            await until(lambda: status.get("adopt_denied", 0) >= 1, 40, f"{bridge} counting the denied announcement")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; counters {status}; {bridge} said:\n{proc.output()[-3000:]}") from None
        await asyncio.sleep(1.0)  # a poller it had started would announce its device by now
        assert status.get("adopt_start", 0) == 0 and metas == [], (status, metas)
    finally:
        disco.publish(topics.discovery(device_id), b"", retain=True)
        await disco.stop()
        await watcher.stop()
        sim.stop()


async def test_auto_instance_replicas_reload(tmp_path: Path, start_service: Any,
                                             broker: Mosquitto) -> None:  # noqa: F811
    path, api = start_api(tmp_path, start_service, broker, '[sml-reader]\ninstance = "auto"\n', reload_timeout_s=20)
    replica = start_service("wattbus_sml_reader", "--config", str(path), env=broker.env("sml-reader"))
    await wait_online(broker, ("sml-reader",), resolve_instance("auto"))
    # `wattbus config apply` reaches the replica too (the section is unchanged: it answers and keeps running).
    cli = [sys.executable, "-m", "wattbus.cli", "config", "--config", str(path), "apply", "sml-reader"]
    done = await asyncio.to_thread(subprocess.run, cli, env={**os.environ, **broker.env("http-api")},
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "unchanged" in done.stdout, (done.stdout, done.stderr)
    code, doc, _ = api.call("PUT", "/api/v1/setup/sections/sml-reader", {"instance": "auto", "status_interval_s": 7})
    assert code == 200 and doc["applied"]["status"] == "ok", doc
    assert doc["applied"]["target"] == "sml-reader/all" and resolve_instance("auto") in doc["applied"]["message"]
    await until(lambda: replica.proc.poll() is not None, 20, "the replica restarting on its new section")
    assert replica.proc.returncode == RELOAD_EXIT_CODE


async def test_environment_overrides_are_shown_with_their_source(tmp_path: Path, start_service: Any,
                                                                 broker: Mosquitto) -> None:  # noqa: F811
    env = {"WATTBUS_SURPLUS_CONTROLLER_STALE_AFTER_S": "20"}
    text = '[surplus-controller]\ngrid_meter = "house-sim/house-meter"\nstale_after_s = 30.0\n'
    path, api = start_api(tmp_path, start_service, broker, text, env)
    code, doc, _ = api.call("GET", "/api/v1/setup/sections/surplus-controller")
    found = doc["overrides"]["stale_after_s"]
    assert code == 200 and (found["env"], found["value"], found["file_value"]) == (
        "WATTBUS_SURPLUS_CONTROLLER_STALE_AFTER_S", 20, 30.0)
    assert doc["effective"]["stale_after_s"] == 20 and doc["values"]["stale_after_s"] == 30.0
    assert "editing the file will not change it" in found["note"]
    code, doc, _ = api.call("PUT", "/api/v1/setup/sections/surplus-controller",
                            {"grid_meter": "house-sim/house-meter", "stale_after_s": 40})
    assert code == 200 and doc["overridden"]["stale_after_s"]["value"] == 20, doc
    overview = api.call("GET", "/api/v1/setup")[1]["overrides"]
    assert overview["bus"]["password"]["value"] == "(secret)"  # shown as set, never its value
    assert overview["bus"]["port"]["value"] == broker.port

    cli = [sys.executable, "-m", "wattbus.cli", "config", "--config", str(path)]
    run_env = {**os.environ, **env}
    got = subprocess.run([*cli, "get", "surplus-controller"], env=run_env, capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and "stale_after_s = 40" in got.stdout
    assert "# stale_after_s = 20  # from WATTBUS_SURPLUS_CONTROLLER_STALE_AFTER_S" in got.stdout, got.stdout
    changed = subprocess.run([*cli, "set", "surplus-controller", "stale_after_s", "50"], env=run_env,
                             capture_output=True, text=True, timeout=60)
    assert changed.returncode == 0 and "editing the file will not change it" in changed.stderr, changed.stderr
