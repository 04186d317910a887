"""The real aps2mqtt 2.0.2 and ecu-bridge side by side: one ECU simulator, one real Mosquitto with the
shipped ACL, both configured only by aps2mqtt's environment variables. Every topic and every value
aps2mqtt publishes must come from ecu-bridge too, and so must its Home Assistant discovery configs.

aps2mqtt publishes under MQTT_TOPIC_PREFIX=real and MQTT_DISCOVERY_PREFIX=real-ha (as the test's
admin login); ecu-bridge under aps2mqtt's defaults, on its own broker account. aps2mqtt ignores
APS_ECU_PORT (its socket always dials 8899), so the simulator listens on 8899 of a loopback address
of its own.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from wattbus_sim.ecu import DEFAULT_IDS, fleet_from_text

from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto

FLEET = "00:1,01:2,02:1,03:1,04:1,05:1"  # every type; the 00 one is registered but silent (offline)
ECU_ID = DEFAULT_IDS["ECU-R"]
UIDS = [inv.uid for inv in fleet_from_text(FLEET)]
LOST = UIDS[2]  # a YC600 the ECU lost contact with: a full record, online flag 0
RUNNER = Path(__file__).with_name("run_aps2mqtt.py")


class Recorder:
    """The last payload per topic, as a plain paho subscriber sees it."""

    def __init__(self, broker: Mosquitto) -> None:
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="aps2mqtt-side-by-side")
        self.client.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
        self.client.on_message = self._message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe([("real/#", 1), ("aps/#", 1), ("real-ha/#", 1), ("homeassistant/#", 1),
                               ("wattbus/v1/service/ecu-bridge/#", 1)])
        self.client.loop_start()
        assert subscribed.wait(10), "the recorder's subscription was not acknowledged"

    def _message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.last[msg.topic] = msg.payload

    def snapshot(self, prefix: str) -> dict[str, bytes]:
        with self.lock:
            return {t: p for t, p in self.last.items() if t.startswith(prefix)}

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait(predicate: Callable[[], bool], timeout: float, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode} while waiting for {what}"
        assert time.monotonic() < deadline, f"{what} not seen within {timeout} s"
        time.sleep(0.05)


def loopback_with_free_8899() -> str:
    for _ in range(50):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((host, 8899))
            except OSError:
                continue
            return host
    raise AssertionError("no loopback address with port 8899 free")


def aps2mqtt_env(broker: Mosquitto, host: str, user: str, prefix: str, discovery_prefix: str) -> dict[str, str]:
    return {"APS_ECU_IP": host, "APS_ECU_PORT": "8899", "APS_ECU_STOP_AT_NIGHT": "False",
            "APS_ECU_TIMEZONE": "Europe/Berlin", "MQTT_BROKER_HOST": "127.0.0.1",
            "MQTT_BROKER_PORT": str(broker.port), "MQTT_BROKER_USER": user,
            "MQTT_BROKER_PASSWD": broker.files.password(user), "MQTT_TOPIC_PREFIX": prefix,
            "MQTT_DISCOVERY_ENABLED": "True", "MQTT_DISCOVERY_PREFIX": discovery_prefix,
            "MQTT_CLIENT_ID": "APS2MQTT"}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("APS_", "MQTT_", "WATTBUS_")) and k not in ("CONFIG_FILE", "APS2MQTT_CONFIG")}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], env={**clean, **env, "PYTHONUNBUFFERED": "1"},
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Recorder, Mosquitto, Path]]:
    """Both clients' output for the same ECU data: the simulator refreshes every 10 minutes, so
    aps2mqtt's one poll and ecu-bridge's first poll read the same values."""
    tmp = tmp_path_factory.mktemp("aps2mqtt")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    host = loopback_with_free_8899()
    procs: list[subprocess.Popen[bytes]] = []
    recorder = Recorder(broker)
    try:
        procs.append(spawn(["-m", "wattbus_sim", "ecu", "--host", host, "--port", "8899", "--fleet", FLEET,
                            "--pv-fraction", "0.6", "--refresh-s", "600", "--lost", LOST], {}, tmp / "sim.log"))
        wait_port_on(host, 8899)
        real_env = {**aps2mqtt_env(broker, host, TEST_ADMIN, "real", "real-ha"), "APS2MQTT_TEST_PAUSE_S": "0.05"}
        procs.append(spawn([str(RUNNER)], real_env, tmp / "aps2mqtt.log"))
        wait(lambda: all(f"real/aps/{ECU_ID}/{uid}" in recorder.last for uid in UIDS), 30,
             "aps2mqtt's inverter documents", procs)
        # aps2mqtt's next poll is due 6 minutes after the ECU's timestamp: the ECU is ecu-bridge's now.
        (tmp / "empty.toml").write_text("# everything from aps2mqtt's variables\n")
        ours_env = {**aps2mqtt_env(broker, host, "ecu-bridge", "", "homeassistant"),
                    "APS_ECU_POLL_INTERVAL_S": "0.5", "APS_ECU_ANSWER_DELAY_S": "0.02",
                    "APS_ECU_PAUSE_BETWEEN_COMMANDS_S": "0.02", "APS_ECU_MAINTENANCE_START": "00:00",
                    "APS_ECU_MAINTENANCE_END": "00:00", "WATTBUS_CONFIG": str(tmp / "empty.toml")}
        procs.append(spawn(["-m", "wattbus_ecu_bridge"], ours_env, tmp / "ecu-bridge.log"))
        real_configs = len(recorder.snapshot("real-ha/"))
        wait(lambda: all(f"aps/{ECU_ID}/{uid}" in recorder.last for uid in UIDS)
             and len(recorder.snapshot("homeassistant/")) >= real_configs, 30, "ecu-bridge's aps2mqtt topics", procs)
        time.sleep(0.3)  # the rest of that poll's messages
        yield recorder, broker, tmp
    finally:
        recorder.stop()
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        broker.stop()


def wait_port_on(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout} s")


def test_every_aps2mqtt_topic_and_value_comes_from_ecu_bridge(side_by_side: tuple[Recorder, Mosquitto, Path]) -> None:
    recorder, _, _ = side_by_side
    real = {t.removeprefix("real/"): p for t, p in recorder.snapshot("real/aps/").items()}
    ours = recorder.snapshot("aps/")
    assert f"aps/{ECU_ID}" in real and len(real) == 2 + len(UIDS)  # aps/status, the ECU, each inverter
    missing, differing, values = [], [], 0
    for topic, payload in real.items():
        if topic not in ours:
            missing.append(topic)
            continue
        if topic == "aps/status":
            values += 1
            if ours[topic] != payload:
                differing.append(f"{topic}: aps2mqtt {payload!r}, ecu-bridge {ours[topic]!r}")
            continue
        want, got = json.loads(payload), json.loads(ours[topic])
        for key, value in want.items():
            values += 1
            # As JSON text: 230 and 230.0, or true and 1, are different values to a consumer.
            if key not in got or json.dumps(got[key]) != json.dumps(value):
                differing.append(f"{topic} {key}: aps2mqtt {json.dumps(value)}, ecu-bridge "
                                 f"{json.dumps(got.get(key, '<missing>'))}")
    assert missing == [] and differing == [], "\n".join(missing + differing)
    # What the comparison covered: a silent inverter, the 2-, 3- and 4-channel types with their voltages.
    inverters = [json.loads(real[f"aps/{ECU_ID}/{uid}"]) for uid in UIDS]
    assert [uid for uid, doc in zip(UIDS, inverters, strict=True) if not doc["online"]] == [UIDS[0], LOST]
    assert {"panel_4_power", "panel_3_voltage", "panel_1_voltage"} <= set(json.loads(real[f"aps/{ECU_ID}/{UIDS[3]}"]))
    assert values == 1 + 3 + sum(len(doc) for doc in inverters)
    # Signal strengths where rounding and aps2mqtt's truncation differ (201 -> 78 %, not 79) were compared.
    assert any(round(i.signal * 100 / 255) != i.signal * 100 // 255 for i in fleet_from_text(FLEET))


def test_home_assistant_discovery_matches_aps2mqtt(side_by_side: tuple[Recorder, Mosquitto, Path]) -> None:
    """MQTT_DISCOVERY_ENABLED: the same entities (unique ids, names, units, state topics) as aps2mqtt,
    so Home Assistant keeps the entities and their history. Unlike aps2mqtt, ecu-bridge also
    publishes the panel topics its panel entities read (aps2mqtt 2.0.2 never does)."""
    recorder, _, _ = side_by_side
    real = {t.removeprefix("real-ha/"): json.loads(p) for t, p in recorder.snapshot("real-ha/").items()}
    ours = {t.removeprefix("homeassistant/"): json.loads(p) for t, p in recorder.snapshot("homeassistant/").items()}
    for config in real.values():  # aps2mqtt's own topics carry its test prefix
        config["state_topic"] = config["state_topic"].removeprefix("real/")
        config["availability_topic"] = config["availability_topic"].removeprefix("real/")
    per_type = {"00": 0, "01": 4, "04": 4, "05": 4, "02": 7, "03": 5}  # panel power + voltage entities
    assert len(real) == 3 + sum(6 + per_type[uid[4:6]] for uid in UIDS)
    assert sorted(ours) == sorted(real)
    assert [t for t in real if ours[t] != real[t]] == []
    values = recorder.snapshot("aps/")
    unserved_by_aps2mqtt = {c["state_topic"] for c in real.values()} - {
        t.removeprefix("real/") for t in recorder.snapshot("real/aps/")}
    assert unserved_by_aps2mqtt and all(re.search(r"/\d$", t) for t in unserved_by_aps2mqtt)
    online = [uid for uid in UIDS if json.loads(values[f"aps/{ECU_ID}/{uid}"])["online"]]
    for config in ours.values():
        if not any(uid in config["unique_id"] for uid in online):
            continue  # the silent inverter: only `online` has a value, as with aps2mqtt
        key = re.fullmatch(r"\{\{ value_json\.(\w+) \}\}", config["value_template"])
        assert key and key.group(1) in json.loads(values[config["state_topic"]]), config["unique_id"]


def test_client_id_is_bound_to_the_password(side_by_side: tuple[Recorder, Mosquitto, Path]) -> None:
    """MQTT_CLIENT_ID=APS2MQTT names the instance; the broker sees a password-bound id, so aps2mqtt's
    own `APS2MQTT` connection and the bridge do not kick each other off."""
    recorder, broker, _ = side_by_side
    assert "wattbus/v1/service/ecu-bridge/APS2MQTT/status" in recorder.last
    log = broker.log.read_text()
    assert re.search(r"as ecu-bridge-APS2MQTT-[0-9a-f]{16} \(.*u'ecu-bridge'\)", log), log[-2000:]
    assert re.search(r"as APS2MQTT \(.*u'test-admin'\)", log)
    assert "already connected" not in log  # neither took the other's session
