"""Commands are never executed twice: not when the broker redelivers, not when a client re-sends.

The real goe-shelly-bridge (subprocess) drives a go-e simulator that counts every honoured HTTP set
request. Duplicates come from what really produces them: a QoS 1 PUBLISH re-sent with DUP and the
same packet id after the broker was SIGKILLed and restarted (paho's behaviour for a lost PUBACK,
done on a bare socket so the timing is exact), two deliveries while the first still executes, and a
commanding client SIGKILLed mid-stream that replays its outbox after the restart. A repeat that
arrives after a newer command would undo it (10 A after 12 A), so each must be answered with the
first result and never reach the device.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics

from tests.reliability.goe_rig import SOURCE, SimCharger1, bridge_config, chargers, watch
from tests.reliability.raw_mqtt import RawClient
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto


@pytest.fixture
async def charger() -> AsyncIterator[SimCharger1]:
    sims = await chargers(1, max_current_a=32)
    yield sims[0]
    await sims[0].stop()


def command(request_id: str, amps: int) -> bytes:
    return json.dumps({"command": "set_charge_current", "current_a": amps, "request_id": request_id}).encode()


async def test_redelivered_command_after_broker_kill_is_answered_not_executed(
        private_broker: Mosquitto, charger: SimCharger1, start_service: Any, tmp_path: Path) -> None:
    admin = await started_bus(private_broker, "test-admin", "once")
    seen = watch(admin)
    results: list[m.CommandResult] = []
    dev = charger.device_id
    admin.subscribe(topics.device_result(SOURCE, dev), m.CommandResult, lambda msg: results.append(msg.payload))
    await subscriptions_active(admin)
    start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, [charger])),
                  env=private_broker.env(SOURCE))
    topic = topics.device_command(SOURCE, dev)
    sender = RawClient(private_broker.port, "integrations", private_broker.files.password("integrations"),
                       "integrations-raw-once")

    def answers(request_id: str) -> list[m.CommandResult]:
        return [r for r in results if r.request_id == request_id]

    try:
        await until(lambda: seen.availability.get(dev) == "online", 30, "go-e online")
        assert sender.connect() == 0
        before = charger.firmware.sets

        # Two deliveries of one request while the first still executes (read-back takes a while).
        sender.publish_qos1(topic, command("a", 10), packet_id=1)
        sender.publish_qos1(topic, command("a", 10), packet_id=1, dup=True)
        await until(lambda: len(answers("a")) == 2, 30, "both deliveries of 'a' answered")
        first, repeat = answers("a")
        assert first.status == "ok" and repeat == first, (first, repeat)  # same answer, same timestamp
        assert charger.firmware.sets == before + 1 and charger.firmware.amp == 10

        sender.publish_qos1(topic, command("b", 12), packet_id=2)
        await until(lambda: len(answers("b")) == 1, 30, "'b' answered")
        assert answers("b")[0].status == "ok" and charger.firmware.amp == 12
        sets = charger.firmware.sets
        assert sets == before + 2

        # The broker dies before the sender saw the PUBACK of 'a'; after the restart the sender
        # re-sends it with DUP, the broker (a clean session) delivers it to the bridge once more.
        private_broker.stop(kill=True)
        sender.close()
        private_broker.start()
        await until(lambda: seen.counter("reconnects") >= 1, 40, "bridge reconnected (resubscribed)")
        assert sender.connect() == 0
        sender.publish_qos1(topic, command("a", 10), packet_id=1, dup=True)
        await until(lambda: len(answers("a")) >= 3, 30, "the redelivered 'a' answered")
        assert answers("a")[-1] == first, "a repeat is answered with the first result"
        await until(lambda: seen.counter("commands_duplicate") >= 2, 20, "duplicates counted in the status")
        # Executed again, the stale 10 A would have replaced the newer 12 A.
        assert charger.firmware.amp == 12 and charger.firmware.sets == sets

        # A new request id is a new command and runs.
        sender.publish_qos1(topic, command("c", 10), packet_id=3)
        await until(lambda: len(answers("c")) == 1, 30, "'c' answered")
        assert answers("c")[0].status == "ok" and charger.firmware.amp == 10 and charger.firmware.sets == sets + 1
    finally:
        sender.close()
        await admin.stop()


async def test_sender_sigkilled_mid_stream_replays_without_double_execution(
        broker: Mosquitto, charger: SimCharger1, start_service: Any, tmp_path: Path) -> None:
    admin = await started_bus(broker, "test-admin", "outbox-watch")
    seen = watch(admin)
    start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, [charger])),
                  env=broker.env(SOURCE))
    dev = charger.device_id
    await until(lambda: seen.availability.get(dev) == "online", 30, "go-e online")
    seeded = await admin.request(topics.device_command(SOURCE, dev), m.SetChargeCurrent(current_a=16), timeout=20)
    assert seeded.status == "ok" and charger.firmware.amp == 16
    before = charger.firmware.sets
    outbox, count = tmp_path / "outbox.txt", 10
    args = [str(broker.port), "integrations", broker.files.password("integrations"),
            topics.device_command(SOURCE, dev), str(outbox), str(count)]
    try:
        first = start_service("tests.reliability.outbox_sender", *args)
        await until(lambda: charger.firmware.sets >= before + 4, 60, "several commands executed")
        first.proc.send_signal(signal.SIGKILL)  # mid-stream: one command may be in flight
        first.proc.wait(10)
        sent_before_kill = len(outbox.read_text().split())
        assert 4 <= sent_before_kill < count
        second = start_service("tests.reliability.outbox_sender", *args)
        await until(lambda: second.proc.poll() is not None, 120, "the restarted sender finished")
        assert second.proc.returncode == 0, second.output()[-2000:]
        # Every request id reached the device exactly once: r0..r9 alternate 10/12 A, each a change;
        # the replayed r0..r(k-1) (stale values among them) were answered from the bridge's memory.
        assert charger.firmware.sets == before + count, (charger.firmware.sets, before, second.output())
        assert charger.firmware.amp == 12  # r9's value, not a replayed r0's
        await until(lambda: seen.counter("commands_duplicate") >= sent_before_kill, 20,
                    "replayed commands counted as duplicates")
        replayed = second.output().split("\n")[:sent_before_kill]
        assert all(line.endswith(" ok") for line in replayed), replayed
    finally:
        await admin.stop()


