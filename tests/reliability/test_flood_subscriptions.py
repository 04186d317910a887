"""Malformed floods on every topic every service subscribes to, while good messages flow.

The topics come from the broker's own log of each service's SUBSCRIBE packets (flood_rig), so a
subscription added to a service tomorrow is flooded too. Each topic gets undecodable JSON, valid
JSON of the wrong kind, invalid UTF-8 and half-megabyte payloads. Expected: every service stays
up, received them all (messages_in), counted rejections, still answers a good request (its
reload_config) and keeps its heartbeat; RSS stays bounded.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.client_id import bound_client_id
from wattbus.config import BusConfig
from wattbus.embedded import broker_limits

from tests.reliability.flood_rig import CONFIGS, concrete, matches, module, subscribing_broker, subscriptions
from tests.reliability.goe_rig import rss_kib
from tests.support.bus_helpers import until
from tests.support.servers import ROOT, TEST_ADMIN

# The biggest payload the broker lets through (mosquitto.conf max_packet_size, less room for the
# topic and properties): a larger packet never reaches a service, its sender is disconnected.
MAX_PACKET = int(next(line for line in broker_limits(ROOT) if line.startswith("max_packet_size")).split()[1])
HUGE = b'{"kind":"meter","device_id":"' + b"a" * (MAX_PACKET - 1024) + b'"}'
MALFORMED: list[bytes] = [
    b"{not json", b'{"kind":"warp","command":"warp_speed"}', b'{"device_id":5,"timestamp":"yesterday","on":"yes"}',
    b'{"command":"rescan","request_id":"Z\xe4hler"}', b"\xff\xfe\x00", b"[]", b"",
]
HUGE_PER_TOPIC = 2  # a fixed few: at scale, 1 MiB times the flood would measure the broker, not us
BATCH_PER_CLIENT = 600  # below mosquitto's max_queued_messages (1000) per subscriber
BATCH_TOTAL = 5000  # below the publishing Bus's own queue (max_queued_messages 10000)
REJECTION_WORDS = ("rejected", "invalid", "refused", "malformed", "dead", "dropped", "bad")


def services() -> dict[str, Callable[[Path], str]]:
    """Every service, or those named in WATTBUS_FLOOD_ONLY (comma separated) when looking at one."""
    only = [name for name in os.environ.get("WATTBUS_FLOOD_ONLY", "").split(",") if name]
    return {name: config for name, config in CONFIGS.items() if not only or name in only}


def per_topic() -> int:
    return int(os.environ.get("WATTBUS_FLOOD_PER_TOPIC", "24"))


def rejections(status: m.ServiceStatus | None) -> dict[str, int]:
    counters = status.counters if status else {}
    return {k: v for k, v in counters.items() if any(w in k for w in REJECTION_WORDS) and k != "handler_errors"}


def _counter_at_least(statuses: dict[str, m.ServiceStatus], service: str, name: str, wanted: int) -> bool:
    return bool(statuses[service].counters.get(name, 0) >= wanted)


def _uptime_above(statuses: dict[str, m.ServiceStatus], service: str, uptime: float) -> bool:
    return bool(statuses[service].uptime_s > uptime)


def test_every_service_has_a_flood_config() -> None:
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "supervisor.conf").exists()}
    assert services <= set(CONFIGS), f"no flood config for {sorted(services - set(CONFIGS))}"


async def test_malformed_flood_on_every_subscribed_topic(tmp_path: Path, start_service: Any,
                                                         record_property: Callable[[str, object], None]) -> None:
    broker = subscribing_broker(tmp_path / "broker")
    broker.start()
    admin = Bus(BusConfig(port=broker.port, username=TEST_ADMIN, password=broker.files.password(TEST_ADMIN),
                          reconnect_max_s=2), TEST_ADMIN, "flood")
    statuses: dict[str, m.ServiceStatus] = {}

    def on_status(msg: Message[bytes]) -> None:
        status: m.ServiceStatus = codec.decode(msg.payload, m.ServiceStatus)
        statuses[status.service] = status

    admin.subscribe(f"{topics.PREFIX}/service/+/main/status", bytes, on_status)
    answers: dict[str, m.CommandResult] = {}
    # Answers on each service's own result topic (request_id), as `wattbus config reload` reads
    # them: a writer-only user such as influx-writer may not publish into another's reply inbox.
    admin.subscribe(f"{topics.PREFIX}/service/+/main/result", m.CommandResult,
                    lambda msg: answers.__setitem__(msg.payload.request_id or "", msg.payload))
    await admin.start()
    procs = {}
    try:
        chosen = services()
        for service, config in chosen.items():
            work = tmp_path / service
            work.mkdir()
            path = work / "wattbus.toml"
            path.write_text(config(work).replace(f"[{service}]\n", f"[{service}]\nstatus_interval_s = 1\n", 1))
            env = {"WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port),
                   "WATTBUS_BUS_USERNAME": service, "WATTBUS_BUS_PASSWORD": broker.files.password(service)}
            procs[service] = start_service(module(service), "--config", str(path), env=env)
        await until(lambda: set(statuses) >= set(chosen), 90, f"a heartbeat from each of {sorted(chosen)}")
        ids = {s: bound_client_id(f"{s}-main", s, broker.files.password(s)) for s in chosen}  # bus.py's scheme
        # The runner subscribes service/<name>/main/command first and the service's own topics
        # right after; the status heartbeat can overtake the log lines, so wait for them.
        await until(lambda: all(topics.service_command(s, "main") in subscriptions(broker, ids[s])
                                for s in chosen), 30, "every service's subscriptions in the broker log")
        await asyncio.sleep(1)  # settling, not a condition: subscriptions made just after the first ones
        subs = {s: subscriptions(broker, ids[s]) for s in chosen}
        helper_subs = {s: subscriptions(broker, ids[s], helpers=True) for s in chosen}
        rss_before = {s: rss_kib(p.proc.pid) for s, p in procs.items()}
        before = {s: (statuses[s].counters.get("messages_in", 0), rejections(statuses[s])) for s in chosen}
        flooded = sorted({concrete(f) for filters in (*subs.values(), *helper_subs.values()) for f in filters})
        count = per_topic()
        per_message = count + HUGE_PER_TOPIC
        expected = {s: before[s][0] for s in chosen}
        pending = {s: 0 for s in chosen}
        sent = 0

        async def catch_up() -> None:
            """Wait until each service's bus received all it was sent so far (at least one copy per
            message): the broker keeps at most 1000 queued messages per client and drops the rest, so
            a large flood goes out in batches a subscriber can hold."""
            for service in chosen:
                await until(functools.partial(_counter_at_least, statuses, service, "messages_in", expected[service]),
                            120, f"{service} received the flood on {sorted(concrete(f) for f in subs[service])}")
                pending[service] = 0

        for topic in flooded:
            receivers = [s for s in chosen if any(matches(f, topic) for f in subs[s])]
            if sent + per_message > BATCH_TOTAL or any(pending[s] + per_message > BATCH_PER_CLIENT for s in receivers):
                await catch_up()
                sent = 0
            for index in range(count):
                admin.publish(topic, MALFORMED[index % len(MALFORMED)])
            for _ in range(HUGE_PER_TOPIC):
                admin.publish(topic, HUGE)
            sent += per_message
            for service in receivers:
                expected[service] += per_message
                pending[service] += per_message
        await catch_up()
        # A good request still answered by each, and its heartbeat goes on.
        for service in chosen:
            uptime = statuses[service].uptime_s
            request_id = f"good-{service}"
            admin.publish(topics.service_command(service, "main"), m.ReloadConfig(request_id=request_id))
            await until(lambda r=request_id: r in answers, 30, f"{service} answering a good request")  # type: ignore[misc]
            answer = answers[request_id]
            assert answer.status == "ok" and "unchanged" in answer.message, (service, answer)
            await until(functools.partial(_uptime_above, statuses, service, uptime), 30, f"{service} heartbeat")
        report = []
        for service, proc in procs.items():
            assert proc.proc.poll() is None, (service, proc.output()[-2000:])
            counted = {k: v - before[service][1].get(k, 0) for k, v in rejections(statuses[service]).items()}
            counted = {k: v for k, v in counted.items() if v}
            grown = (rss_kib(proc.proc.pid) - rss_before[service]) / 1024
            report.append(f"{service}: {len(subs[service]) + len(helper_subs[service])} topics, "
                          f"rss {grown:+.1f} MiB, {counted}")
            assert counted, f"{service} counted no rejection for {count} malformed messages per topic"
            assert grown < 64, f"{service} grew by {grown:.1f} MiB during the flood"
            assert statuses[service].counters.get("handler_errors", 0) == 0, (service, statuses[service].counters)
        record_property("flood_per_topic", count)
        record_property("topics", len(flooded))
        record_property("services", "; ".join(report))
    finally:
        await admin.stop()
        for proc in procs.values():
            proc.stop()
        broker.stop()
