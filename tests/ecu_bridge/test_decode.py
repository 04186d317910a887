"""Decoder tests over recorded / real-format ECU answers (tests/ecu_bridge/data) and damaged copies."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from wattbus import apsystems
from wattbus_ecu_bridge import decode

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.glob("*.hex"))


def load(name: str) -> bytes:
    return apsystems.parse_hex_or_raw((DATA / name).read_bytes())


def test_every_data_file_is_covered() -> None:
    assert {f.name for f in FILES} == set(EXPECTED) | set(INVALID)


def test_inverter_type_table_loads_every_type() -> None:
    types = decode.inverter_types()
    assert set(types) == {"00", "01", "02", "03", "04", "05"}
    assert types["02"].phases == 3 and len(types["03"].panel_power) == 4


# Values read by hand from the hex of each capture (offsets from docs/protocol notes).
EXPECTED: dict[str, dict[str, object]] = {
    "realtime_ecur_yc600_issue79.hex": {
        "count": 15, "online": 13, "stamp": datetime(2022, 6, 16, 14, 52, 51),
        "first": ("409000094213", "01", 60.0, 43.0, [194.0, 47.0], [243.0, 243.0], (243.0,))},
    "realtime_ecuc_yc1000_issue6.hex": {
        "count": 11, "online": 11, "stamp": datetime(2021, 4, 14, 15, 8, 5),
        "first": ("502000006223", "02", 50.1, 40.0, [258.0, 257.0, 254.0, 253.0], [None] * 4, (236.0, 238.0, 234.0))},
    "realtime_ecuc_qs1_issue74.hex": {
        "count": 9, "online": 0, "stamp": datetime(2022, 5, 17, 22, 41, 22), "first": ("802000142216", "03")},
    "info_ecur_layout01.hex": {"ecu_id": "216000123456", "layout": "01", "energy_total_wh": 8_352_100.0,
                               "energy_today_wh": 12_340.0, "power_w": 2612.0, "inverters_total": 12,
                               "inverters_online": 12, "firmware": "ECU_R_1.2.22", "timezone": "Europe/Amsterdam"},
    "info_ecuc_layout02_night.hex": {"ecu_id": "215000003925", "layout": "02", "energy_total_wh": 25_000_000.0,
                                     "energy_today_wh": 0.0, "power_w": 0.0, "inverters_total": 11,
                                     "inverters_online": 0, "firmware": "C1.2.5", "timezone": None},
    "signal_ecur_3.hex": {"strength_pct": {"409000094213": 100, "409000091906": 50, "216000020769": 0}},
}
INVALID = {"error_answer_issue270.hex": "shorter than the 17-byte minimum"}


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.startswith("realtime")])
def test_realtime_captures(name: str) -> None:
    want = EXPECTED[name]
    rt = decode.decode_realtime(load(name))
    assert rt.problems == ()
    assert (rt.count, len(rt.inverters), rt.timestamp) == (want["count"], want["count"], want["stamp"])
    assert sum(1 for i in rt.inverters if i.online) == want["online"]
    first = rt.inverters[0]
    expected_first = want["first"]
    assert isinstance(expected_first, tuple)
    assert (first.uid, first.type_code) == expected_first[:2]
    if first.online:
        _uid, _code, freq, temp, powers, volts, ac = expected_first
        assert (first.frequency_hz, first.temperature_c, first.ac_voltages_v) == (freq, temp, ac)
        assert [p.power_w for p in first.panels] == powers and [p.voltage_v for p in first.panels] == volts
        assert first.power_w == sum(powers)  # type: ignore[arg-type]
    else:  # offline records carry zeros: they must come out as missing, never as 0 W
        assert first.power_w is None and first.temperature_c is None and first.panels == ()


def test_offline_and_short_records_in_yc600_capture() -> None:
    rt = decode.decode_realtime(load("realtime_ecur_yc600_issue79.hex"))
    offline_full, short = rt.inverters[-3], rt.inverters[-1]
    assert (offline_full.uid, offline_full.online, offline_full.power_w) == ("409000088998", False, None)
    assert (short.uid, short.type_code, short.online) == ("216000020769", "00", False)


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.startswith("info")])
def test_info_answers(name: str) -> None:
    info = apsystems.decode_info(load(name))
    for key, value in EXPECTED[name].items():
        assert getattr(info, key) == value, key


def test_signal_answer() -> None:
    assert decode.decode_signal(load("signal_ecur_3.hex")).strength_pct == EXPECTED["signal_ecur_3.hex"]["strength_pct"]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_real_invalid_answers_are_rejected(name: str) -> None:
    with pytest.raises(apsystems.EcuFrameError, match=INVALID[name]):
        decode.decode_any(load(name))


def _relength(data: bytes) -> bytes:
    return data[:5] + f"{len(data) - 1:04d}".encode() + data[9:]


YC600 = "realtime_ecur_yc600_issue79.hex"
DAMAGED = {
    "truncated mid-record": (lambda d: d[:200], "does not end with END"),
    "length field off by one": (lambda d: d[:5] + f"{len(d):04d}".encode() + d[9:], "length field says"),
    "length field not digits": (lambda d: d[:5] + b"03x2" + d[9:], "not 4 ASCII digits"),
    "no APS prefix": (lambda d: b"XPS" + d[3:], "does not start with APS"),
    "garbage": (lambda d: bytes(range(256)) * 2, "does not start with APS"),
    "empty": (lambda d: b"", "shorter than"),
    "signal echo instead of real-time": (lambda d: d[:9] + b"0030" + d[13:], "echoes command 0030"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_answers_are_rejected(case: str) -> None:
    damage, message = DAMAGED[case]
    with pytest.raises(apsystems.EcuFrameError, match=message):
        decode.decode_realtime(damage(load(YC600)))


def test_count_beyond_records_reports_missing_record() -> None:
    data = bytearray(load(YC600))
    data[17:19] = (16).to_bytes(2, "big")
    rt = decode.decode_realtime(bytes(data))
    assert len(rt.inverters) == 15 and "record 16 of 16 missing" in rt.problems[0]


def test_unknown_type_stops_at_that_record() -> None:
    data = bytearray(load(YC600))
    data[26 + 21 * 2 + 7:26 + 21 * 2 + 9] = b"09"  # third record claims type 09
    rt = decode.decode_realtime(bytes(data))
    assert len(rt.inverters) == 2 and "unknown type code '09'" in rt.problems[0]


def test_record_cut_short_inside_valid_frame() -> None:
    data = load(YC600)
    cut = _relength(data[:26 + 21 * 3 + 10] + b"END\n")  # a valid frame whose 4th record is cut
    rt = decode.decode_realtime(cut)
    assert len(rt.inverters) == 3 and "needs 21 bytes" in rt.problems[0]


def test_info_with_unknown_layout_is_rejected() -> None:
    data = bytearray(load("info_ecur_layout01.hex"))
    data[25:27] = b"07"
    with pytest.raises(apsystems.EcuFrameError, match="unknown ECU info layout '07'"):
        apsystems.decode_info(bytes(data))


def test_info_firmware_length_past_end_is_rejected() -> None:
    data = bytearray(load("info_ecur_layout01.hex"))
    data[52:55] = b"999"
    with pytest.raises(apsystems.EcuFrameError, match="firmware"):
        apsystems.decode_info(bytes(data))


@pytest.mark.parametrize("name", [f.name for f in FILES])
def test_decode_command_line(name: str, tmp_path: Path) -> None:
    raw = tmp_path / "answer.bin"
    raw.write_bytes(load(name))  # raw bytes as well as the hex text
    for path in (DATA / name, raw):
        proc = subprocess.run([sys.executable, "-m", "wattbus_ecu_bridge", "decode", str(path)],
                              capture_output=True, text=True, timeout=60)
        if name in INVALID:
            assert proc.returncode == 1 and INVALID[name] in proc.stderr and proc.stdout == ""
        else:
            assert proc.returncode == 0, proc.stderr
            assert '"decoded"' in proc.stdout
