"""Fuzzing the sml-reader decoders (SML, DSMR P1, IEC 62056-21) with damaged real captures.

The service feeds serial bytes into FrameDecoder.feed(), which must hand back DecodedFrame or
FrameError items and never raise; the buffers must not grow without bound on endless garbage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wattbus_sml_reader import dsmr, iec, sml
from wattbus_sml_reader.config import MeterConfig
from wattbus_sml_reader.meter import FrameDecoder
from wattbus_sml_reader.values import DecodedFrame, FrameError

from tests.reliability.corpus import chunks, damaged, fuzz_settings, meter_captures

FORMATS = {"sml": meter_captures("sml"), "dsmr": meter_captures("dsmr"), "iec": meter_captures("iec")}


def decoder(fmt: str) -> FrameDecoder:
    return FrameDecoder(MeterConfig(key="fuzz", port="file:///dev/null", format=fmt))  # type: ignore[arg-type]


def test_seeds_present_and_decodable() -> None:
    for fmt, seeds in FORMATS.items():
        assert seeds, f"no {fmt} captures under tests/sml_reader/data/{fmt}"
        frames = [f for seed in seeds for f in decoder(fmt).feed(seed) if isinstance(f, DecodedFrame)]
        assert frames, f"no {fmt} capture decodes undamaged: the fuzz seeds are not real frames"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@fuzz_settings(150)
@given(data=st.data())
def test_damaged_stream_never_raises(fmt: str, data: st.DataObject) -> None:
    stream = b"".join(data.draw(st.lists(damaged(FORMATS[fmt]), min_size=1, max_size=3)))
    sizes = data.draw(st.lists(st.integers(1, 300), max_size=4))
    dec = decoder(fmt)
    for chunk in chunks(stream, sizes):
        for item in dec.feed(chunk):
            assert isinstance(item, DecodedFrame | FrameError)
            if isinstance(item, FrameError):
                assert str(item), "a FrameError without a message"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@fuzz_settings(80)
@given(noise=st.binary(min_size=1, max_size=4096))
def test_random_bytes_give_frame_errors_only(fmt: str, noise: bytes) -> None:
    dec = decoder(fmt)
    for item in dec.feed(noise):
        assert isinstance(item, DecodedFrame | FrameError)


def sml_frames() -> list[bytes]:
    """The whole CRC-checked frames the framer cuts out of the real SML captures."""
    out: list[bytes] = []
    for seed in FORMATS["sml"]:
        out += [f for f in sml.SmlFramer().feed(seed) if isinstance(f, bytes)]
    return out


@st.composite
def crc_valid_sml(draw: st.DrawFn) -> bytes:
    """Damaged SML content in a correct envelope (good CRC): what a confused meter firmware sends.
    The framer passes such a frame on, so decode_frame and smllib see arbitrary content."""
    frame: bytes = draw(st.sampled_from(sml_frames()))
    body: bytes = draw(damaged([frame[8:-8]])).replace(sml.ESCAPE, b"\x1b\x1b\x1b\x00")
    pad = draw(st.integers(0, 3))
    head = sml.START + body + b"\x00" * pad + sml.ESCAPE + bytes([0x1A, pad])
    crc: int = sml.CRC_FUNCS["x25"](head)
    return bytes(head + crc.to_bytes(2, "big"))


@fuzz_settings(150)
@given(frame=crc_valid_sml())
def test_sml_content_with_good_crc_gives_frame_error_only(frame: bytes) -> None:
    items = decoder("sml").feed(frame)
    assert items, "a CRC-valid frame produced nothing"
    for item in items:
        assert isinstance(item, DecodedFrame | FrameError)


def test_sml_unsupported_choice_frame_is_a_frame_error() -> None:
    """Regression: smllib's UnsupportedChoiceValue raises TypeError in __str__; a CRC-valid frame
    with such content must still come out as a counted FrameError, not an exception."""
    text = (Path(__file__).parent / "data" / "sml_unsupported_choice.hex").read_text()
    frame = bytes.fromhex("".join(line for line in text.splitlines() if not line.startswith("#")))
    items = decoder("sml").feed(frame)
    assert len(items) == 1 and isinstance(items[0], FrameError)


@fuzz_settings(100)
@given(raw=damaged(FORMATS["dsmr"]))
def test_dsmr_decoder_raises_frame_error_only(raw: bytes) -> None:
    try:
        dsmr.DsmrDecoder().decode(raw)
    except FrameError as exc:
        assert str(exc)


@fuzz_settings(100)
@given(raw=damaged(FORMATS["iec"]))
def test_iec_decoder_raises_frame_error_only(raw: bytes) -> None:
    try:
        iec.decode(raw)
    except FrameError as exc:
        assert str(exc)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_endless_garbage_keeps_buffers_bounded(fmt: str) -> None:
    """A meter head spewing noise for a long time must not grow the framer's buffer forever."""
    dec = decoder(fmt)
    framer = dec._sml or dec._dsmr or dec._iec
    assert framer is not None
    noise = bytes(range(256)).replace(b"\x1b", b"").replace(b"/", b"").replace(b"!", b"") * 8
    for _ in range(400):  # ~800 kB without a frame start
        dec.feed(noise)
    pending = len(getattr(framer, "_buf", b""))
    assert pending < 256 * 1024, f"{fmt} framer holds {pending} bytes of garbage"
