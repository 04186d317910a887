"""A bare MQTT 3.1.1 client on a socket, for what a library hides: re-sending a QoS 1 PUBLISH with
the DUP flag and the same packet id after a reconnect, as paho does for a PUBLISH whose PUBACK was
lost when the broker died. Only the packets the duplicate-command tests need."""

from __future__ import annotations

import socket
import struct


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


class RawClient:
    def __init__(self, port: int, user: str, password: str, client_id: str) -> None:
        self.port, self.user, self.password, self.client_id = port, user, password, client_id
        self.sock: socket.socket | None = None

    def connect(self, timeout: float = 10.0) -> int:
        """Connect with a clean session; returns the CONNACK return code (0 = accepted)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        variable = _string("MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + struct.pack("!H", 60)
        payload = _string(self.client_id) + _string(self.user) + _string(self.password)
        body = variable + payload
        sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                raise ConnectionError("broker closed the connection before CONNACK")
            answer += chunk
        if answer[0] != 0x20:
            raise ConnectionError(f"expected CONNACK, got packet type 0x{answer[0]:02x}")
        self.sock = sock
        return answer[3]

    def publish_qos1(self, topic: str, payload: bytes, packet_id: int, dup: bool = False) -> None:
        """Send one QoS 1 PUBLISH; the PUBACK is never read (as if the connection died first)."""
        assert self.sock is not None, "connect() first"
        body = _string(topic) + struct.pack("!H", packet_id) + payload
        self.sock.sendall(bytes([0x32 | (0x08 if dup else 0)]) + _remaining_length(len(body)) + body)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
