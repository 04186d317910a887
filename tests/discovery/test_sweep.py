"""Sweeps of a simulated LAN: the discovered set equals the simulated set, impostors included."""

from __future__ import annotations

from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_discovery.config import Config, Scope
from wattbus_discovery.sweep import sweep

from tests.discovery.lan import Lan


def config_for(lan: Lan, **overrides: object) -> Config:
    values: dict[str, object] = {"networks": [lan.network], "modbus_ports": [lan.modbus_port],
                                 "aps_giv_ports": [lan.aps_port], "mdns": False, "connect_timeout_s": 2.0,
                                 "answer_timeout_s": 3.0, "ecu_answer_timeout_s": 2.0}
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


async def build_lan(lan: Lan) -> None:
    await lan.sunspec(1, "fronius", "sma")  # three SunSpec units behind one address
    await lan.sunspec(2, "float")
    await lan.sunspec(3, "sdm630")  # Modbus, but not SunSpec
    await lan.ecu(4, "ECU-R")
    await lan.ecu(5, "ECU-C")
    await lan.giv(6)
    await lan.tcp(7, lan.aps_port, None)  # silent service on 8899
    await lan.tcp(7, lan.modbus_port, None, answer=b"")  # echoes every request back on 502
    await lan.tcp(8, lan.aps_port, b"SSH-2.0-OpenSSH_9.2\r\n")  # talks first, in its own protocol
    await lan.tcp(8, lan.modbus_port, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await lan.tcp(9, lan.aps_port, None, answer=b"APS1100200001bogusEND\n")  # APS-looking but invalid


EXPECTED = {
    ("sunspec", 1, 1, "34119102"), ("sunspec", 1, 240, "18420047"), ("sunspec", 1, 126, "3004512345"),
    ("sunspec", 2, 2, "FL-000771"), ("aps-ecu", 4, None, "216200123456"), ("aps-ecu", 5, None, "215000123456"),
    ("givenergy", 6, None, "SA2345G678"),
}


async def test_sweep_finds_exactly_the_simulated_devices(lan: Lan) -> None:
    await build_lan(lan)
    counters = Counters()
    config = config_for(lan)
    result = await sweep(config, Scope.from_config(config), counters, get_logger("test"))
    got = {(f.protocol, int(f.address.rsplit(".", 1)[1]), f.unit_id, f.serial) for f in result.found}
    assert got == EXPECTED
    assert result.candidates == 14 * 2
    by_serial = {f.serial: f for f in result.found}
    assert by_serial["3004512345"].manufacturer == "SMA" and by_serial["3004512345"].kind == "inverter"
    assert by_serial["18420047"].kind == "meter" and by_serial["18420047"].device_id == "fronius-18420047"
    # the model the ecu-bridge publishes for the same ECU: by id prefix (2162 an ECU-R with SunSpec,
    # 215 an ECU-C, whose firmware string does not say so)
    assert by_serial["216200123456"].model == "ECU-R (SunSpec)" and by_serial["216200123456"].firmware == "ECU_R_1.2.22"
    assert by_serial["215000123456"].model == "ECU-C"
    assert by_serial["216200123456"].device_id == "apsystems-ecu-216200123456"
    assert by_serial["SA2345G678"].device_id == "givenergy-sa2345g678"
    assert by_serial["SA2345G678"].extra["adapter_serial"] == "WF2345G678"
    # the impostors were seen and turned away for a reason, not by luck
    assert counters.get("answers_rejected") >= 2  # echo and HTTP on the Modbus port
    assert counters.get("ecu_answers_rejected") == 1
    assert counters.get("port8899_unknown") >= 2  # silent and SSH


async def test_probes_only_read(lan: Lan) -> None:
    """The ECU sees one info query per sweep; the dongle's registers are unchanged."""
    ecu = await lan.ecu(4)
    _task, dongle = await lan.giv(6)
    before = dict(dongle.inverter.hr)
    config = config_for(lan)
    for _ in range(2):
        await sweep(config, Scope.from_config(config), Counters(), get_logger("test"))
    assert ecu.stats.queries == {"0001": 2}
    assert ecu.stats.bad_queries == 0
    assert dongle.inverter.hr == before


async def test_deny_list_is_never_contacted(lan: Lan) -> None:
    ecu = await lan.ecu(4)
    await lan.giv(10)
    config = config_for(lan, deny=[lan.ip(4), f"{lan.block}.8/29"])
    result = await sweep(config, Scope.from_config(config), Counters(), get_logger("test"))
    assert result.found == []
    assert ecu.stats.connections == 0
    assert result.candidates == (14 - 1 - 7) * 2


async def test_bounded_concurrency_and_rate_still_finds_everything(lan: Lan) -> None:
    await lan.sunspec(3, "sma")
    await lan.ecu(12)
    config = config_for(lan, concurrency=2, rate_per_s=50.0)
    result = await sweep(config, Scope.from_config(config), Counters(), get_logger("test"))
    assert {(f.protocol, f.serial) for f in result.found} == {("sunspec", "3004512345"), ("aps-ecu", "216200123456")}


async def test_a_slow_ecu_is_still_an_ecu(lan: Lan) -> None:
    """An ECU that answers after the ECU wait (the dongle read already sent) is recognised by its
    late answer, not taken for a silent port."""
    ecu = await lan.ecu(5, latency_s=1.0)
    config = config_for(lan, ecu_answer_timeout_s=0.2, answer_timeout_s=5.0)
    result = await sweep(config, Scope.from_config(config), Counters(), get_logger("test"))
    assert [(f.protocol, f.serial) for f in result.found] == [("aps-ecu", "216200123456")]
    assert ecu.stats.queries == {"0001": 1}
