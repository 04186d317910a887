"""The bridge as a real process: simulated ECUs on loopback TCP, the real broker and ACL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus_sim.ecu import EcuSimulator, fleet_from_text

from tests.ecu_bridge.conftest import Recorder, bridge_config
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto, free_port

DEV = "wattbus/v1/device/ecu-bridge"
STATUS = "wattbus/v1/service/ecu-bridge/main/status"


def reading(rec: Recorder, device_id: str) -> Any:
    return codec.decode_reading(rec.last[f"{DEV}/{device_id}/reading"])


def counters(rec: Recorder) -> dict[str, int]:
    raw = rec.last.get(STATUS)
    return codec.decode(raw, m.ServiceStatus).counters if raw else {}


def sim_inverters(sim: EcuSimulator) -> dict[str, tuple[bool, list[float]]]:
    return {inv.uid: (online, powers) for inv, online, powers in sim.snapshot()[1]}


async def test_array_inverters_and_panels_of_three_ecus(broker: Mosquitto, ecu_sim: EcuSimulator,
                                                        watcher: tuple[Bus, Recorder], start_service: Any,
                                                        tmp_path: Path) -> None:
    ecu_c = EcuSimulator(model="ECU-C", fleet=fleet_from_text("02:2,03:1", prefix="8020"), refresh_s=0.3,
                         pv_fraction=0.25)
    ecu_b = EcuSimulator(model="ECU-B", fleet=fleet_from_text("05:1", prefix="7030"), refresh_s=0.3, pv_fraction=0.7)
    await ecu_c.start(0, http_port=free_port())
    await ecu_b.start(0)
    bus, rec = watcher
    try:
        proc = start_service("wattbus_ecu_bridge", "--config", str(bridge_config(tmp_path, [ecu_sim, ecu_c, ecu_b])),
                             env=broker.env("ecu-bridge"))
        sims = (ecu_sim, ecu_c, ecu_b)
        uids = [uid for sim in sims for uid in sim_inverters(sim)]
        panels = sum(len(p) for sim in sims for on, p in sim_inverters(sim).values() if on)
        await until(lambda: all(rec.has(lambda t, u=u: t == f"{DEV}/apsystems-{u}/reading") for u in uids)
                    and sum(1 for t in rec.last if "-panel-" in t and t.endswith("/reading")) == panels,
                    timeout=40, what=f"readings for {len(uids)} inverters and {panels} panels")

        for sim, model in ((ecu_sim, "ECU-R (SunSpec)"), (ecu_c, "ECU-C"), (ecu_b, "ECU-B")):
            gid = f"apsystems-ecu-{sim.ecu_id}"
            meta = codec.decode(rec.last[f"{DEV}/{gid}/meta"], m.DeviceMeta)
            assert (meta.kind, meta.model, meta.serial, meta.firmware) == ("gateway", model, sim.ecu_id, sim.firmware)
            gw = reading(rec, gid)
            assert isinstance(gw, m.GatewayReading)
            assert gw.power_w == sim.power_w() and gw.devices_total == len(sim.fleet)
            assert gw.devices_online == sum(1 for on, _ in sim_inverters(sim).values() if on)
            for uid, (online, powers) in sim_inverters(sim).items():
                inv = reading(rec, f"apsystems-{uid}")
                assert isinstance(inv, m.InverterReading) and inv.online is online
                avail = rec.last[f"{DEV}/apsystems-{uid}/availability"].decode()
                assert avail == ("online" if online else "offline")
                if not online:
                    assert inv.power_w is None  # a silent inverter has no value, not 0 W
                    continue
                assert inv.power_w == sum(powers) and inv.frequency_hz and inv.temperature_c is not None
                assert len(inv.phases) == (3 if uid[4:6] == "02" else 1) and inv.extra["signal_pct"]
                for index, power in enumerate(powers, start=1):
                    panel = reading(rec, f"apsystems-{uid}-panel-{index}")
                    assert isinstance(panel, m.StringReading)
                    assert (panel.power_w, panel.inverter_id, panel.index) == (power, f"apsystems-{uid}", index)
            native = json.loads(rec.last[f"{DEV}/{gid}/native/aps2mqtt"])
            assert native["ecu"]["ecu_id"] == sim.ecu_id and len(native["inverters"]) == len(sim.fleet)
            assert sim.stats.refused == 0  # never two connections to one ECU at once

        # Restart: ECU-C can be restarted remotely, an ECU-B cannot.
        ok = await bus.request(topics.device_command("ecu-bridge", f"apsystems-ecu-{ecu_c.ecu_id}"),
                               m.Restart(request_id="r1"))
        assert (ok.status, ok.request_id, ecu_c.stats.restarts) == ("ok", "r1", 1)
        refused = await bus.request(topics.device_command("ecu-bridge", f"apsystems-ecu-{ecu_b.ecu_id}"),
                                    m.Restart())
        assert refused.status == "refused" and "power-cycle" in refused.message
        other = await bus.request(topics.device_command("ecu-bridge", f"apsystems-ecu-{ecu_c.ecu_id}"),
                                  m.SetRelay(on=True))
        assert other.status == "refused"
        assert not rec.has(lambda t: t.startswith("aps/"))  # aps2mqtt topics are opt-in
        assert proc.proc.poll() is None
    finally:
        await ecu_c.stop()
        await ecu_b.stop()


async def test_bad_answers_are_counted_and_auto_restart_recovers(broker: Mosquitto, ecu_sim: EcuSimulator,
                                                                 watcher: tuple[Bus, Recorder], start_service: Any,
                                                                 tmp_path: Path) -> None:
    _, rec = watcher
    cfg = bridge_config(tmp_path, [ecu_sim], auto_restart=True, restart_after_failures=2, wifi_ssid="home",
                        wifi_password="secret", timeout_s=1.0)
    proc = start_service("wattbus_ecu_bridge", "--config", str(cfg), env=broker.env("ecu-bridge"))
    # The bridge must know the ECU (its id tells the model) before it may restart it.
    await until(lambda: counters(rec).get("polls_ok", 0) >= 1, timeout=30, what="first good poll")
    ecu_sim.faults.add("garbage")
    # Garbage twice in a row -> restart through the ECU's web endpoint -> the ECU answers again.
    await until(lambda: ecu_sim.stats.restarts >= 1, timeout=30, what="automatic restart")
    assert ecu_sim.stats.restart_forms[0]["SSID"] == "home"
    await until(lambda: counters(rec).get("polls_ok", 0) >= 1 and counters(rec).get("frames_rejected", 0) >= 2,
                timeout=30, what="recovery after restart")
    for fault, counter in (("truncate", "frames_rejected"), ("bad_length", "frames_rejected"),
                           ("wrong_command", "frames_rejected"), ("timeout", "polls_failed"),
                           ("maintenance", "polls_failed")):
        before = counters(rec).get(counter, 0)
        ecu_sim.faults.add(fault)
        await until(lambda c=counter, b=before: counters(rec).get(c, 0) > b, timeout=30, what=f"{fault} counted")
        ecu_sim.faults.discard(fault)
    ok_before = counters(rec).get("polls_ok", 0)
    await until(lambda: counters(rec).get("polls_ok", 0) > ok_before, timeout=30, what="polling again")
    assert proc.proc.poll() is None, proc.output()
    assert "poll failed" in proc.output()


async def test_night_answer_marks_inverters_offline(broker: Mosquitto, ecu_sim: EcuSimulator,
                                                    watcher: tuple[Bus, Recorder], start_service: Any,
                                                    tmp_path: Path) -> None:
    _, rec = watcher
    ecu_sim.faults.add("night")
    start_service("wattbus_ecu_bridge", "--config", str(bridge_config(tmp_path, [ecu_sim])),
                  env=broker.env("ecu-bridge"))
    gid = f"apsystems-ecu-{ecu_sim.ecu_id}"
    await until(lambda: f"{DEV}/{gid}/reading" in rec.last and all(
        f"{DEV}/apsystems-{i.uid}/reading" in rec.last for i in ecu_sim.fleet), timeout=30, what="night readings")
    gw = reading(rec, gid)
    assert (gw.power_w, gw.devices_online) == (0.0, 0)
    for inv in ecu_sim.fleet:
        assert rec.last[f"{DEV}/apsystems-{inv.uid}/availability"] == b"offline"
        assert reading(rec, f"apsystems-{inv.uid}").power_w is None


def _midnight_longitude() -> float:
    """A longitude where it is local solar midnight now, so the sun is certainly down at latitude 0."""
    now = datetime.now(UTC)
    hours = now.hour + now.minute / 60
    return round(((hours - 0.0) * 15 + 180) % 360 - 180, 3)


async def test_stop_at_night_leaves_the_ecu_alone(broker: Mosquitto, ecu_sim: EcuSimulator,
                                                  watcher: tuple[Bus, Recorder], start_service: Any,
                                                  tmp_path: Path) -> None:
    _, rec = watcher
    cfg = bridge_config(tmp_path, [ecu_sim], stop_at_night=True, latitude=0.0, longitude=-_midnight_longitude())
    start_service("wattbus_ecu_bridge", "--config", str(cfg), env=broker.env("ecu-bridge"))
    await until(lambda: counters(rec).get("night_skips", 0) >= 1, timeout=30, what="night skip")
    assert ecu_sim.stats.connections == 0


async def test_aps2mqtt_environment_and_topics(broker: Mosquitto, ecu_sim: EcuSimulator,
                                               watcher: tuple[Bus, Recorder], start_service: Any,
                                               tmp_path: Path) -> None:
    """An aps2mqtt user's environment, unchanged except for the fast test timings, on their own broker
    account (here: `admin`), gets aps2mqtt's topics and JSON."""
    _, rec = watcher
    env = {"APS_ECU_IP": "127.0.0.1", "APS_ECU_PORT": str(ecu_sim.port), "APS_ECU_STOP_AT_NIGHT": "False",
           "APS_ECU_POLL_INTERVAL_S": "0.3", "APS_ECU_ANSWER_DELAY_S": "0.02",
           "APS_ECU_PAUSE_BETWEEN_COMMANDS_S": "0.02", "APS_ECU_MAINTENANCE_START": "00:00",
           "APS_ECU_MAINTENANCE_END": "00:00", "MQTT_BROKER_HOST": "127.0.0.1", "MQTT_BROKER_PORT": str(broker.port),
           "MQTT_BROKER_USER": "admin", "MQTT_BROKER_PASSWD": broker.files.password("admin"),
           "MQTT_TOPIC_PREFIX": "home", "WATTBUS_CONFIG": str(tmp_path / "absent.toml")}
    (tmp_path / "absent.toml").write_text("# empty: everything comes from aps2mqtt's variables\n")
    proc = start_service("wattbus_ecu_bridge", env=env)
    base = f"home/aps/{ecu_sim.ecu_id}"
    online = [(inv.uid, powers) for inv, on, powers in ecu_sim.snapshot()[1] if on]
    await until(lambda: f"{base}/power" in rec.last and all(f"{base}/{u}/{len(p)}/power" in rec.last
                                                          for u, p in online), timeout=30, what="aps2mqtt topics")
    assert rec.last["home/aps/status"] == b"online"
    assert float(rec.last[f"{base}/power"]) == ecu_sim.power_w()
    doc = json.loads(rec.last[base])
    assert doc["ecu_id"] == ecu_sim.ecu_id and doc["qty_of_inverters"] == len(ecu_sim.fleet)
    uid, powers = online[0]
    assert float(rec.last[f"{base}/{uid}/power"]) == sum(powers)
    assert rec.last[f"{base}/{uid}/online"] == b"True"
    assert json.loads(rec.last[f"{base}/{uid}"])["panels"]["1"]["power"] == powers[0]
    offline = next(inv.uid for inv, on, _ in ecu_sim.snapshot()[1] if not on)
    assert rec.last[f"{base}/{offline}/online"] == b"False" and f"{base}/{offline}/power" not in rec.last
    assert proc.stop() == 0
    await until(lambda: rec.last.get("home/aps/status") == b"offline", what="aps/status offline on shutdown")


async def test_first_poll_waits_for_an_ecu_starting_later_and_a_busy_ecu_is_asked_again(
        broker: Mosquitto, watcher: tuple[Bus, Recorder], start_service: Any, tmp_path: Path) -> None:
    """`make run` starts the bridge and the simulator together: the bridge used to poll before the
    simulator listened, fail, and wait a minute. Then an ECU busy with another client (the discovery
    sweep's probe) turns a connection away: the bridge asks again instead of failing the poll."""
    _, rec = watcher
    sim = EcuSimulator(model="ECU-R", fleet=fleet_from_text("01:1"), refresh_s=0.3, pv_fraction=0.5)
    port = free_port()
    cfg = tmp_path / "wattbus.toml"
    cfg.write_text(f'[ecu-bridge]\nstatus_interval_s = 1\n[[ecu-bridge.ecus]]\nhost = "127.0.0.1"\nport = {port}\n'
                   'poll_interval_s = 0.3\nrefresh_margin_s = 0.05\nanswer_delay_s = 0.3\n'
                   'pause_between_commands_s = 0.02\n'
                   'maintenance_start = "00:00"\nmaintenance_end = "00:00"\n')
    proc = start_service("wattbus_ecu_bridge", "--config", str(cfg), env=broker.env("ecu-bridge"))
    await until(lambda: "ECU not accepting connections yet" in proc.output(), timeout=30, what="a refused connection")
    await sim.start(port)
    try:
        await until(lambda: counters(rec).get("polls_ok", 0) >= 1, timeout=30, what="the first poll")
        assert "ECU poll failed" not in proc.output()
        sim.faults.add("busy")  # another client holds the ECU when the bridge connects next
        await until(lambda: sim.stats.refused == 1, timeout=30, what="the bridge turned away")
        ok = counters(rec).get("polls_ok", 0)
        await until(lambda: counters(rec).get("polls_ok", 0) > ok + 1, timeout=30, what="polls after the busy ECU")
        # Whichever of the three queries was turned away (a lost signal query only costs the signal).
        assert not {"polls_failed", "signal_failed"} & set(counters(rec))
        assert "poll failed" not in proc.output() and "query failed" not in proc.output()
        assert counters(rec)["connect_waits"] >= 1
    finally:
        await sim.stop()


async def test_restart_reaches_an_ecu_whose_data_port_is_stuck(broker: Mosquitto, watcher: tuple[Bus, Recorder],
                                                               start_service: Any, tmp_path: Path) -> None:
    """The ECU's data port hangs, so its devices are offline: a `restart` still goes to its web UI."""
    bus, rec = watcher
    ecu_c = EcuSimulator(model="ECU-C", fleet=fleet_from_text("01:1", prefix="8020"), refresh_s=0.3, pv_fraction=0.5)
    await ecu_c.start(0, http_port=free_port())
    gid = f"apsystems-ecu-{ecu_c.ecu_id}"
    try:
        start_service("wattbus_ecu_bridge", "--config", str(bridge_config(tmp_path, [ecu_c], timeout_s=0.5,
                                                                          restart_after_failures=1)),
                      env=broker.env("ecu-bridge"))
        await until(lambda: rec.last.get(f"{DEV}/{gid}/availability") == b"online", timeout=30, what="ECU online")
        ecu_c.faults.add("timeout")
        await until(lambda: rec.last.get(f"{DEV}/{gid}/availability") == b"offline", timeout=30, what="ECU offline")
        result = await bus.request(topics.device_command("ecu-bridge", gid), m.Restart(request_id="stuck"))
        assert (result.status, result.request_id, ecu_c.stats.restarts) == ("ok", "stuck", 1), result
        await until(lambda: rec.last.get(f"{DEV}/{gid}/availability") == b"online", timeout=30, what="ECU back")
    finally:
        await ecu_c.stop()
