"""The few MQTT 5 packets the writer's ingest connection needs, encoded and parsed by hand.

Packet layouts from the MQTT 5.0 standard (OASIS, 2019): a fixed header byte (type << 4 | flags),
the remaining length as a variable byte integer, then the variable header and payload. Only what
a receive-only QoS 1 subscriber exchanges is here: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH in,
PUBACK out, PINGREQ/PINGRESP, DISCONNECT. `split_packets` cuts a received byte stream into
packets without copying the payloads more than once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # normal disconnection: the will is not sent, the session stays
MAX_REMAINING_LENGTH = 268_435_455

# CONNACK / SUBACK / DISCONNECT reason codes a person may meet, for the log line.
REASONS = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error", 0x83: "implementation specific error",
    0x84: "unsupported protocol version", 0x85: "client identifier not valid", 0x86: "bad user name or password",
    0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
    0x8B: "server shutting down", 0x8C: "bad authentication method", 0x8D: "keep alive timeout",
    0x8E: "session taken over", 0x8F: "topic filter invalid", 0x93: "receive maximum exceeded",
    0x95: "packet too large", 0x97: "quota exceeded", 0x9E: "shared subscriptions not supported",
    0xA1: "subscription identifiers not supported", 0xA2: "wildcard subscriptions not supported",
}

# Property identifier -> how its value is laid out (needed to skip the ones we do not read).
_BYTE, _TWO, _FOUR, _VARINT, _STRING, _PAIR = "b", "2", "4", "v", "s", "p"
_PROPERTY_KINDS = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _STRING, 0x0B: _VARINT, 0x11: _FOUR,
    0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _STRING, 0x17: _BYTE, 0x18: _FOUR, 0x19: _BYTE,
    0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO, 0x22: _TWO, 0x23: _TWO, 0x24: _BYTE,
    0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
SERVER_KEEP_ALIVE, REASON_STRING, RECEIVE_MAXIMUM, ASSIGNED_CLIENT_ID = 0x13, 0x1F, 0x21, 0x12


class ProtocolError(Exception):
    """The broker sent bytes that are not the MQTT 5 this client speaks; the connection is dropped."""


def reason_text(code: int) -> str:
    return REASONS.get(code, f"reason 0x{code:02x}")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it). Raises IndexError when the bytes end inside the number."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + varint(len(body)) + body


def connect(client_id: str, keepalive_s: int, *, username: str | None, password: str | None,
            clean_start: bool, session_expiry_s: int, receive_maximum: int) -> bytes:
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0) | (0x02 if clean_start else 0)
    props = b"\x11" + struct.pack("!I", session_expiry_s) + b"\x21" + struct.pack("!H", receive_maximum)
    body = _string("MQTT") + bytes((5, flags)) + struct.pack("!H", keepalive_s) + varint(len(props)) + props
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def subscribe(packet_id: int, filters: list[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + b"".join(_string(f) + bytes((qos,)) for f in filters)
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def unsubscribe(packet_id: int, filters: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + b"".join(_string(f) for f in filters)
    return _packet(UNSUBSCRIBE << 4 | 0x02, body)


def disconnect_ending_session() -> bytes:
    """DISCONNECT (normal) with Session Expiry Interval 0: the broker deletes our session, so no
    reading can be queued for a writer that is not coming back."""
    props = b"\x11" + struct.pack("!I", 0)
    return _packet(DISCONNECT << 4, b"\x00" + varint(len(props)) + props)


def puback(packet_id: int) -> bytes:
    """Reason 0 (success) with no properties may be left out: 4 bytes per acknowledgement."""
    return struct.pack("!BBH", PUBACK << 4, 2, packet_id)


def pubcomp(packet_id: int) -> bytes:
    return struct.pack("!BBH", PUBCOMP << 4, 2, packet_id)


def properties(data: bytes, pos: int) -> tuple[dict[int, int | str], int]:
    """Parse a property block at pos: ({identifier: value} for numbers and strings, end position)."""
    length, pos = read_varint(data, pos)
    end = pos + length
    found: dict[int, int | str] = {}
    try:
        while pos < end:
            ident = data[pos]
            kind = _PROPERTY_KINDS.get(ident)
            pos += 1
            if kind is None:
                raise ProtocolError(f"unknown property 0x{ident:02x}")
            if kind == _BYTE:
                found[ident] = data[pos]
                pos += 1
            elif kind == _TWO:
                found[ident] = struct.unpack_from("!H", data, pos)[0]
                pos += 2
            elif kind == _FOUR:
                found[ident] = struct.unpack_from("!I", data, pos)[0]
                pos += 4
            elif kind == _VARINT:
                found[ident], pos = read_varint(data, pos)
            else:
                for _ in range(2 if kind == _PAIR else 1):
                    size = struct.unpack_from("!H", data, pos)[0]
                    found[ident] = bytes(data[pos + 2:pos + 2 + size]).decode(errors="replace")
                    pos += 2 + size
    except (IndexError, struct.error) as exc:
        raise ProtocolError(f"property block cut short ({exc})") from exc
    if pos != end:
        raise ProtocolError("property block longer than announced")
    return found, end


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason: int
    props: dict[int, int | str]


def parse_connack(body: bytes) -> ConnAck:
    if len(body) < 2:
        raise ProtocolError(f"CONNACK of {len(body)} bytes")
    props, _end = properties(body, 2) if len(body) > 2 else ({}, 2)
    return ConnAck(bool(body[0] & 1), body[1], props)


def parse_suback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, one reason code per filter: 0/1/2 = granted QoS, >= 0x80 = refused)."""
    if len(body) < 3:
        raise ProtocolError(f"SUBACK of {len(body)} bytes")
    packet_id = struct.unpack_from("!H", body, 0)[0]
    _props, pos = properties(body, 2)
    return packet_id, list(body[pos:])


def parse_unsuback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, one reason code per filter: 0 = removed, 0x11 = there was none, >= 0x80 = refused)."""
    return parse_suback(body)


def parse_disconnect(body: bytes) -> tuple[int, str]:
    """(reason code, the broker's reason string if it sent one)."""
    if not body:
        return 0, ""
    props, _end = properties(body, 1) if len(body) > 1 else ({}, 1)
    return body[0], str(props.get(REASON_STRING, ""))


def split_packets(data: bytes, max_packet: int) -> tuple[list[tuple[int, bytes]], int]:
    """Whole packets at the start of data as (first byte, body), and the bytes they took.

    A packet still arriving stays for the next call; one over max_packet is a ProtocolError
    (we never announce a larger Maximum Packet Size than the broker is allowed to send)."""
    out: list[tuple[int, bytes]] = []
    pos, size = 0, len(data)
    while pos + 2 <= size:
        first = data[pos]
        length = data[pos + 1]
        head = pos + 2
        if length >= 0x80:  # more length bytes follow (messages over 127 bytes)
            try:
                length, head = read_varint(data, pos + 1)
            except IndexError:
                break
        if length > max_packet:
            raise ProtocolError(f"packet of {length} bytes announced (limit {max_packet})")
        end = head + length
        if end > size:
            break
        out.append((first, data[head:end]))
        pos = end
    return out, pos


def iter_publishes(packets: list[tuple[int, bytes]]) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(qos, packet id or 0, topic bytes, payload) for every PUBLISH among packets."""
    for first, body in packets:
        if first >> 4 != PUBLISH:
            continue
        qos = (first >> 1) & 3
        topic_len = (body[0] << 8) | body[1]
        pos = 2 + topic_len
        packet_id = 0
        if qos:
            packet_id = (body[pos] << 8) | body[pos + 1]
            pos += 2
        props = body[pos]
        if props < 0x80:  # the usual case: a short (often empty) property block
            pos += 1 + props
        else:
            props, pos = read_varint(body, pos)
            pos += props
        yield qos, packet_id, body[2:2 + topic_len], body[pos:]
