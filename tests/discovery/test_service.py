"""The discovery service end to end: a real broker with the real ACL, simulators on several
loopback addresses, mDNS announcements on the loopback interface, the service as a subprocess."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message

from tests.discovery.lan import Lan
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


class Announcements:
    def __init__(self) -> None:
        self.latest: dict[str, m.DeviceAnnouncement] = {}

    def __call__(self, msg: Message[bytes]) -> None:
        if msg.topic != topics.DISCOVERY_COMMAND and msg.payload and not msg.topic.endswith("/junk"):
            ann: m.DeviceAnnouncement = codec.decode(bytes(msg.payload), m.DeviceAnnouncement)
            self.latest[ann.device_id] = ann

    def present(self) -> set[str]:
        return {d for d, a in self.latest.items() if a.present}


def write_config(tmp: Path, lan: Lan) -> Path:
    path = tmp / "wattbus.toml"
    path.write_text(f"""
[discovery]
networks = ["{lan.network}"]
modbus_ports = [{lan.modbus_port}]
aps_giv_ports = [{lan.aps_port}]
mdns_interfaces = ["127.0.0.1"]
connect_timeout_s = 2.0
answer_timeout_s = 3.0
ecu_answer_timeout_s = 2.0
sweep_interval_s = 600
gone_after_misses = 2
status_interval_s = 5
""")
    return path


async def not_a_goe(_request: web.Request) -> web.Response:
    return web.Response(text="<html>router admin</html>", content_type="text/html")


async def test_service_announces_tracks_and_rescans(lan: Lan, broker: Mosquitto, tmp_path: Path,
                                                    start_service: Callable[..., Any]) -> None:
    await lan.sunspec(1, "sma")
    ecu = await lan.ecu(4, "ECU-B", ecu_id="216300654321")
    giv_task, _dongle = await lan.giv(6)
    goe = await lan.announce("_http._tcp.local.", "go-echarger_777001", 7, await lan.goe(7, "777001"),
                             {"devicetype": "go-eCharger"})
    port, _ = await lan.shelly(8, "SHSW-PM", "A8032AB10001")
    await lan.announce("_http._tcp.local.", "shelly1pm-a8032ab10001", 8, port)
    port, _ = await lan.shelly(9, "Pro3EM", "08F9E0E50002")
    await lan.announce("_shelly._tcp.local.", "shellypro3em-08f9e0e50002", 9, port, {"gen": "2"})
    app = web.Application()
    app.router.add_get("/{tail:.*}", not_a_goe)
    await lan.announce("_http._tcp.local.", "go-echarger_999999", 10, await lan.http(10, app))  # an impostor
    await lan.announce("_http._tcp.local.", "HP-LaserJet-4250", 11, 80)  # another vendor's _http._tcp
    await lan.announce("_http._tcp.local.", "go-echarger_555555", "127.0.0.1", 9)  # outside the networks

    admin = await started_bus(broker, "test-admin", "disc-test")
    seen = Announcements()
    admin.subscribe(topics.ALL_DISCOVERY, bytes, seen)
    stale = m.DeviceAnnouncement(device_id="sunspec-old-run", protocol="sunspec", address=lan.ip(13), port=502,
                                 unit_id=1, serial="old-run", first_seen=datetime(2026, 1, 1, tzinfo=UTC))
    admin.publish(topics.discovery(stale.device_id), stale, retain=True)  # left by an earlier run
    admin.publish(topics.discovery("junk"), b'{"device_id": 5}', retain=True)  # not an announcement
    polled = topics.device_availability("ecu-bridge", "apsystems-ecu-216300654321")
    admin.publish(polled, m.ONLINE, retain=True)  # the ECU bridge is polling it: probes would cut it off
    service = start_service("wattbus_discovery", "--config", str(write_config(tmp_path, lan)),
                            env=broker.env("discovery"))
    expected = {"sma-3004512345", "apsystems-ecu-216300654321", "givenergy-sa2345g678", "goe-777001",
                "shelly-a8032ab10001", "shelly-08f9e0e50002"}
    try:
        await until(lambda: expected <= seen.present(), 45, f"announcements {expected} (log: {service.log})")
        assert seen.present() - expected == {"sunspec-old-run"}  # no false positive, old one not yet judged
        assert "goe-555555" not in seen.latest
        sma = seen.latest["sma-3004512345"]
        assert (sma.protocol, sma.address, sma.port, sma.unit_id, sma.kind, sma.via) == (
            "sunspec", lan.ip(1), lan.modbus_port, 126, "inverter", "sweep")
        goe_ann = seen.latest["goe-777001"]
        assert (goe_ann.protocol, goe_ann.address, goe_ann.kind, goe_ann.via) == ("goe", lan.ip(7), "charger", "mdns")
        # named as the goe-shelly-bridge names them (wattbus.goe, wattbus.shelly), not by the SKU
        assert (goe_ann.manufacturer, goe_ann.model) == ("go-e", "go-eCharger 22 kW")  # was "go-eCharger"
        pro3em, plug = seen.latest["shelly-08f9e0e50002"], seen.latest["shelly-a8032ab10001"]
        assert (pro3em.manufacturer, pro3em.model, pro3em.kind) == ("Allterco (Shelly)", "Shelly Pro 3EM", "meter")
        assert (plug.model, plug.kind, plug.firmware) == ("Shelly 1PM", "relay", "20230913-112003/v1.14.0-gcb84623")
        assert pro3em.firmware == "1.4.4"  # Gen2+: `ver`, as the bridge publishes it, not the build id `fw_id`
        assert seen.latest["apsystems-ecu-216300654321"].kind == "gateway"

        # rescan on demand, answered after the sweep; other commands are refused, garbage counted
        admin.publish(topics.DISCOVERY_COMMAND, b'{"command": "rescan", "request_id": 7}')
        first_seen = seen.latest["givenergy-sa2345g678"].first_seen
        result = await admin.request(topics.DISCOVERY_COMMAND, m.Rescan(request_id="r1"), timeout=60)
        assert result.status == "ok" and result.request_id == "r1"
        assert result.applied["found"] == 2  # SMA + dongle; the polled ECU is not probed
        refused = await admin.request(topics.DISCOVERY_COMMAND, m.SetRelay(on=True), timeout=20)
        assert refused.status == "refused" and "rescan" in refused.message
        # the device left by an earlier run was missing in two sweeps: gone
        await until(lambda: not seen.latest["sunspec-old-run"].present, 20, "stale device marked gone")
        assert seen.latest["sunspec-old-run"].first_seen == stale.first_seen

        # an mDNS goodbye marks the charger gone at once
        await lan.unannounce(goe)
        await until(lambda: not seen.latest["goe-777001"].present, 30, "go-e gone after its mDNS goodbye")

        # DHCP: the dongle comes back with a new address: same device, new address
        giv_task.cancel()
        await lan.giv(12)
        result = await admin.request(topics.DISCOVERY_COMMAND, m.Rescan(), timeout=60)
        assert result.status == "ok"
        await until(lambda: seen.latest["givenergy-sa2345g678"].address == lan.ip(12), 20, "moved dongle")
        moved = seen.latest["givenergy-sa2345g678"]
        assert moved.present and moved.first_seen == first_seen
        assert sum(1 for a in seen.latest.values() if a.serial == "SA2345G678") == 1
        await check_status(admin, service)
        assert ecu.stats.connections == 1  # found once; later sweeps leave the single-client ECU alone
        assert seen.latest["apsystems-ecu-216300654321"].present
    finally:
        # leave the session broker clean: `final` messages are waited for before the disconnect
        await admin.stop(final=[(polled, b""), *((topics.discovery(d), b"") for d in [*seen.latest, "junk"])])


async def check_status(admin: Bus, service: Any) -> None:
    status: dict[str, m.ServiceStatus] = {}
    admin.subscribe(topics.service_status("discovery", "main"), m.ServiceStatus,
                    lambda msg: status.__setitem__("s", msg.payload))
    await until(lambda: "s" in status and status["s"].counters.get("sweeps", 0) >= 3, 30, "status with 3 sweeps")
    counters = status["s"].counters
    assert counters["devices_moved"] == 1 and counters["mdns_not_confirmed"] >= 1
    assert counters["mdns_ignored"] >= 1 and counters["commands_refused"] == 1
    assert counters["rejected"] == 1 and counters["rejected_announcements"] == 1
    assert counters["skipped_polled"] >= 2 and counters["mdns_outside_networks"] >= 1
