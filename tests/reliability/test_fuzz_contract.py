"""Fuzzing what every service reads before any device: its config (TOML file, sections, env
overrides) and the bus payloads (wattbus.codec). Only ConfigError / PayloadError may come out,
and their message must say where the problem is."""

from __future__ import annotations

import importlib
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wattbus import codec
from wattbus import messages as m
from wattbus.config import BusConfig, ConfigError, LoadedConfig, load
from wattbus.runner import Service

from tests.reliability.corpus import damaged, fuzz_settings
from tests.support.servers import ROOT

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def services() -> list[tuple[str, str]]:
    """(service name, module) for every service package in the checkout."""
    out = []
    for main in sorted(ROOT.glob("services/*/wattbus_*/__main__.py")):
        out.append((main.parent.parent.name, main.parent.name))
    return out


def service_of(module: str) -> Service[Any]:
    try:
        mod = importlib.import_module(f"{module}.__main__")
    except ImportError as exc:  # a service another engineer has not installed yet (pip install -e .)
        pytest.skip(f"{module} not importable: {exc}")
    service = getattr(mod, "SERVICE", None)
    if not isinstance(service, Service):
        pytest.skip(f"{module}.__main__ has no SERVICE yet")
    return service


TOML_LEAF = (st.booleans() | st.integers(-2**31, 2**31) | st.floats(allow_nan=False, allow_infinity=True)
             | st.text(max_size=12) | st.sampled_from(["", "auto", "127.0.0.1", "http://127.0.0.1:1", "/dev/null"]))
TOML_VALUE = st.recursive(TOML_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(min_size=1, max_size=8), inner, max_size=4), max_leaves=10)


@st.composite
def section_for(draw: st.DrawFn, config_type: Any) -> dict[str, Any]:
    names = [f.encode_name for f in msgspec.structs.fields(config_type)]
    keys = draw(st.lists(st.sampled_from(names) | st.text(min_size=1, max_size=10), max_size=6, unique=True))
    return {key: draw(TOML_VALUE) for key in keys}


@pytest.mark.parametrize(("name", "module"), services(), ids=[s[0] for s in services()])
@fuzz_settings(120)
@given(data=st.data())
def test_service_config_sections(name: str, module: str, data: st.DataObject) -> None:
    service = service_of(module)
    section = data.draw(section_for(service.config_type))
    loaded = LoadedConfig({name: section}, Path("/etc/wattbus/fuzz.toml"), {})
    try:
        loaded.section(name, service.config_type)
    except ConfigError as exc:
        assert f"[{name}]" in str(exc), f"error does not name the section: {exc}"


@fuzz_settings(150)
@given(section=section_for(BusConfig), env=st.dictionaries(
    st.sampled_from(["WATTBUS_BUS_PORT", "WATTBUS_BUS_HOST", "WATTBUS_BUS_TLS", "WATTBUS_BUS_KEEPALIVE_S",
                     "WATTBUS_BUS_X", "WATTBUS_BUS_PASSWORD_FILE", "WATTBUS_BUS_RECONNECT_MIN_S"]),
    st.text(max_size=10), max_size=3))
def test_bus_section_and_environment(section: dict[str, Any], env: dict[str, str]) -> None:
    loaded = LoadedConfig({"bus": section}, Path("/etc/wattbus/fuzz.toml"), env)
    try:
        cfg = loaded.bus()
        cfg.resolved_password()
    except ConfigError as exc:
        assert "[bus]" in str(exc) or "bus" in str(exc)


@fuzz_settings(150)
@given(text=st.text(max_size=300) | st.sampled_from(["[bus]\nport = 1883\n", "[bus\n", "a = [1,\n", "\x00"]))
def test_config_files(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "wattbus.toml"
    path.write_text(text, errors="surrogateescape") if _encodable(text) else path.write_bytes(b"\xff\xfe")
    try:
        load(path, {}).bus()
    except ConfigError as exc:
        assert str(path) in str(exc) or "[bus]" in str(exc)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# Regression: found by this suite (UnicodeDecodeError escaped load()), fixed in b4c689c.
def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_bytes(b"[bus]\nhost = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError, match=r"wattbus\.toml"):
        load(path, {})


# --------------------------------------------------------------------------- bus payloads

GOOD: list[bytes] = [codec.encode(x) for x in (
    m.MeterReading(device_id="emh-1", timestamp=NOW, power_w=-512.5, energy_import_wh=1.5e6,
                   phases=[m.PhaseValues(phase=1, voltage_v=230.1, current_a=2.0)], extra={"tariff": 2}),
    m.ChargerReading(device_id="goe-1", timestamp=NOW, state="charging", set_current_a=16, phases_active=3),
    m.BatteryReading(device_id="giv-1", timestamp=NOW, soc_pct=55, power_w=-1200, cell_voltages_v=[3.3, 3.31]),
    m.SetChargeCurrent(current_a=10, request_id="r1"), m.SetChargeSlot(start="0130", end="0430", target_soc_pct=80),
    m.SetRelay(on=True, channel=1), m.CommandResult(status="refused", command="set_charge_current", message="no"),
    m.DeviceMeta(device_id="goe-1", kind="charger", source="goe-shelly-bridge", protocol="goe", capabilities=["x"]),
    m.ServiceStatus(service="s", instance="main", version="1", started_at=NOW, uptime_s=1.0, counters={"a": 1}),
    m.LoadpointState(loadpoint_id="lp1", mode="pv"),
)]
PAYLOAD_TYPES: list[Any] = [m.Reading, m.Command, m.CommandResult, m.DeviceMeta, m.ServiceStatus, m.LoadpointState,
                            m.DeviceAnnouncement]


@pytest.mark.parametrize("payload_type", PAYLOAD_TYPES, ids=lambda t: getattr(t, "__name__", "union"))
@fuzz_settings(200)
@given(raw=(damaged(GOOD) | st.binary(max_size=200)).filter(_utf8))
def test_payloads_raise_payload_error_only(payload_type: Any, raw: bytes) -> None:
    """Valid UTF-8 here; invalid UTF-8 has its own regression test (test_payload_not_utf8)."""
    try:
        value = codec.decode(raw, payload_type)
    except codec.PayloadError as exc:
        assert str(exc)
        return
    # What decodes re-encodes and decodes to the same value (no lossy or poisoned accept).
    again = codec.decode(codec.encode(value), payload_type)
    assert _same(again, value)


# Regression: found by this suite (UnicodeDecodeError escaped codec.decode() and ended the bus
# dispatcher), fixed in b4c689c.
# The first string field of each payload type carries a byte that is not UTF-8 (a Latin-1 device name).
NOT_UTF8 = {"device_id": m.Reading, "request_id": m.Command, "message": m.CommandResult, "source": m.DeviceMeta,
            "service": m.ServiceStatus, "loadpoint_id": m.LoadpointState, "address": m.DeviceAnnouncement}


@pytest.mark.parametrize("key", sorted(NOT_UTF8))
def test_payload_not_utf8(key: str) -> None:
    with pytest.raises(codec.PayloadError):
        tags = {"request_id": b'"command":"rescan",', "device_id": b'"kind":"meter",'}
        tag = tags.get(key, b"")  # a union needs its tag first
        codec.decode(b'{%s"%s":"Z\xe4hler"}' % (tag, key.encode()), NOT_UTF8[key])


def _same(a: Any, b: Any) -> bool:
    """Equality with NaN == NaN (JSON has no NaN: msgspec writes null, which reads back as missing)."""
    return bool(a == b) or msgspec.to_builtins(a) == msgspec.to_builtins(b) or _nan_safe(a) == _nan_safe(b)


def _nan_safe(value: Any) -> Any:
    builtins = msgspec.to_builtins(value)
    return msgspec.json.decode(msgspec.json.encode(builtins, order="deterministic"),
                               dec_hook=None) if not _has_nan(builtins) else "nan"


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value) or math.isinf(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


@fuzz_settings(150)
@given(current=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-1000, 1000))
def test_command_limits_are_part_of_the_contract(current: float) -> None:
    """SetChargeCurrent outside 6-32 A never decodes, whatever number form it takes."""
    raw = b'{"command":"set_charge_current","current_a":%s}' % codec.encode(current)
    try:
        cmd = codec.decode_command(raw)
    except codec.PayloadError:
        assert not (6 <= current <= 32)
        return
    assert isinstance(cmd, m.SetChargeCurrent) and 6 <= cmd.current_a <= 32
