"""Issue 21 attack 5, client-id takeover, against a real Mosquitto with the shipped ACL and the
client-id plugin (mosquitto/plugin/): the embedded demo's broker (anonymous read-only clients
admitted, per-service users). The plugin is asked before password_file and only ever refuses or
defers, so a wrong id is refused with the right password and a right id with a wrong password.
reliability/REPORT.md states the attack as expected -> observed."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from wattbus import topics
from wattbus.bus import Bus
from wattbus.client_id import bound_client_id
from wattbus.config import BusConfig
from wattbus.embedded import broker_users

from tests.reliability.brokers import Broker
from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.reliability.test_acl import demo_broker as demo  # noqa: F401  (the demo broker fixture)
from tests.support.bus_helpers import subscriptions_active, until
from tests.support.servers import ROOT, TEST_ADMIN, free_port

READING = "wattbus/v1/device/sml-reader/emh-1/reading"
# (protocol, persistent session): MQTT v5 clean start, v5 with a session kept 10 min, v3.1.1 clean_session=0
V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311
SESSIONS = [(V5, False), (V5, True), (V311, True)]


def bus_config(broker: Broker, user: str, **extra: Any) -> BusConfig:
    return BusConfig(host="127.0.0.1", port=broker.port, username=user, password=broker.files.password(user),
                     reconnect_max_s=1.0, **extra)


def try_connect(port: int, client_id: str, user: str | None, password: str | None, *,
                protocol: MQTTProtocolVersion = V5, persistent: bool = False) -> ReasonCode:
    """One CONNECT with the attacker's choice of id and session; the CONNACK's reason (then closed)."""
    got: list[ReasonCode] = []
    if protocol == V5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    else:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                             clean_session=not persistent)
    if user is not None:
        client.username_pw_set(user, password)

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None) -> None:
        got.append(reason)

    client.on_connect = on_connect
    if protocol == V5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600 if persistent else 0
        client.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
    else:
        client.connect("127.0.0.1", port)
    # Driven here, not by loop_start(): paho's thread would retry a refused connection after a delay.
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    assert got, f"no CONNACK for {client_id}"
    return got[0]


def refusals(broker: Broker, client_id: str) -> list[str]:
    return [line for line in broker.log.read_text().splitlines() if f"refused client id '{client_id}'" in line]


def test_client_ids_live_in_the_account_namespace() -> None:
    own = bound_client_id("influx-writer-main", "influx-writer", "secret")
    assert own.startswith("influx-writer-main-")
    assert own == bound_client_id("influx-writer-main", "influx-writer", "secret")  # stable: the session survives
    assert own != bound_client_id("influx-writer-main", "influx-writer", "another secret")
    assert bound_client_id("influx-writer-main", "admin", "secret").startswith("admin-influx-writer-main-")
    assert bound_client_id("wattbus-config-cli-1", None, None) == "wattbus-config-cli-1"  # anonymous: no tag


@pytest.mark.parametrize("attacker", ["sml-reader", None])  # a service account; the demo's anonymous client
async def test_takeover_of_the_writer_is_refused(demo: Broker, attacker: str | None,
                                                  record_property: Callable[[str, object], None]) -> None:
    """Attack 5: taking the writer's id kicked it and took its persistent session. The attacker here
    knows the exact ids (as if read from a log) and has the right password for its own account."""
    cfg = bus_config(demo, "influx-writer", session_expiry_s=600)
    got: list[str] = []
    victim = Bus(cfg, "influx-writer", "main")
    victim.subscribe(topics.ALL_READINGS, bytes, lambda msg: got.append(msg.topic))
    await victim.start()
    assert await victim.wait_connected(10)
    await subscriptions_active(victim)
    await victim.stop()  # offline with its session kept: readings queue for it in the broker

    meter = Probe(demo.port, "sml-reader", demo.files.password("sml-reader"))
    assert (reason := meter.connect()) is not None and not reason.is_failure
    queued = 50
    for n in range(queued):
        assert meter.publish_reason(READING, f"r{n}".encode()) < 0x80
    password = demo.files.password(attacker) if attacker else None
    stolen = [victim.client_id, f"{victim.client_id}-ingest", "influx-writer"]
    try:
        offline = [await asyncio.to_thread(try_connect, demo.port, cid, attacker, password, protocol=protocol,
                                           persistent=persistent)
                   for cid in stolen for protocol, persistent in SESSIONS]
        assert [r.value for r in offline] == [NOT_AUTHORIZED] * len(offline), offline

        again = Bus(cfg, "influx-writer", "main")  # the writer's restart: same id, its session intact
        again.subscribe(topics.ALL_READINGS, bytes, lambda msg: got.append(msg.topic))
        await again.start()
        assert await again.wait_connected(10)
        await until(lambda: len(got) >= queued, 10, "the queued readings")
        # While the writer is connected: the same attempts do not kick it off.
        online = [await asyncio.to_thread(try_connect, demo.port, again.client_id, attacker, password,
                                          protocol=protocol, persistent=persistent)
                  for protocol, persistent in SESSIONS]
        assert [r.value for r in online] == [NOT_AUTHORIZED] * len(online), online
        assert meter.publish_reason(READING, b"after") < 0x80
        await until(lambda: len(got) >= queued + 1, 10, "a reading after the attack")
        await asyncio.sleep(0.3)
        assert again.connected and len(got) == queued + 1
        await again.stop()
    finally:
        meter.close()
    # Each refusal is logged once by the broker, with the account and the id, never a password.
    who = f"user '{attacker}'" if attacker else "an anonymous client"
    assert all(len([x for x in refusals(demo, cid) if who in x]) == len(SESSIONS) * (2 if i == 0 else 1)
               for i, cid in enumerate(stolen)), demo.log.read_text()[-2000:]
    assert not any(demo.files.password(u) in demo.log.read_text() for u in broker_users(ROOT))
    record_property("takeover_attempts", len(offline) + len(online))
    record_property("readings_to_writer", len(got))


def test_a_service_account_keeps_to_its_own_ids(demo: Broker) -> None:
    password = demo.files.password("sml-reader")
    assert not try_connect(demo.port, "sml-reader", "sml-reader", password).is_failure
    assert not try_connect(demo.port, "sml-reader-emh-1-x", "sml-reader", password).is_failure
    for foreign in ("probe-1", "sml-readerX", "auto-1234", "house-sim-1", "admin"):
        assert try_connect(demo.port, foreign, "sml-reader", password).value == NOT_AUTHORIZED, foreign
        assert len(refusals(demo, foreign)) == 1
    # Anonymous demo clients keep ids that no account owns (paho's and mosquitto_sub's random ones).
    assert not try_connect(demo.port, "", None, None).is_failure
    assert not try_connect(demo.port, "viewer-1", None, None).is_failure
    # A free account (plugin_opt_free_accounts: the test harness' admin) likewise, never a service's.
    admin = demo.files.password(TEST_ADMIN)
    assert not try_connect(demo.port, "viewer-2", TEST_ADMIN, admin).is_failure
    assert try_connect(demo.port, "influx-writer-x", TEST_ADMIN, admin).value == NOT_AUTHORIZED
    # Home Assistant's account is free in the shipped configs: its integration's random id connects.
    hass = demo.files.password("homeassistant")
    assert not try_connect(demo.port, "6bEdFx2ZqWkGdB9hN3pT1a", "homeassistant", hass).is_failure
    assert try_connect(demo.port, "influx-writer-main", "homeassistant", hass).value == NOT_AUTHORIZED


async def test_writer_replicas_with_distinct_ids_connect(demo: Broker) -> None:
    """`--scale influx-writer=3`: one account, each replica its host name as instance, each with an
    ingest connection of its own; all connected at once, none kicks another."""
    cfg = bus_config(demo, "influx-writer")
    replicas = [Bus(cfg, "influx-writer", host) for host in ("3f2a9c1d0b7e", "8e1b6d4c2a90", "c0ffee123456")]
    for bus in replicas:
        await bus.start()
        assert await bus.wait_connected(10), bus.client_id
    ingest = [Probe(demo.port, "influx-writer", cfg.password) for _ in replicas]
    try:
        for bus, probe in zip(replicas, ingest, strict=True):
            assert (reason := probe.connect()) is not None and not reason.is_failure, bus.client_id
        assert len({bus.client_id for bus in replicas}) == 3
        await asyncio.sleep(0.3)
        assert all(bus.connected for bus in replicas)
        assert "already connected" not in demo.log.read_text()
    finally:
        for probe in ingest:
            probe.close()
        for bus in replicas:
            await bus.stop()


async def test_own_id_with_a_wrong_password_is_refused(demo: Broker) -> None:
    """The plugin never says yes on its own: the password check still runs for a right id."""
    writer = Bus(bus_config(demo, "influx-writer"), "influx-writer", "main")
    await writer.start()
    assert await writer.wait_connected(10)
    try:
        for protocol, persistent in SESSIONS:
            reason = await asyncio.to_thread(try_connect, demo.port, writer.client_id, "influx-writer",
                                             "not-the-password", protocol=protocol, persistent=persistent)
            assert reason.value in (NOT_AUTHORIZED, 0x86), reason  # v3.1.1 maps both to "not authorised"
        await asyncio.sleep(0.3)
        assert writer.connected and refusals(demo, writer.client_id) == []  # the password check refused it
    finally:
        await writer.stop()


def test_demo_and_compose_bind_ids_to_the_same_accounts(demo: Broker) -> None:
    compose = (ROOT / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "plugin_opt_accounts_file /mosquitto/config/users.txt" in compose
    assert any(line.startswith("plugin /usr/lib/mosquitto/wattbus_client_ids.so") for line in compose)
    mounts = (ROOT / "compose.yaml").read_text()
    assert "./mosquitto/users.txt:/mosquitto/config/users.txt:ro" in mounts
    demo_conf = demo.files.conf.read_text().splitlines()
    accounts = Path(next(x for x in demo_conf if x.startswith("plugin_opt_accounts_file ")).split(" ", 1)[1])
    assert set(broker_users(ROOT)) <= set(accounts.read_text().split())


def start_broker(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=out, stderr=out)


@pytest.mark.parametrize(("accounts", "message"), [
    (None, "cannot read plugin_opt_accounts_file"),
    ("sml-reader\nhome assistant\n", "line 2: not an account name"),
    ("# nothing but a comment\n", "names no account"),
])
def test_a_bad_accounts_file_stops_the_broker_with_a_clear_error(demo: Broker, tmp_path: Path, accounts: str | None,
                                                                 message: str) -> None:
    path = tmp_path / "accounts"
    if accounts is not None:
        path.write_text(accounts)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(f"plugin_opt_accounts_file {path}" if line.startswith("plugin_opt_accounts_file")
                              else line for line in demo.files.conf.read_text().splitlines()
                              if not line.startswith("listener")) + f"\nlistener {free_port()} 127.0.0.1\n")
    log = tmp_path / "broker.log"
    proc = start_broker(conf, log)
    assert proc.wait(10) != 0
    assert f"wattbus-client-ids: {'' if accounts is None else str(path) + ' '}" in log.read_text()
    assert message in log.read_text()


def test_reload_reads_the_accounts_again(demo: Broker) -> None:
    accounts = Path(next(x for x in demo.files.conf.read_text().splitlines()
                         if x.startswith("plugin_opt_accounts_file ")).split(" ", 1)[1])
    assert not try_connect(demo.port, "new-service-1", None, None).is_failure
    accounts.write_text(accounts.read_text() + "new-service\n")
    assert demo.proc is not None
    os.kill(demo.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload: " not in demo.log.read_text():
        assert time.monotonic() < deadline, "the broker did not reload"
        time.sleep(0.05)
    assert try_connect(demo.port, "new-service-1", None, None).value == NOT_AUTHORIZED
