"""Fuzzing the bridges' decoders with damaged real answers: ECU (APsystems), GivEnergy frames,
SunSpec register blocks, go-e and Shelly JSON.

Each decoder may only fail with the error type its service catches and counts (EcuFrameError,
giv FrameError, ResponseRejected, ...); any other exception would end the device's poll loop.
What a decoder returns must also be a valid bus payload (encode, then decode with the contract).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wattbus import apsystems, codec
from wattbus import givenergy as giv
from wattbus import messages as m
from wattbus.goe import GoeIdentityError, identity
from wattbus.shelly import ShellyIdentityError, parse_info
from wattbus_ecu_bridge import decode as ecu
from wattbus_giv_bridge import regmap
from wattbus_goe_shelly_bridge.goe_wire import decode_status
from wattbus_goe_shelly_bridge.shelly_wire import decode_gen1, decode_gen2
from wattbus_goe_shelly_bridge.transport import ResponseRejected
from wattbus_sunspec_bridge import mapping
from wattbus_sunspec_bridge.decode import decode_model
from wattbus_sunspec_bridge.models import model_def

from tests.reliability.corpus import (
    JSON_ANY,
    chunks,
    damaged,
    damaged_doc,
    device_json,
    ecu_answers,
    fuzz_settings,
    giv_frames,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ECU = ecu_answers()
GIV = giv_frames()
GOE = device_json("goe_")
SHELLY = device_json("shelly_")


def on_the_bus(readings: list[m.ReadingBase]) -> None:
    """A reading a bridge publishes must pass the contract decoder every subscriber uses."""
    for reading in readings:
        codec.decode_reading(codec.encode(reading))


def test_seeds_are_real_captures() -> None:
    assert len(ECU) >= 5 and len(GIV) >= 40 and len(GOE) >= 3 and len(SHELLY) >= 3
    assert sum(1 for raw in ECU if not isinstance(_ecu_outcome(raw), apsystems.EcuFrameError)) >= 3
    assert sum(1 for raw in GIV if _giv_decodes(raw)) >= 20


def _giv_decodes(raw: bytes) -> bool:
    for from_dongle in (True, False):
        try:
            giv.decode(raw, from_dongle=from_dongle)
            return True
        except giv.FrameError:
            continue
    return False


def _ecu_outcome(raw: bytes) -> object:
    try:
        return ecu.decode_any(raw)
    except apsystems.EcuFrameError as exc:
        return exc


@fuzz_settings(300)
@given(raw=damaged(ECU))
def test_ecu_answers_raise_ecu_frame_error_only(raw: bytes) -> None:
    for decoder in (ecu.decode_any, apsystems.decode_info, ecu.decode_realtime, ecu.decode_signal):
        try:
            decoder(raw)
        except apsystems.EcuFrameError as exc:
            assert str(exc)


@fuzz_settings(100)
@given(raw=st.binary(max_size=600))
def test_ecu_random_bytes(raw: bytes) -> None:
    with pytest.raises(apsystems.EcuFrameError):
        ecu.decode_any(b"APS" + raw if raw[:1] == b"X" else raw)


@fuzz_settings(300)
@given(raw=damaged(GIV))
def test_giv_frames_raise_frame_error_only(raw: bytes) -> None:
    for from_dongle in (True, False):
        try:
            giv.decode(raw, from_dongle=from_dongle)
        except giv.FrameError as exc:
            assert str(exc)


@fuzz_settings(150)
@given(stream=st.lists(damaged(GIV), min_size=1, max_size=6), sizes=st.lists(st.integers(1, 400), max_size=4))
def test_giv_stream_reassembly_never_raises_and_stays_bounded(stream: list[bytes], sizes: list[int]) -> None:
    frames = giv.FrameStream()
    for chunk in chunks(b"".join(stream), sizes):
        for item, _raw in frames.feed(chunk):
            assert isinstance(item, giv.FrameError) or item is not None
        assert frames.pending <= frames.max_buffer + 400


@pytest.mark.parametrize("name", regmap.available())
@fuzz_settings(60)
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=60, max_size=60))
def test_giv_register_maps_decode_any_register_values(name: str, words: list[int]) -> None:
    rmap = regmap.load(name)
    cache = regmap.RegisterCache()
    for block in rmap.blocks:
        cache.update(block.bank, block.base, words[: block.count])
    for key, value in rmap.decode(cache).items():
        assert value is None or isinstance(value, int | float | str | bool), key


SUNSPEC_MODELS = [1, 101, 103, 113, 123, 124, 160, 201, 203, 213, 802]


@st.composite
def sunspec_block(draw: st.DrawFn) -> tuple[int, list[int]]:
    mid = draw(st.sampled_from(SUNSPEC_MODELS))
    length = model_def(mid).fixed_length + draw(st.sampled_from([0, 0, 0, -3, 7, 40]))
    body = draw(st.lists(st.integers(0, 0xFFFF), min_size=max(0, length), max_size=max(0, length)))
    # Unimplemented markers (0xFFFF, 0x8000) are what real devices send for missing values.
    markers = st.sampled_from([0xFFFF, 0x8000, 0x7FFF, 0])
    specials = draw(st.lists(st.tuples(st.integers(0, max(0, length - 1)), markers), max_size=8))
    for index, value in specials:
        if index < len(body):
            body[index] = value
    return mid, [mid, max(0, length), *body]


@fuzz_settings(250)
@given(blocks=st.lists(sunspec_block(), min_size=1, max_size=4))
def test_sunspec_decode_and_mapping(blocks: list[tuple[int, list[int]]]) -> None:
    decoded = [decode_model(model_def(mid), 40000 + 100 * i, regs) for i, (mid, regs) in enumerate(blocks)]
    for model in decoded:
        assert all(isinstance(e, str) and e for e in model.errors)
    common: dict[str, Any] = next((d.values for d in decoded if d.model_id == 1), {})
    # poll_forever() counts ValueError/KeyError/IndexError as garbage; anything else ends the loop.
    try:
        dev_id = mapping.device_id(common, "127.0.0.1-502-1")
        out = mapping.readings(dev_id, NOW, decoded)
    except (ValueError, KeyError, IndexError):
        return
    on_the_bus([r for r in (out.main, out.battery, *out.strings) if r is not None])


@fuzz_settings(300)
@given(doc=damaged_doc(GOE, "response"), api=st.sampled_from(["v1", "v2"]))
def test_goe_status_raises_response_rejected_only(doc: dict[str, Any], api: Any) -> None:
    try:
        identity(doc, api, "http://goe/api/status")  # the bridge turns its refusal into ResponseRejected
        reading = decode_status(doc, api, "goe-1", NOW, "http://goe/api/status")
    except (ResponseRejected, GoeIdentityError) as exc:
        assert "http://goe/api/status" in str(exc)
        return
    on_the_bus([reading])


@fuzz_settings(300)
@given(rec=st.sampled_from(SHELLY), data=st.data())
def test_shelly_status_raises_response_rejected_only(rec: dict[str, Any], data: st.DataObject) -> None:
    info = parse_info(rec["info"], "http://shelly/shelly")
    doc = data.draw(damaged_doc([rec], "response"))
    decode = decode_gen1 if info.gen == 1 else decode_gen2
    try:
        readings = decode(doc, info, NOW, "http://shelly/status")
    except ResponseRejected as exc:
        assert "http://shelly/status" in str(exc)
        return
    on_the_bus(readings)


@fuzz_settings(200)
@given(doc=damaged_doc(SHELLY, "info") | st.dictionaries(st.text(max_size=5), JSON_ANY, max_size=6))
def test_shelly_identity_raises_its_identity_error_only(doc: dict[str, Any]) -> None:
    try:
        info = parse_info(doc, "http://shelly/shelly")
    except ShellyIdentityError:  # the bridge's detect turns it into ResponseRejected
        return
    info.relay_id()
    info.meter_id(0)
