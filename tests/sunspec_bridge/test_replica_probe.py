"""A `probe_device` sent to every replica (service/<name>/all/command, the setup page with
`instance = "auto"`) is answered by exactly one live replica: the one the probed entry hashes to
(issue 26). Two real replicas, several entries: one answer each; with one replica killed, the
survivor answers once its peer's lease has run out."""

from __future__ import annotations

import asyncio
import signal
import time
import tomllib
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.sunspec_bridge.test_scaling import LEASE_S, SOURCE, replica, setup, split_among
from tests.support.bus_helpers import subscriptions_active, until

INBOX = topics.reply("test-admin", "t", "probes")


class Answers:
    def __init__(self, bus: Bus) -> None:
        self.by_request: dict[bytes, list[m.CommandResult]] = defaultdict(list)
        bus.subscribe(INBOX, m.CommandResult, self._on)

    def _on(self, msg: Message[m.CommandResult]) -> None:
        self.by_request[msg.correlation_data or b""].append(msg.payload)


def send(bus: Bus, entry: dict[str, Any]) -> bytes:
    correlation = uuid.uuid4().bytes
    bus.publish(topics.service_broadcast(SOURCE), m.ProbeDevice(entry=entry), response_topic=INBOX,
                correlation_data=correlation)
    return correlation


async def probe_all(bus: Bus, answers: Answers, entries: list[dict[str, Any]]) -> list[list[m.CommandResult]]:
    sent = [send(bus, entry) for entry in entries]
    await until(lambda: all(answers.by_request[c] for c in sent), 30, "every probe answered")
    await asyncio.sleep(1.5)  # a second answer, if any replica sent one, has arrived by now
    return [answers.by_request[c] for c in sent]


async def test_one_replica_answers_each_probe(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                             tmp_path: Path) -> None:
    path, bus, watch = await setup(broker, start_sim, tmp_path)
    answers = Answers(bus)
    await subscriptions_active(bus)
    port = tomllib.loads(path.read_text())[SOURCE]["devices"][0]["port"]  # the SunSpec simulator's
    procs = {name: replica(start_service, broker, path, name) for name in ("probe-a", "probe-b")}
    try:
        await split_among(watch, set(procs), "2 replicas share the devices")
        # Six entries: the sim's two inverters, asked by several unit id lists, and a port nobody serves.
        entries = [{"host": "127.0.0.1", "port": port, "unit_ids": ids} for ids in ([1], [2], [1, 2], [2, 1])]
        entries += [{"host": "127.0.0.1", "port": 1, "unit_ids": [n]} for n in (1, 2)]
        results = await probe_all(bus, answers, entries)
        assert [len(r) for r in results] == [1] * len(entries), results  # one answer per probe
        assert [r[0].status for r in results] == ["ok"] * 4 + ["failed"] * 2, results
        answerers = {r[0].target for r in results}
        print(f"6 probes to 2 replicas: answered by {sorted(answerers)}, one answer each")
        again = await probe_all(bus, answers, entries[:1])  # the same entry: the same replica
        assert [a.target for a in again[0]] == [results[0][0].target]
        await asyncio.sleep(1.2)  # both statuses carry the probe counters
        asked = {name: watch.counter(name, "probes") + watch.counter(name, "probes_left_to_peer") for name in procs}
        assert asked == {name: len(entries) + 1 for name in procs}, asked  # every replica heard every probe

        victim = results[0][0].target.split("/")[1]
        procs.pop(victim).proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.sleep(LEASE_S + 0.5)  # its lease has run out on the survivor
        after = await probe_all(bus, answers, entries[:1])
        assert [(a.status, a.target) for a in after[0]] == [("ok", f"{SOURCE}/{next(iter(procs))}")]
        print(f"after SIGKILL of {victim}: the survivor answered {time.monotonic() - killed:.1f} s later")
    finally:
        for name, proc in procs.items():
            assert proc.stop() == 0, f"{name}: {proc.output()[-3000:]}"
        await bus.stop()
