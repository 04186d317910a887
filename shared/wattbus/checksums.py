"""Checksums of the device protocols that more than one service speaks (bridge and discovery)."""

from __future__ import annotations


def _crc16_reflected_a001(data: bytes, crc: int) -> int:
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected 0x8005, init 0xFFFF): Modbus RTU and GivEnergy's transparent frames."""
    return _crc16_reflected_a001(data, 0xFFFF)


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (reflected 0x8005, init 0): DSMR 4/5 P1 telegrams."""
    return _crc16_reflected_a001(data, 0)
