"""Faults on the embedded stack: SIGKILL a service under supervisord, SIGKILL the broker.

Longer than `make test` allows (the whole stack starts); run by reliability/run.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
from wattbus import topics

from reliability.scenarios.stack import Stack, wait_for

VICTIM = "goe-shelly-bridge"
BRIDGES = ("goe-shelly-bridge", "sunspec-bridge", "ecu-bridge", "giv-bridge", "sml-reader")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = Stack(tmp_path_factory.mktemp("embedded") / "run")
    try:
        wait_for(lambda: all(run.availability(s) == "online" for s in BRIDGES), "bridges online", 120)
        yield run
    finally:
        run.stop()


def test_service_sigkill_restarted_with_state(stack: Stack, record_property: Callable[[str, object], None]) -> None:
    def metas() -> list[str]:
        return sorted({t for t, _ in stack.observer.received
                       if t.startswith(f"wattbus/v1/device/{VICTIM}/") and t.endswith("/meta")})
    wait_for(lambda: len(metas()) >= 3, "the bridge announced its demo devices", 60)
    device_topics = metas()
    before = stack.status(VICTIM)
    pid = stack.pid(VICTIM)
    assert pid > 0
    mark = len(stack.observer.received)
    os.kill(pid, signal.SIGKILL)
    # The broker publishes the last will, supervisord starts a new process, which announces again.
    took = wait_for(lambda: stack.availability(VICTIM) == "offline", "last will (offline)", 30)
    record_property("last_will_s", round(took, 2))
    took = wait_for(lambda: stack.pid(VICTIM) not in (0, pid), "supervisord restart", 60)
    took += wait_for(lambda: stack.availability(VICTIM) == "online", "online again", 60)
    record_property("back_online_s", round(took, 2))
    def reannounced() -> bool:
        seen = {t for t, _ in stack.observer.received[mark:]}
        return all(d in seen for d in device_topics)
    again = wait_for(reannounced, "device metas re-announced", 60)
    record_property("devices_reannounced", len(device_topics))
    record_property("reannounce_s", round(again, 2))
    after = stack.status(VICTIM)
    assert before is not None and after is not None and after.started_at > before.started_at
    readings = wait_for(lambda: any(t.endswith("/reading") for t, _ in stack.messages_since(
        mark, lambda t: t.startswith(f"wattbus/v1/device/{VICTIM}/"))), "readings after restart", 60)
    record_property("first_reading_after_s", round(readings, 2))


def test_broker_sigkill_bridges_reconnect(stack: Stack, record_property: Callable[[str, object], None]) -> None:
    pid = stack.pid("mosquitto")
    assert pid > 0
    def reconnects(service: str) -> int:
        status = stack.status(service)
        return status.counters.get("reconnects", 0) if status else 0
    before = {s: reconnects(s) for s in BRIDGES}
    mark = len(stack.observer.received)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: stack.pid("mosquitto") not in (0, pid), "supervisord restarts mosquitto", 60)
    # The observer reconnects by itself (paho) but must subscribe again on a fresh session.
    wait_for(lambda: stack.observer.client.is_connected(), "observer reconnected", 60)
    stack.observer.subscribe("wattbus/v1/#")

    def reconnected(service: str) -> bool:
        status = stack.status(service)
        return bool(status and status.counters.get("reconnects", 0) > before[service]
                    and stack.messages_since(mark, lambda t: t == topics.service_status(service, "main")))

    took = wait_for(lambda: all(reconnected(s) for s in BRIDGES), "every bridge reconnected", 90)
    record_property("all_bridges_reconnected_s", round(took, 2))
    wait_for(lambda: all(any(t.startswith(f"wattbus/v1/device/{s}/") and t.endswith("/reading")
                             for t, _ in stack.messages_since(mark, lambda _t: True)) for s in BRIDGES),
             "readings from every bridge after the restart", 90)
    assert all(stack.availability(s) == "online" for s in BRIDGES)
