"""The dongle framing against real captures and against what real hardware sends wrong."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from wattbus import givenergy as f
from wattbus_giv_bridge.cli import parse_line

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(p.name for p in DATA.glob("*.log"))


def _lines(name: str) -> list[tuple[bool, bytes]]:
    out = []
    for line in (DATA / name).read_text().splitlines():
        _ts, from_dongle, raw = parse_line(line)
        out.append((from_dongle, raw))
    return out


@pytest.mark.parametrize("name", CAPTURES)
def test_real_capture_reassembles_into_valid_frames(name: str) -> None:
    streams = {True: f.FrameStream(from_dongle=True), False: f.FrameStream(from_dongle=False)}
    kinds: Counter[str] = Counter()
    for from_dongle, raw in _lines(name):
        for frame, data in streams[from_dongle].feed(raw):
            kinds[type(frame).__name__ if not isinstance(frame, f.FrameError) else frame.reason] += 1
            if isinstance(frame, f.ReadResponse):
                assert len(frame.values) == (len(data) - 44) // 2  # 44 bytes of framing around the words
                assert frame.base % 60 + len(frame.values) <= 60
    assert kinds["ReadResponse"] > 0
    # The clean captures have no errors; the excerpt carries the corrupt frames real dongles send.
    errors = {k: v for k, v in kinds.items() if k[0].islower()}
    if name.startswith("hybrid_gen1_2bat"):
        assert set(errors) <= {"crc_mismatch", "null_response", "truncated", "garbage"} and errors
    else:
        assert errors == {}


@pytest.mark.parametrize("name", CAPTURES)
def test_every_good_frame_re_encodes_byte_for_byte(name: str) -> None:
    checked = 0
    for from_dongle, raw in _lines(name):
        try:
            frame = f.decode(raw, from_dongle=from_dongle)
        except f.FrameError:
            continue
        padding = int.from_bytes(raw[18:26], "big") if raw[7] == 2 else 0
        assert f.encode(frame, padding) == raw
        checked += 1
    assert checked > 0


def test_request_crc_matches_the_published_example() -> None:
    # ReadHolding(0x11, 0, 60) as GivTCP and the GivEnergy app send it: CRC bytes 47 4b.
    assert f.encode_read(0x11, 3, 0, 60).endswith(bytes.fromhex("474b"))


def test_every_split_point_reassembles() -> None:
    frames = [f.encode(f.ReadResponse("WF1", 0x32, 4, "SA1", 60, tuple(range(60)))),
              f.encode_heartbeat("WF1"), f.encode(f.WriteResponse("WF1", 0x31, "SA1", 110, 20))]
    wire = b"".join(frames)
    for cut in range(1, len(wire)):
        stream = f.FrameStream()
        got = [fr for fr, _ in stream.feed(wire[:cut])] + [fr for fr, _ in stream.feed(wire[cut:])]
        assert [type(g).__name__ for g in got] == ["ReadResponse", "Heartbeat", "WriteResponse"], cut


BAD = [
    ("truncated", bytes.fromhex("59590001009e0102")),
    ("bad_header", bytes.fromhex("5a590001000d010157463132333447353637 02".replace(" ", ""))),
    ("bad_length", bytes.fromhex("59590001ffff0102") + bytes(10)),
    ("trailing_bytes", f.encode_heartbeat("WF1") + b"\x00"),
    ("bad_function", bytes.fromhex("59590001000d01075746313233344735363702")),
    ("bad_heartbeat", bytes.fromhex("59590001000c010157463132333447353637")),
]


@pytest.mark.parametrize(("reason", "raw"), BAD, ids=[b[0] for b in BAD])
def test_bad_frames_are_rejected_with_a_reason(reason: str, raw: bytes) -> None:
    with pytest.raises(f.FrameError) as info:
        f.decode(raw)
    assert info.value.reason == reason
    assert info.value.detail


def test_crc_corruption_and_garbage_in_a_stream() -> None:
    good = f.encode(f.ReadResponse("WF1", 0x31, 4, "SA1", 0, tuple(range(60))))
    corrupt = bytearray(good)
    corrupt[60] ^= 0xFF
    stream = f.FrameStream()
    got = list(stream.feed(b"\x13\x37garbage" + bytes(corrupt) + good))
    assert [g.reason if isinstance(g, f.FrameError) else "ok" for g, _ in got] == ["garbage", "crc_mismatch", "ok"]


def test_misaligned_and_miscounted_reads_are_rejected() -> None:
    misaligned = f.encode(f.ReadResponse("WF1", 0x31, 4, "SA1", 30, tuple(range(40))))
    with pytest.raises(f.FrameError, match="misaligned"):
        f.decode(misaligned)
    with pytest.raises(ValueError, match="60-aligned"):
        f.encode_read(0x31, 4, 30, 40)
