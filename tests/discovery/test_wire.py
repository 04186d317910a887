"""Decoders over recorded and real answers, and over the damaged copies real links produce."""

from __future__ import annotations

from pathlib import Path

import pytest
from wattbus import givenergy, sunspec
from wattbus_discovery import modbus_wire as mw

DATA = Path(__file__).parent / "data"


def recorded_sunspec() -> dict[str, tuple[int, bytes]]:
    rows = {}
    for line in (DATA / "sunspec_answers.hex").read_text().splitlines():
        if line and not line.startswith("#"):
            name, unit, _address, _count, raw = line.split()
            rows[name] = (int(unit), bytes.fromhex(raw))
    return rows


SUNSPEC = recorded_sunspec()


def parse(raw: bytes) -> mw.Answer:
    header, body = raw[:7], raw[7:]
    assert mw.mbap_length(header) == len(body)
    return mw.parse_answer(header, body)


def test_read_request_is_function_3_only() -> None:
    frame = mw.read_request(7, 126, 40000, 2)
    assert frame == bytes.fromhex("0007000000067e039c400002")
    with pytest.raises(mw.WireError, match=r"1\.\.125"):
        mw.read_request(1, 1, 40000, 126)


@pytest.mark.parametrize(("device", "manufacturer", "serial"), [
    ("fronius", "Fronius", "34119102"), ("sma", "SMA", "3004512345"), ("float", "Wattbus Sim", "FL-000771"),
    ("fronius_meter", "Fronius", "18420047"),
])
def test_recorded_sunspec_identity(device: str, manufacturer: str, serial: str) -> None:
    unit, raw = SUNSPEC[f"{device}_marker"]
    marker = parse(raw)
    assert marker.unit == unit and sunspec.is_marker(marker.registers)
    header = parse(SUNSPEC[f"{device}_common_header"][1])
    assert header.registers[0] == sunspec.COMMON_MODEL and header.registers[1] in sunspec.COMMON_LENGTHS
    common = sunspec.decode_common(parse(SUNSPEC[f"{device}_common_body"][1]).registers)
    assert (common.manufacturer, common.serial) == (manufacturer, serial)
    assert common.model


@pytest.mark.parametrize("name", ["unknown_unit_exception", "fronius_base0_exception"])
def test_recorded_exceptions(name: str) -> None:
    answer = parse(SUNSPEC[name][1])
    assert answer.exception in (2, 4) and answer.registers == ()


@pytest.mark.parametrize(("damage", "match"), [
    (lambda raw: raw[:2] + b"\x00\x01" + raw[4:], "protocol id"),
    (lambda raw: raw[:8] + b"\x09" + raw[9:], "byte count"),
    (lambda raw: raw[:7] + b"\x04" + raw[8:], "function 0x04"),
])
def test_damaged_modbus_answers_are_rejected(damage: object, match: str) -> None:
    raw = damage(SUNSPEC["fronius_marker"][1])  # type: ignore[operator]
    with pytest.raises(mw.WireError, match=match):
        mw.parse_answer(raw[:7], raw[7:])


def test_mbap_length_refuses_garbage() -> None:
    with pytest.raises(mw.WireError, match="outside"):
        mw.mbap_length(b"HTTP/1.")


# ---------------------------------------------------------------------- GivEnergy dongle

def capture(name: str, direction: str = "rx") -> bytes:
    stream = b""
    for line in (DATA / name).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == direction:
            stream += bytes.fromhex(parts[2])
    return stream


def test_request_matches_what_real_clients_send() -> None:
    """Byte for byte the detection read a real client sent (tests/giv_bridge capture), bar the
    placeholder serial the client puts where the dongle answers with its own."""
    real = bytes.fromhex("59590001001c010241423132333447303030000000000000000811030000003c474b")
    assert givenergy.detect_request() == real


@pytest.mark.parametrize(("name", "inverter_serial", "adapter_serial"), [
    ("hybrid_gen2_arm920_60s.log", "EA2302G000", "WG2302G000"),
    ("ems_arm1036_60s.log", "EMS2522000", "FO2522G000"),
    ("hybrid_gen1_2bat_excerpt.log", "SA2114G000", "WF2125G000"),
])
def test_real_captures_yield_the_identity(name: str, inverter_serial: str, adapter_serial: str) -> None:
    """Every rx read of a real capture, joined as the socket delivered it, reassembles into frames
    (wattbus.givenergy, the bridge's own framing); the holding-register answer at base 0 gives the
    inverter serial."""
    items = [item for item, _raw in givenergy.FrameStream(from_dongle=True).feed(capture(name))]
    assert not any(isinstance(i, givenergy.FrameError) and i.reason == "garbage" for i in items)
    identities = set()
    for item in items:
        if isinstance(item, givenergy.Heartbeat):
            assert item.adapter_serial == adapter_serial
        elif isinstance(item, givenergy.ReadResponse):
            ident = givenergy.identity(item)
            identities.add((ident.inverter_serial, ident.adapter_serial))
    assert (inverter_serial, adapter_serial) in identities


def test_giv_resync_on_garbage_and_split_frames() -> None:
    frames_in = capture("hybrid_gen2_arm920_60s.log")
    first_len = int.from_bytes(frames_in[4:6], "big") + 6
    stream = b"\x00garbage" + frames_in[:first_len]
    splitter = givenergy.FrameStream(from_dongle=True)
    first = [item for item, _raw in splitter.feed(stream[:20])]
    assert len(first) == 1 and isinstance(first[0], givenergy.FrameError) and first[0].reason == "garbage"
    rest = [item for item, _raw in splitter.feed(stream[20:])]
    assert len(rest) == 1 and not isinstance(rest[0], givenergy.FrameError) and splitter.pending == 0
    impossible = b"\x59\x59\x00\x01\xff\xff\x01\x02" + frames_in[:first_len]
    items = [item for item, _raw in givenergy.FrameStream(from_dongle=True).feed(impossible)]
    assert isinstance(items[0], givenergy.FrameError) and items[0].reason == "bad_length"
    assert not isinstance(items[-1], givenergy.FrameError)


def test_giv_answer_too_short_or_refused() -> None:
    with pytest.raises(givenergy.FrameError, match="truncated"):
        givenergy.decode(givenergy.MARKER + (22).to_bytes(2, "big") + b"\x01\x02" + b"\x00" * 20)
    refused = givenergy.encode(givenergy.ErrorResponse("WF2345G678", 0x11, 3, "SA2345G678", 0, 60))
    answer = givenergy.decode(refused)
    assert isinstance(answer, givenergy.ErrorResponse) and answer.function == 3


def test_identity_prefers_the_serial_registers() -> None:
    values = [0x2001] + [0] * 12 + [0x5341, 0x3233, 0x3435, 0x4736, 0x3738] + [0] * 42  # HR 13-17 "SA2345G678"
    answer = givenergy.ReadResponse("WF2345G001", 0x11, givenergy.READ_HOLDING, "", 0, tuple(values))
    assert givenergy.identity(answer) == givenergy.Identity("WF2345G001", "SA2345G678", 0x2001)
    inputs = givenergy.ReadResponse("WF2345G001", 0x11, givenergy.READ_INPUT, "SA0000G000", 0, tuple(values))
    assert givenergy.identity(inputs) == givenergy.Identity("WF2345G001", "SA0000G000", None)
