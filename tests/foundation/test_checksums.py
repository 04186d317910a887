"""The shared protocol checksums against the catalogue's check values ("123456789")."""

from wattbus.checksums import crc16_arc, crc16_modbus


def test_check_values() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_arc(b"123456789") == 0xBB3D


def test_modbus_frame_with_its_crc_appended_checks_to_zero() -> None:
    frame = bytes.fromhex("1103006b0003")
    crc = crc16_modbus(frame)
    assert crc16_modbus(frame + crc.to_bytes(2, "little")) == 0
