"""wattbus.apsystems: the one home of the ECU's framing and identity, shared by ecu-bridge and discovery.

Discovery had its own info parser that had drifted from the bridge's: it named the model from the
firmware string (`ECU_R_...` -> ECU-R, an ECU-C's `C1.2.5` -> nothing) where the bridge names it
from the ECU id prefix, and it accepted info answers the bridge refuses (no firmware field, an
unknown layout), so it announced ECUs the bridge then could not poll.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aps2mqtt.apsystems.APSystemsSocket import APSystemsSocket
from wattbus import apsystems

DATA = Path(__file__).parents[1] / "ecu_bridge" / "data"


def load(name: str) -> bytes:
    return apsystems.parse_hex_or_raw((DATA / name).read_bytes())


def relength(data: bytes) -> bytes:
    return data[:5] + f"{len(data) - 1:04d}".encode() + data[9:]


@pytest.mark.parametrize(("ecu_id", "model", "restart"), [
    ("215000003925", "ECU-C", True), ("216200123456", "ECU-R (SunSpec)", True), ("216000123456", "ECU-R", False),
    ("216300654321", "ECU-B", False), ("999900000001", "ECU", False),
])
def test_model_and_restart_from_the_ecu_id(ecu_id: str, model: str, restart: bool) -> None:
    assert apsystems.ecu_model(ecu_id) == (model, restart)


def test_an_ecu_c_is_named_although_its_firmware_string_does_not_say_so() -> None:
    info = apsystems.decode_info(load("info_ecuc_layout02_night.hex"))
    assert (info.ecu_id, info.firmware, info.model) == ("215000003925", "C1.2.5", "ECU-C")
    assert apsystems.ecu_device_id(info.ecu_id) == "apsystems-ecu-215000003925"


def test_an_info_answer_without_its_firmware_field_is_cut_short_not_an_older_ecu() -> None:
    """Discovery took it as an ECU with unknown firmware; the bridge refuses it, and so does the
    public client (aps2mqtt reads the firmware length unconditionally)."""
    full = load("info_ecur_layout01.hex")
    cut = relength(full[:52] + apsystems.SUFFIX)
    apsystems.validate(cut, apsystems.CMD_INFO)  # a well-formed frame: only its body is short
    with pytest.raises(apsystems.EcuFrameError, match="firmware length"):
        apsystems.decode_info(cut)
    with pytest.raises(ValueError, match="invalid literal"):
        APSystemsSocket("192.0.2.1", raw_ecu=cut).process_ecu_data()
    client = APSystemsSocket("192.0.2.1", raw_ecu=full)
    client.process_ecu_data()
    assert (client.ecu_id, client.firmware) == (apsystems.decode_info(full).ecu_id, "ECU_R_1.2.22")


@pytest.mark.parametrize(("damage", "match"), [
    (lambda raw: raw[:5] + b"0010" + raw[9:], "length field"),
    (lambda raw: raw[:9] + b"0002" + raw[13:], "echoes command 0002"),
    (lambda raw: raw[:13] + b"ABCDEFGHIJKL" + raw[25:], "not 12 digits"),
    (lambda raw: raw[:25] + b"03" + raw[27:], "unknown ECU info layout '03'"),
    (lambda raw: b"XYZ" + raw[3:], "does not start with APS"),
    (lambda raw: raw[:40], "does not end with END"),
])
def test_damaged_or_foreign_info_answers_are_rejected(damage: object, match: str) -> None:
    with pytest.raises(apsystems.EcuFrameError, match=match):
        apsystems.decode_info(damage(load("info_ecur_layout01.hex")))  # type: ignore[operator]


def test_queries_carry_a_valid_ecu_id_only() -> None:
    assert apsystems.info_query() == b"APS1100160001END\n"
    assert apsystems.realtime_query("216000123456") == b"APS1100280002216000123456END\n"
    with pytest.raises(apsystems.EcuFrameError, match="12 digits"):
        apsystems.signal_query("21600012345x")
