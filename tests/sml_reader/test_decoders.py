"""Framing, decoding and mapping on real captures, split and damaged the way IR lines deliver them."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from wattbus_sim import meter_sml_encode as enc
from wattbus_sml_reader.config import MeterConfig
from wattbus_sml_reader.guard import EnergyGuard
from wattbus_sml_reader.mapping import Mapper, ObisMap
from wattbus_sml_reader.meter import FrameDecoder
from wattbus_sml_reader.transport import load_capture
from wattbus_sml_reader.values import DecodedFrame, FrameError

DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 5, 1, tzinfo=UTC)

# file, format, expected device serial, expected reading fields (SI units)
CASES = [
    ("sml/dzg_dvs74.hex", "sml", "1DZG0042123440", {"energy_import_wh": 13_391_000.0, "energy_export_wh": 0.0}),
    ("sml/holley_dtz541.hex", "sml", "1HLY0200271520",
     {"energy_import_wh": 4_499_896.2, "power_w": 137.0, "frequency_hz": 50.0}),
    ("sml/ebz_dd3.hex", "sml", None, {"energy_import_wh": 450_091.89911, "energy_import_t2_wh": 1017.0,
                                      "power_w": 352.89}),
    ("sml/ebz_dd3_issue8.hex", "sml", None, {"energy_import_t1_wh": 460_765.57063, "power_w": 1156.07}),
    ("sml/iskra_mt175.hex", "sml", "1ISK0075126084", {"energy_import_wh": 79_139.3, "power_w": 2144.0}),
    ("dsmr/kaifa_v4_2.txt", "dsmr", "3960221976967177082151037881335713",
     {"energy_import_wh": 3_016_829.0, "power_w": 2027.0, "gas_m3": 981.443}),
    ("dsmr/iskra_v5.txt", "dsmr", "K8EG004046395507", {"energy_export_wh": 2444.0, "power_w": 244.0, "gas_m3": 0.107}),
    ("dsmr/iskra_v2_2.txt", "dsmr", None, {"energy_import_t1_wh": 1001.0, "power_w": 1010.0}),
    ("dsmr/sagemcom_t210_v5.txt", "dsmr", None, {"energy_import_wh": 6_545_766.0, "power_w": 286.0}),
    ("iec/easymeter_q3db1024.txt", "iec", "1ESY1313002565",
     {"energy_import_wh": 52_185_782.5309, "energy_export_wh": 19_949_322.1493, "power_w": 2124.86}),
    ("iec/easymeter_q3da1004.txt", "iec", "1ESY1336001560", {"energy_import_wh": 32_549_506.1662}),
]


def decode_all(fmt: str, data: bytes, chunk: int | None = None) -> list[DecodedFrame | FrameError]:
    decoder = FrameDecoder(MeterConfig(key="t", port="file:///dev/null", format=fmt))  # type: ignore[arg-type]
    if chunk is None:
        return decoder.feed(data)
    out: list[DecodedFrame | FrameError] = []
    for start in range(0, len(data), chunk):
        out += decoder.feed(data[start: start + chunk])
    return out


@pytest.mark.parametrize(("name", "fmt", "serial", "expected"), CASES, ids=[c[0] for c in CASES])
def test_real_capture_decodes_to_the_expected_reading(name: str, fmt: str, serial: str | None,
                                                      expected: dict[str, float]) -> None:
    frames = [f for f in decode_all(fmt, load_capture(DATA / name)) if isinstance(f, DecodedFrame)]
    assert len(frames) == 1, f"{name}: {frames}"
    if serial is not None:
        assert frames[0].serial == serial
    reading = Mapper().reading(frames[0], "m", NOW).reading
    for field, value in expected.items():
        assert getattr(reading, field) == pytest.approx(value), field
    assert reading.energy_import_wh is None or reading.energy_import_wh > 0


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 333])
@pytest.mark.parametrize(("name", "fmt"), [("sml/holley_dtz541.hex", "sml"), ("dsmr/kaifa_v4_2.txt", "dsmr"),
                                           ("iec/easymeter_q3db1024.txt", "iec")])
def test_stream_reassembly_across_arbitrary_chunks(name: str, fmt: str, chunk: int) -> None:
    one = load_capture(DATA / name)
    results = decode_all(fmt, one * 3, chunk)
    assert [type(r).__name__ for r in results] == ["DecodedFrame"] * 3


def test_emh_payload_wrapped_per_spec_has_negative_power_and_5_byte_totals() -> None:
    body = load_capture(DATA / "sml/emh_ehz_payload.hex")
    frames = decode_all("sml", enc.transport(body))
    assert len(frames) == 1 and isinstance(frames[0], DecodedFrame)
    reading = Mapper().reading(frames[0], "m", NOW).reading
    assert reading.power_w is not None and reading.power_w < 0  # exporting
    assert reading.energy_import_wh == pytest.approx(0x000706507D / 10)
    assert frames[0].manufacturer == "EMH"


def test_garbage_corruption_truncation_are_dropped_and_the_stream_resyncs() -> None:
    good = load_capture(DATA / "sml/dzg_dvs74.hex")
    corrupt = bytearray(good)
    corrupt[100] ^= 0xFF
    rng = random.Random(4)
    garbage = bytes(rng.randrange(256) for _ in range(300)) + b"\x1b\x1b\x1b\x1b\x02"  # a half escape
    stream = garbage + good + bytes(corrupt) + good[:150] + good + b"\x1b\x1b\x1b\x1b\x01\x01" + good
    results = decode_all("sml", stream, 17)
    kinds = [r.kind if isinstance(r, FrameError) else "ok" for r in results]
    assert kinds.count("ok") == 3, kinds
    assert "crc" in kinds and "truncated" in kinds and "garbage" in kinds
    for result in results:
        if isinstance(result, FrameError):
            assert str(result)  # every rejection says why


def test_dsmr_bad_crc_and_iec_bad_bcc_are_rejected() -> None:
    telegram = load_capture(DATA / "dsmr/kaifa_v4_2.txt").replace(b"02.027*kW", b"02.028*kW")
    (result,) = decode_all("dsmr", telegram)
    assert isinstance(result, FrameError) and result.kind == "crc"
    from wattbus_sim.meter_text import iec_readout
    readout = bytearray(iec_readout(1000.0, 0.0, 5.0, [1.0, 2.0, 2.0], "1ESY0000000001", mode_c=True))
    assert isinstance(decode_all("iec", bytes(readout))[0], DecodedFrame)
    readout[40] ^= 0x01
    (bad,) = decode_all("iec", bytes(readout))
    assert isinstance(bad, FrameError) and bad.kind == "crc"


def test_direction_of_absolute_power_comes_from_the_status_word() -> None:
    def frame(status: int) -> bytes:
        entries = enc.lst(
            enc.entry(bytes.fromhex("0100010800ff"), enc.unsigned(1_000_000, 4), 30, -1, enc.unsigned(status, 3)),
            enc.entry(bytes.fromhex("01000f0700ff"), enc.unsigned(1234, 2), 27, -1))
        body = enc.lst(enc.NONE, enc.octets(b"\x0a\x01EMH\x00\x00\x00\x00\x01"), enc.NONE, enc.NONE, entries,
                       enc.NONE, enc.NONE)
        return enc.transport(enc.message(1, 0x0701, body))
    for status, sign in ((0x1C0104, 1), (0x1C0904, -1), (0x182, 1), (0x1B0, -1)):
        (decoded,) = decode_all("sml", frame(status))
        assert isinstance(decoded, DecodedFrame)
        assert Mapper().reading(decoded, "m", NOW).reading.power_w == pytest.approx(sign * 123.4), hex(status)


def test_energy_guard_rejects_backwards_and_impossible_jumps_then_accepts_a_new_level() -> None:
    guard = EnergyGuard(max_power_w=43_000, slack_wh=10)
    assert guard.check("e", 1000.0, 0.0) == (True, None)
    assert guard.check("e", 1001.0, 1.0)[0]
    ok, why = guard.check("e", 999.0, 2.0)
    assert not ok and why and "backwards" in why
    ok, why = guard.check("e", 90_000.0, 3.0)
    assert not ok and why and "jumped" in why
    assert guard.check("e", 1002.0, 4.0)[0]  # the spike never became the baseline
    for t in (5.0, 6.0):
        assert not guard.check("e", 500_000.0 + t, t)[0]
    ok, why = guard.check("e", 500_007.0, 7.0)  # a meter exchange: three consistent values
    assert ok and why and "new level" in why


def test_every_obis_data_file_loads_and_names_contract_fields() -> None:
    package = Path(__file__).parents[2] / "services/sml-reader/wattbus_sml_reader"
    files = sorted(package.glob("*.toml"))
    assert files
    for path in files:
        loaded = ObisMap.from_toml(path.read_text(), str(path))
        assert "1-0:16.7.0" in loaded.values and "1-0:15.7.0" in loaded.fallback
    with pytest.raises(ValueError, match="not a MeterReading field"):
        ObisMap.from_toml('[values."1-0:1.8.0"]\nfield = "energy_wh"\nunit = "Wh"\n', "inline")


def test_value_in_the_wrong_unit_is_rejected_not_converted() -> None:
    telegram = load_capture(DATA / "dsmr/sagemcom_t210_v5.txt")
    (frame,) = decode_all("dsmr", telegram)
    assert isinstance(frame, DecodedFrame)
    frame.values["1-0:16.7.0"] = type(frame.values["1-0:1.7.0"])("1-0:16.7.0", 5.0, "var")
    mapped = Mapper().reading(frame, "m", NOW)
    assert mapped.reading.power_w == 286.0 and any("var" in p for p in mapped.problems)


def run_decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattbus_sml_reader", "decode", *args],
                          capture_output=True, text=True, timeout=60)


def test_decode_cli_prints_json_lines_and_reports_bad_frames(tmp_path: Path) -> None:
    import json
    good = load_capture(DATA / "sml/holley_dtz541.hex")
    bad = bytearray(good)
    bad[200] ^= 0x10
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"noise" + good + bytes(bad))
    result = run_decode(str(capture), "--format", "sml")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    doc = json.loads(line)
    assert doc["obis"]["1-0:16.7.0"]["value"] == 137 and doc["reading"]["power_w"] == 137.0
    assert "CRC mismatch" in result.stderr and "garbage" in result.stderr
    (tmp_path / "empty.bin").write_bytes(b"\x00" * 100)
    nothing = run_decode(str(tmp_path / "empty.bin"), "--format", "dsmr")
    assert nothing.returncode == 1 and "0 frames decoded" in nothing.stderr
    dsmr = run_decode(str(DATA / "dsmr/kaifa_v4_2.txt"), "--format", "dsmr")
    assert json.loads(dsmr.stdout)["reading"]["gas_m3"] == 981.443
