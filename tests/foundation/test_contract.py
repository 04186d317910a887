"""The contract: every Struct round-trips, constraints hold, topics build and parse, docs are current."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from wattbus import codec, schema, topics
from wattbus import messages as m

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
PHASES = [m.PhaseValues(phase=n, voltage_v=230.0 + n, current_a=1.5 * n, power_w=300.0 * n) for n in (1, 2, 3)]

SAMPLES: list[msgspec.Struct] = [
    m.DeviceMeta(device_id="sma-3004512345", kind="inverter", source="sunspec-bridge", protocol="sunspec",
                 manufacturer="SMA", model="STP10.0-3AV-40", serial="3004512345", firmware="3.10.10.R",
                 address="tcp://192.0.2.10:502/126", capabilities=["set_power_limit"]),
    m.MeterReading(device_id="emh-1", timestamp=NOW, power_w=-1234.5, energy_import_wh=3985744.0,
                   energy_export_wh=18804181.0, energy_import_t1_wh=1.0, frequency_hz=49.98, phases=PHASES,
                   extra={"status_word": 0x1A2}),
    m.InverterReading(device_id="sma-1", timestamp=NOW, power_w=5300.0, dc_power_w=5450.0, energy_total_wh=1e7,
                      energy_today_wh=12_345.0, temperature_c=41.5, state="mppt", online=True, phases=PHASES),
    m.StringReading(device_id="sma-1-dc1", inverter_id="sma-1", index=1, timestamp=NOW, power_w=2700.0,
                    voltage_v=610.0, current_a=4.43),
    m.BatteryReading(device_id="giv-bat-1", timestamp=NOW, power_w=-2500.0, soc_pct=55.0, voltage_v=51.2,
                     cell_voltages_v=[3.2] * 16, temperature_c=21.0, capacity_wh=9500.0),
    m.ChargerReading(device_id="goe-123456", timestamp=NOW, state="charging", power_w=11_000.0, set_current_a=16.0,
                     phases_active=3, enabled=True, forced="neutral", phases=PHASES, session_energy_wh=4200.0),
    m.RelayReading(device_id="shelly1pm-abc", timestamp=NOW, on=True, power_w=1995.0, energy_wh=123.4),
    m.GatewayReading(device_id="ecu-216200001234", timestamp=NOW, power_w=1800.0, energy_today_wh=5600.0,
                     devices_total=8, devices_online=7),
    m.VehicleReading(device_id="teslamate-1", timestamp=NOW, soc_pct=62.0, range_m=301_000.0, capacity_wh=75_000.0,
                     limit_soc_pct=80.0, connected=True, charge_state="charging"),
    m.SetChargeCurrent(current_a=6), m.SetCharging(enabled=False), m.SetPhases(phases=1),
    m.SetRelay(on=True, channel=1), m.SetBatteryMode(mode="timed_export"), m.SetChargeTarget(soc_pct=80),
    m.SetBatteryReserve(soc_pct=4), m.SetChargeSlot(slot=2, start="0130", end="0430", target_soc_pct=100),
    m.SetDischargeSlot(start="1600", end="1900"), m.SetSchedule(which="charge", enabled=True),
    m.SetBatteryPowerLimit(direction="charge", power_w=2600), m.SetClock(time=NOW), m.Restart(request_id="r1"),
    m.Rescan(), m.SetPowerLimit(limit_pct=60.0), m.SetPowerLimit(), m.SetConnected(connected=False),
    m.SetChargeTargetEnabled(enabled=True), m.ReloadConfig(request_id="r-1"),
    m.ProbeDevice(request_id="p-1", entry={"host": "192.0.2.10", "port": 502, "unit_ids": [1]}),
    m.SetLoadpointMode(mode="minpv"), m.SetLoadpointLimits(min_current_a=6, max_current_a=32),
    m.SetLoadpointPlan(soc_pct=80, time="0700", min_soc_pct=20), m.SetLoadpointPlan(),
    m.CommandResult(status="refused", command="set_charge_current", target="goe-1", message="above max 16 A",
                    timestamp=NOW),
    m.DeviceAnnouncement(device_id="sma-1", protocol="sunspec", address="192.0.2.10", port=502, unit_id=126,
                         first_seen=NOW, last_seen=NOW),
    m.ServiceStatus(service="sml-reader", instance="main", version="0.1.0", started_at=NOW, uptime_s=12.5,
                    counters={"messages_out": 3}, devices=1, timestamp=NOW),
    m.LoadpointState(loadpoint_id="garage", mode="pv", charging=True, set_current_a=7.0, phases=1, timestamp=NOW),
    m.LoadpointState(loadpoint_id="garage", mode="pv", timestamp=NOW, vehicle_id="teslamate-1", vehicle_soc_pct=41.0,
                     plan_soc_pct=80, plan_time="0700", plan_active=True, plan_start=NOW,
                     plan_status="plan: charging from the grid from 05:10 to reach 80 % by 07:00"),
]

UNION_OF = {**{t: m.Reading for t in m.READING_TYPES}}


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_every_struct_round_trips(value: msgspec.Struct) -> None:
    data = codec.encode(value)
    assert codec.decode(data, type(value)) == value
    if isinstance(value, m.ReadingBase):
        assert codec.decode_reading(data) == value  # the tag picks the right type from the union
    if isinstance(value, m.CommandBase):
        assert codec.decode_command(data) == value


def test_every_reading_and_command_type_is_covered_by_samples() -> None:
    covered = {type(v) for v in SAMPLES}
    assert set(m.READING_TYPES) <= covered
    assert set(m.Command.__args__) <= covered  # type: ignore[attr-defined]


@pytest.mark.parametrize(("payload", "field"), [
    (b'{"command":"set_charge_current","current_a":5}', "$.current_a"),
    (b'{"command":"set_charge_current","current_a":33}', "$.current_a"),
    (b'{"command":"set_phases","phases":2}', "$.phases"),
    (b'{"command":"set_charge_target","soc_pct":101}', "$.soc_pct"),
    (b'{"command":"set_charge_slot","start":"2460","end":"0400"}', "$.start"),
    (b'{"command":"self_destruct"}', "$.command"),
    (b'{"command":"set_loadpoint_plan","soc_pct":101,"time":"0700"}', "$.soc_pct"),
    (b'{"command":"set_loadpoint_plan","soc_pct":80,"time":"7:00"}', "$.time"),
])
def test_commands_validate_their_own_ranges(payload: bytes, field: str) -> None:
    with pytest.raises(codec.PayloadError, match=field.replace("$", r"\$").replace(".", r"\.")):
        codec.decode_command(payload)


def test_malformed_reading_names_the_field() -> None:
    bad = b'{"kind":"meter","device_id":"m1","timestamp":"2026-11-25T12:00:00Z","power_w":"lots"}'
    with pytest.raises(codec.PayloadError, match=r"\$\.power_w"):
        codec.decode_reading(bad)
    with pytest.raises(codec.PayloadError, match="JSON"):
        codec.decode_reading(b"{not json")


def test_old_payloads_still_decode_when_fields_are_missing() -> None:
    minimal = b'{"kind":"battery","device_id":"b","timestamp":"2026-11-25T12:00:00Z"}'
    reading = codec.decode_reading(minimal)
    assert isinstance(reading, m.BatteryReading) and reading.soc_pct is None and reading.power_w is None


def test_topics_build_and_parse() -> None:
    topic = topics.device_reading("sml-reader", "emh-1")
    assert topic == "wattbus/v1/device/sml-reader/emh-1/reading"
    assert topics.parse(topic) == topics.ParsedTopic("device", "reading", "sml-reader", "emh-1")
    assert topics.parse(topics.service_status("influx-writer", "2")).source == "influx-writer"
    assert topics.parse(topics.discovery("sma-1")).ident == "sma-1"
    assert topics.matches(topics.shared("influx-writer", topics.ALL_READINGS), topic)
    assert not topics.matches(topics.ALL_META, topic)
    for bad in ("a/b", "wattbus/v1/nothing/here"):
        with pytest.raises(topics.TopicError):
            topics.parse(bad)
    with pytest.raises(topics.TopicError, match="device id"):
        topics.device_reading("sml-reader", "bad/id")
    assert topics.slug("SMA Solar", "SN: 3004 512") == "sma-solar-sn-3004-512"


def test_committed_docs_match_the_contract(repo_root: Path) -> None:
    assert (repo_root / "docs" / "topics.md").read_text() == schema.topics_markdown(), \
        "docs/topics.md is stale: run `make schema`"
    committed = msgspec.json.decode((repo_root / "docs" / "schema" / "wattbus-v1.json").read_bytes())
    assert committed == msgspec.json.decode(msgspec.json.encode(schema.json_schema())), \
        "docs/schema/wattbus-v1.json is stale: run `make schema`"
    site = msgspec.json.decode((repo_root / "docs" / "schema" / "config-site.json").read_bytes())
    assert site == msgspec.json.decode(msgspec.json.encode(schema.site_schema())), \
        "docs/schema/config-site.json is stale: run `make schema`"


def test_site_schema_describes_every_key() -> None:
    """The [site] schema carries each key's Meta description (a person or an editor reads it)."""
    defs = schema.site_schema()["$defs"]
    assert {"SiteConfig", "Loadpoint", "Relay"} <= set(defs)
    bare = [f"{name}.{key}" for name, definition in defs.items() for key, prop in definition["properties"].items()
            if not (prop.get("description") or any(o.get("description") for o in prop.get("anyOf", [])))]
    assert not bare, f"no Meta(description=...) in wattbus.site for {bare}"
    assert defs["Loadpoint"]["properties"]["max_current_a"]["maximum"] == 32


@pytest.mark.parametrize(("subscription", "topic", "expected"), [
    ("wattbus/v1/device/+/+/reading", "wattbus/v1/device/sml-reader/emh-1/reading", True),
    ("wattbus/v1/device/+/+/reading", "wattbus/v1/device/sml-reader/emh-1/meta", False),
    ("wattbus/v1/device/+/+/reading", "wattbus/v1/device/sml-reader/reading", False),
    ("$share/influx-writer/wattbus/v1/device/+/+/reading", "wattbus/v1/device/a/b/reading", True),
    ("wattbus/#", "wattbus/v1/x", True),
    ("wattbus/#", "wattbus", True),
    ("#", "$SYS/broker/uptime", False),
    ("wattbus/v1/reply/a/b/result", "wattbus/v1/reply/a/b/result", True),
    ("wattbus/v1/reply/a/b/result", "wattbus/v1/reply/a/b/result/x", False),
])
def test_subscription_matching_agrees_with_paho(subscription: str, topic: str, expected: bool) -> None:
    from wattbus.delivery import Subscription

    sub = Subscription(subscription, bytes, lambda msg: None, 1)
    assert sub.matches(topic) is expected
    assert topics.matches(subscription, topic) is expected
