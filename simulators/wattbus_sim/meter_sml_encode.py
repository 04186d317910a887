"""SML transport v1 and message encoding for the meter simulator (TL fields, CRC-16/X25)."""

from __future__ import annotations

from smllib.crc import x25

ESC = b"\x1b\x1b\x1b\x1b"


def _tl(kind: int, payload_len: int) -> bytes:
    size = payload_len + 1
    if size <= 15:
        return bytes([kind | size])
    size += 1  # two TL bytes
    return bytes([0x80 | kind | (size >> 4), size & 0x0F])


def octets(data: bytes) -> bytes:
    return _tl(0x00, len(data)) + data


def unsigned(value: int, width: int) -> bytes:
    return bytes([0x60 | (width + 1)]) + value.to_bytes(width, "big")


def signed(value: int, width: int) -> bytes:
    return bytes([0x50 | (width + 1)]) + value.to_bytes(width, "big", signed=True)


def lst(*items: bytes) -> bytes:
    return bytes([0x70 | len(items)]) + b"".join(items)


NONE = b"\x01"


def message(transaction: int, tag: int, body: bytes) -> bytes:
    head = octets(transaction.to_bytes(4, "big")) + unsigned(0, 1) + unsigned(0, 1) + lst(unsigned(tag, 2), body)
    without_crc = b"\x76" + head
    crc = x25.get_crc(without_crc)  # message CRC over the message up to the CRC field
    return without_crc + b"\x63" + crc.to_bytes(2, "big") + b"\x00"


def entry(obis: bytes, value: bytes, unit: int | None = None, scaler: int | None = None,
          status: bytes = NONE) -> bytes:
    return lst(octets(obis), status, NONE, unsigned(unit, 1) if unit is not None else NONE,
               signed(scaler, 1) if scaler is not None else NONE, value, NONE)


def transport(payload: bytes) -> bytes:
    """Wrap SML messages: escape 1b1b1b1b, pad to 4 bytes, end sequence, CRC-16/X25."""
    body = payload.replace(ESC, ESC + ESC)
    fill = (4 - len(body) % 4) % 4
    frame = ESC + b"\x01\x01\x01\x01" + body + b"\x00" * fill + ESC + bytes([0x1A, fill])
    crc = x25.get_crc(frame)  # smllib returns it byte-swapped: big-endian bytes are the wire order
    return frame + crc.to_bytes(2, "big")


def main(argv: list[str] | None = None) -> int:
    """`wattbus-sim meter_sml_encode`: print one simulated SML frame as hex."""
    from wattbus_sim.sml import MeterState, sml_frame

    print(sml_frame(MeterState()).hex())
    return 0
