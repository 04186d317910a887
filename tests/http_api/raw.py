"""Requests as an attacker sends them: any Host, Origin or Content-Type, from another loopback address.

Linux answers on all of 127.0.0.0/8, so a client bound to 127.0.0.2 is "another machine" for an
http-api that trusts only 127.0.0.1/32.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

OTHER = "127.0.0.2"  # a client outside trusted_networks = ["127.0.0.1/32"]


@dataclass
class Answer:
    status: int
    doc: Any
    headers: dict[str, str]

    @property
    def error(self) -> str:
        return str(self.doc.get("error", "")) if isinstance(self.doc, dict) else ""


def send(port: int, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, token: str | None = None, source: str = "127.0.0.1",
         conn: http.client.HTTPConnection | None = None) -> Answer:
    """One request; Host defaults to 127.0.0.1:<port> and Content-Type to JSON when there is a body."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    given = dict(headers or {})
    if data is not None and "Content-Type" not in given:
        given["Content-Type"] = "application/json"
    if token is not None:
        given["Authorization"] = f"Bearer {token}"
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", given.pop("Host", f"127.0.0.1:{port}"))
        for name, value in given.items():
            conn.putheader(name, value)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        text = resp.read()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text.decode(errors="replace")
        return Answer(resp.status, doc, dict(resp.getheaders()))
    finally:
        if own:
            conn.close()
