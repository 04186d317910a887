"""The service end to end: real broker with the real ACL, a bridge's bus user, a local HTTP target."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.liveness import judged_topic

from tests.integrations.helpers import check_config, metas, readings
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port

CHARGER = metas()["goe-203040"]
READING = next(raw for _n, r, raw in readings() if r.device_id == CHARGER.device_id)
CONFIG = "homeassistant/device/wattbus-goe-203040/config"
SET_CURRENT = "homeassistant/wattbus/wattbus-goe-203040/charge_current/set"
TWINS = ("goe-203041", "goe-203042")


@pytest.fixture
async def http_target() -> AsyncIterator[tuple[str, list[str]]]:
    port, bodies = free_port(), []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/push/{device}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", bodies
    await runner.cleanup()


def write_config(tmp_path: Path, http_url: str) -> Path:
    rules = tmp_path / "rules.toml"
    rules.write_text(f'''
[[rule]]
name = "values"
each = "field"
[rule.mqtt]
topic = "integrations/test/{{{{device_id}}}}/{{{{field}}}}"
payload = "{{{{value}}}}"

[[rule]]
name = "push"
kinds = ["charger"]
[rule.http]
url = "{http_url}/push/{{{{device_id}}}}"
body = '{{"w":{{{{power_w}}}},"at":{{{{timestamp_utc|json}}}}}}'
retry_initial_s = 0.1
''')
    config = tmp_path / "wattbus.toml"
    config.write_text(f'[integrations]\nstatus_interval_s = 1\nrepublish_delay_max_s = 0\nstale_grace_s = 2\n'
                      f'template_files = ["{rules}"]\n')
    return config


class Seen:
    def __init__(self) -> None:
        self.messages: list[Message[bytes]] = []

    def __call__(self, msg: Message[bytes]) -> None:
        self.messages.append(msg)

    def on(self, topic: str) -> list[bytes]:
        return [msg.payload for msg in self.messages if msg.topic == topic]


def status_counter(seen: Seen, name: str, since: datetime) -> int:
    """A counter of the integrations service started at `since` or later: the session's broker also
    holds the retained status of an earlier test's integrations/main."""
    statuses = [codec.decode(p, m.ServiceStatus) for p in seen.on(topics.service_status("integrations", "main"))]
    own = [status for status in statuses if status.started_at >= since]
    return own[-1].counters.get(name, 0) if own else 0


async def test_discovery_controls_templates_and_removal(broker: Mosquitto, tmp_path: Path,
                                                        http_target: tuple[str, list[str]],
                                                        start_service: Callable[..., Any]) -> None:
    url, bodies = http_target
    observer = await started_bus(broker, "test-admin", "ha")  # stands in for Home Assistant
    bridge = await started_bus(broker, "goe-shelly-bridge", "t")
    seen = Seen()
    commands: list[m.CommandBase] = []
    try:
        # A config of ours from an earlier run, for a device that no longer exists.
        stale = {"dev": {"identifiers": ["wattbus-gone-1"]}, "o": {"name": "wattbus"},
                 "cmps": {"power_w": {"p": "sensor", "unique_id": "wattbus-gone-1_power_w", "state_topic": "x"}}}
        observer.publish("homeassistant/device/wattbus-gone-1/config", codec.encode(stale), retain=True)
        judged = judged_topic("integrations", "main", CHARGER.source, CHARGER.device_id)
        for sub in ("homeassistant/#", "integrations/#", topics.ALL_SERVICE_STATUS, judged):
            observer.subscribe(sub, bytes, seen)

        def answer(msg: Message[m.Command]) -> None:
            commands.append(msg.payload)
            bridge.respond(msg, m.CommandResult(status="ok", command="set_charge_current", target=CHARGER.device_id),
                           topics.device_result(CHARGER.source, CHARGER.device_id))

        bridge.subscribe(topics.commands_for(CHARGER.source), m.Command, answer)
        bridge.publish(topics.device_meta(CHARGER.source, CHARGER.device_id), CHARGER, retain=True)
        bridge.publish(topics.device_availability(CHARGER.source, CHARGER.device_id), m.ONLINE, retain=True)

        launched = m.utc_now()
        proc = start_service("wattbus_integrations", "--config", str(write_config(tmp_path, url)),
                             env=broker.env("integrations"))
        await until(lambda: status_counter(seen, "messages_in", launched) > 0, 30, "the service's status")
        bridge.publish(topics.device_reading(CHARGER.source, CHARGER.device_id), READING)

        await until(lambda: any(p for p in seen.on(CONFIG)), 20, "the charger's discovery config")
        doc = msgspec.json.decode(next(p for p in seen.on(CONFIG) if p))
        assert check_config(CONFIG, doc) == []
        assert {"power_w", "energy_total_wh", "charge_current", "charging", "phases"} <= set(doc["cmps"])

        # Templates: one retained topic per value over MQTT, and the HTTP push.
        await until(lambda: seen.on(f"integrations/test/{CHARGER.device_id}/power_w") == [b"7360"], 20, "MQTT rule")
        await until(lambda: len(bodies) == 1, 20, "HTTP push")
        assert msgspec.json.decode(bodies[0]) == {"w": 7360, "at": "2025-06-01T12:00:05.000Z"}

        # Home Assistant sets the charge current: a validated bus command reaches the bridge.
        observer.publish(SET_CURRENT, "16")
        await until(lambda: len(commands) == 1, 20, "the set_charge_current command")
        assert commands[0] == m.SetChargeCurrent(current_a=16.0)
        observer.publish(SET_CURRENT, "99")  # outside 6-32 A: refused, never sent
        observer.publish(SET_CURRENT, "sixteen")
        await until(lambda: status_counter(seen, "hass_commands_rejected", launched) == 2, 20,
                    "rejected commands counted")
        await until(lambda: status_counter(seen, "hass_commands_ok", launched) == 1, 20, "the bridge's answer")
        assert len(commands) == 1

        # The stale config is deleted after the grace period.
        await until(lambda: b"" in seen.on("homeassistant/device/wattbus-gone-1/config"), 20, "stale removal")

        # Home Assistant restarts: its birth message brings every config again.
        before = len([p for p in seen.on(CONFIG) if p])
        observer.publish("homeassistant/status", "online")
        await until(lambda: len([p for p in seen.on(CONFIG) if p]) > before, 20, "configs after HA's birth")

        # Garbage on the bus is counted, the service keeps going.
        bridge.publish(topics.device_reading(CHARGER.source, CHARGER.device_id), b'{"kind":"charger"}')
        await until(lambda: status_counter(seen, "readings_rejected", launched) == 1, 20, "the bad reading counted")

        # The bridge deletes the device: Home Assistant is told to delete it too.
        bridge.publish(topics.device_meta(CHARGER.source, CHARGER.device_id), b"", retain=True)
        await until(lambda: seen.on(CONFIG)[-1:] == [b""], 20, "the device's removal")
        # The judged availability HA followed (wattbus.liveness) was published, and goes with the device.
        assert {m.ONLINE.encode(), m.OFFLINE.encode()} & set(seen.on(judged)), seen.on(judged)
        await until(lambda: seen.on(judged)[-1:] == [b""], 20, "the judged availability's removal")
        assert proc.proc.poll() is None, proc.output()
        assert proc.stop() == 0
    finally:
        bridge.publish(topics.device_availability(CHARGER.source, CHARGER.device_id), b"", retain=True)
        observer.publish("homeassistant/device/wattbus-gone-1/config", b"", retain=True)
        await asyncio.sleep(0.2)
        await bridge.stop()
        await observer.stop()


def test_bad_template_stops_start_up_with_file_line_and_placeholder(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "grid"\nkinds = ["meter"]\n[rule.mqtt]\n'
                     'topic = "integrations/grid"\npayload = "{{ power_watts }}"\n')
    config = tmp_path / "wattbus.toml"
    config.write_text(f'[integrations]\ntemplate_files = ["{rules}"]\n')
    done = subprocess.run([sys.executable, "-m", "wattbus_integrations", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{rules}:6:" in done.stderr and "rule 'grid'" in done.stderr and "{{ power_watts }}" in done.stderr


async def test_per_entity_discovery_replaces_the_device_form_and_is_removed(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    """discovery_per_entity (Home Assistant before 2024.11): one retained config per entity."""
    observer = await started_bus(broker, "test-admin", "ha-entity")
    bridge = await started_bus(broker, "goe-shelly-bridge", "t-entity")
    seen = Seen()
    number = "homeassistant/number/wattbus-goe-203040/charge_current/config"
    try:
        # The device form from a run before the setting changed: HA would show both.
        observer.publish(CONFIG, codec.encode({"dev": {"identifiers": ["wattbus-goe-203040"]}, "o": {"name": "wattbus"},
                                               "cmps": {"power_w": {"p": "sensor"}}}), retain=True)
        observer.subscribe("homeassistant/#", bytes, seen)
        bridge.publish(topics.device_meta(CHARGER.source, CHARGER.device_id), CHARGER, retain=True)
        config = tmp_path / "wattbus.toml"
        config.write_text("[integrations]\nstatus_interval_s = 1\nstale_grace_s = 1\ndiscovery_per_entity = true\n")
        proc = start_service("wattbus_integrations", "--config", str(config), env=broker.env("integrations"))
        # The old config's sensor and the controls come with the meta; the rest with a reading.
        await until(lambda: any(seen.on(number)), 30, "the charge current's own config")
        bridge.publish(topics.device_reading(CHARGER.source, CHARGER.device_id), READING)
        energy = "homeassistant/sensor/wattbus-goe-203040/energy_total_wh/config"
        await until(lambda: any(seen.on(energy)), 20, "the entities of the reading's values")
        await until(lambda: seen.on(CONFIG)[-1:] == [b""], 20, "the device form's removal")
        doc = msgspec.json.decode(next(p for p in seen.on(number) if p))
        assert "p" not in doc and doc["dev"]["identifiers"] == ["wattbus-goe-203040"] and doc["o"]["name"] == "wattbus"
        assert doc["command_topic"] == SET_CURRENT and (doc["min"], doc["max"]) == (6, 32)
        # This device's entities only: the session-wide broker holds other tests' retained configs.
        entity_topics = {t for t in (msg.topic for msg in seen.messages)
                         if t.endswith("/config") and t != CONFIG and "/wattbus-goe-203040/" in t}
        assert "homeassistant/sensor/wattbus-goe-203040/power_w/config" in entity_topics and len(entity_topics) > 5

        bridge.publish(topics.device_meta(CHARGER.source, CHARGER.device_id), b"", retain=True)
        await until(lambda: all(seen.on(t)[-1:] == [b""] for t in entity_topics), 20, "every entity's removal")

        # Two devices configured with one name: HA would suffix the second's ids, so the log says so.
        for twin in TWINS:
            bridge.publish(topics.device_meta(CHARGER.source, twin), msgspec.structs.replace(
                CHARGER, device_id=twin, serial=twin, name="Garage"), retain=True)
            reading = msgspec.structs.replace(codec.decode_reading(READING), device_id=twin)
            bridge.publish(topics.device_reading(CHARGER.source, twin), reading)
        await until(lambda: "two devices share one name" in proc.output(), 20, "the warning about the twins")
        assert proc.stop() == 0
    finally:
        for twin in TWINS:
            bridge.publish(topics.device_meta(CHARGER.source, twin), b"", retain=True)
        for topic in {msg.topic for msg in seen.messages if any(twin in msg.topic for twin in TWINS)}:
            observer.publish(topic, b"", retain=True)  # the broker outlives this test
        await asyncio.sleep(0.2)
        await bridge.stop()
        await observer.stop()


async def test_home_assistant_sets_the_charge_plan_one_part_at_a_time(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    """The plan's number and text controls become set_loadpoint_plan commands that carry the other
    parts as the loadpoint state shows them (the command sets the plan as a whole)."""
    observer = await started_bus(broker, "test-admin", "ha-plan")  # stands in for Home Assistant
    controller = await started_bus(broker, "surplus-controller", "t-plan")
    seen = Seen()
    commands: list[m.CommandBase] = []
    state = m.LoadpointState(loadpoint_id="plan-t", mode="pv", plan_soc_pct=60, plan_time="0630", plan_min_soc_pct=20)
    base = "homeassistant/wattbus/wattbus-loadpoint-plan-t"
    config_topic = "homeassistant/device/wattbus-loadpoint-plan-t/config"
    try:
        def answer(msg: Message[m.Command]) -> None:  # as the controller: apply, answer, publish the state
            nonlocal state
            commands.append(msg.payload)
            if isinstance(msg.payload, m.SetLoadpointPlan):
                plan = msg.payload
                state = msgspec.structs.replace(state, plan_soc_pct=plan.soc_pct, plan_time=plan.time,
                                                plan_min_soc_pct=plan.min_soc_pct)
                controller.publish(topics.loadpoint_state("plan-t"), state, retain=True)
            controller.respond(msg, m.CommandResult(status="ok", command="set_loadpoint_plan", target="plan-t"),
                               topics.loadpoint_state("plan-t"))

        controller.subscribe(topics.loadpoint_command("plan-t"), m.Command, answer)
        controller.publish(topics.loadpoint_state("plan-t"), state, retain=True)
        for sub in (config_topic, topics.ALL_SERVICE_STATUS):
            observer.subscribe(sub, bytes, seen)
        config = tmp_path / "wattbus.toml"
        config.write_text("[integrations]\nstatus_interval_s = 1\nstale_grace_s = 1\n")
        launched = m.utc_now()
        proc = start_service("wattbus_integrations", "--config", str(config), env=broker.env("integrations"))
        await until(lambda: any(seen.on(config_topic)), 30, "the loadpoint's discovery config")
        cmps = msgspec.json.decode(next(p for p in seen.on(config_topic) if p))["cmps"]
        assert [cmps[k]["p"] for k in ("plan_soc", "plan_time", "plan_min_soc")] == ["number", "text", "number"]
        assert cmps["plan_time"]["command_topic"] == f"{base}/plan_time/set"

        observer.publish(f"{base}/plan_soc/set", "80")
        await until(lambda: len(commands) == 1, 20, "the plan's target SoC as a command")
        assert commands[0] == m.SetLoadpointPlan(soc_pct=80, time="0630", min_soc_pct=20)
        # The controller published its new state before its answer, on one connection: once the
        # answer is counted, the service holds the new state the next part is sent with.
        await until(lambda: status_counter(seen, "hass_commands_ok", launched) == 1, 20, "the controller's answer")
        observer.publish(f"{base}/plan_time/set", "07:15")
        await until(lambda: len(commands) == 2, 20, "the plan's time as a command")
        assert commands[1] == m.SetLoadpointPlan(soc_pct=80, time="0715", min_soc_pct=20)
        observer.publish(f"{base}/plan_time/set", "25:00")  # no such time: refused, never sent
        observer.publish(f"{base}/plan_time/set", "")  # empty clears the time
        await until(lambda: len(commands) == 3, 20, "the cleared time as a command")
        assert commands[2] == m.SetLoadpointPlan(soc_pct=80, time=None, min_soc_pct=20)
        assert proc.stop() == 0
    finally:
        controller.publish(topics.loadpoint_state("plan-t"), b"", retain=True)
        observer.publish(config_topic, b"", retain=True)
        await asyncio.sleep(0.2)
        await controller.stop()
        await observer.stop()
