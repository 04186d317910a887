"""`instance = "auto"` replicas and their retained forms: a replica clears its own forms as it stops
cleanly (its successor has another hostname), and the setup page drops the forms of instances offline
for over FORMS_OFFLINE_S while each bridge keeps its newest announcement. Real broker (project ACL),
a real generic-bridge process; the page's rule on the announcements as the codec decodes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_http_api.setup_store import FORMS_OFFLINE_S, Announced

from tests.http_api.test_setup import broker  # noqa: F401  (the module's broker fixture)
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto


async def test_an_auto_replica_clears_its_forms_as_it_stops(tmp_path: Path, start_service: Any,
                                                            broker: Mosquitto) -> None:  # noqa: F811
    started = datetime.now(UTC)
    seen: list[tuple[str, bytes]] = []
    admin = await started_bus(broker, TEST_ADMIN, instance="replica-forms")
    admin.subscribe(f"{topics.PREFIX}/service/generic-bridge/+/forms", bytes,
                    lambda msg: seen.append((msg.topic, bytes(msg.payload))))
    await subscriptions_active(admin)
    path = tmp_path / "wattbus.toml"
    path.write_text("[generic-bridge]\ninstance = \"auto\"\nstatus_interval_s = 5\n")
    try:
        bridge = start_service("wattbus_generic_bridge", "--config", str(path), env=broker.env("generic-bridge"))

        def announced() -> list[str]:
            return [t for t, p in seen if p and codec.decode(p, m.BridgeForms).timestamp >= started]
        await until(lambda: bool(announced()), 30, "the replica's forms")
        topic = announced()[0]
        assert topics.parse(topic).ident not in ("main", topics.ALL_INSTANCES)  # its hostname
        assert bridge.stop() == 0
        await until(lambda: (topic, b"") in seen, 10, "the forms cleared as the replica stopped")
    finally:
        await admin.stop()


def forms_message(instance: str, at: datetime) -> Message[bytes]:
    forms = m.BridgeForms(service="generic-bridge", instance=instance, protocols=["mqtt"], timestamp=at)
    return Message(topics.service_forms("generic-bridge", instance), codec.encode(forms), retained=True)


def status_message(instance: str, at: datetime) -> Message[bytes]:
    status = m.ServiceStatus(service="generic-bridge", instance=instance, version="1", started_at=at, uptime_s=1,
                             timestamp=at)
    return Message(topics.service_status("generic-bridge", instance), codec.encode(status), retained=True)


def test_forms_of_instances_long_offline_are_dropped() -> None:
    now = datetime.now(UTC)
    long_ago = now - timedelta(seconds=FORMS_OFFLINE_S + 60)
    online = {"generic-bridge": {"host-c"}}
    forms = Announced(Counters(), get_logger("test"), online)
    # host-a stopped long ago (killed: its forms stayed), host-b a minute ago, host-c runs now
    for instance, status_at in (("host-a", long_ago), ("host-b", now - timedelta(seconds=60)),
                                ("host-c", now)):
        forms.on_forms(forms_message(instance, long_ago))
        forms.on_status(status_message(instance, status_at))
    assert forms.bridges()["generic-bridge"].instance == "host-c"
    assert sorted(i for _, i in forms.by_instance) == ["host-b", "host-c"]
    assert forms.counters.get("forms_dropped_offline") == 1
    # every instance gone: the newest announcement stays, so the bridge stays known (adopt/ignore)
    online["generic-bridge"].clear()
    forms.on_status(status_message("host-b", long_ago))
    forms.on_status(status_message("host-c", long_ago))
    assert forms.owner("mqtt") is not None and len(forms.by_instance) == 1
    assert forms.page() == {"forms": [], "not_running": ["generic-bridge"]}
