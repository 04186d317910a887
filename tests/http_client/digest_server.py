"""The server side of HTTP Digest (RFC 7616), written independently of the client under test: it
issues challenges, recomputes the expected response from its own copy of the password and
answers 200 only when they match, with a nonce count that only ever increases."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field

from .rawserver import RawServer

_PARAM = re.compile(r'([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')
HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def auth_params(header: str) -> dict[str, str]:
    return {k.lower(): (v[1:-1].replace('\\"', '"').replace("\\\\", "\\") if v.startswith('"') else v)
            for k, v in _PARAM.findall(header)}


@dataclass
class DigestServer:
    password: str
    algorithm: str = "SHA-256"
    qop: str | None = "auth"
    realm: str = "shellyplus1pm-a8032ab12345"  # Shelly Gen2: realm = device id
    # The WWW-Authenticate fields of a 401; None: one challenge for self.algorithm
    challenges: list[str] | None = None
    rotate_after: int = 0  # >0: the nonce goes stale after that many successful uses
    nonce: str = "60dc59c6"
    unauthorized: int = 0
    accepted_nc: list[str] = field(default_factory=list)
    uses: int = 0
    server: RawServer | None = None

    def challenge(self, stale: bool = False) -> list[str]:
        if self.challenges is not None:
            return [c.replace("{nonce}", self.nonce) for c in self.challenges]
        qop = f', qop="{self.qop}"' if self.qop else ""
        return [f'Digest realm="{self.realm}"{qop}, nonce="{self.nonce}", algorithm={self.algorithm}, '
                f'opaque="xyz"{", stale=true" if stale else ""}']

    def valid(self, method: str, header: str) -> bool:
        if not header.startswith("Digest "):
            return False
        p = auth_params(header[7:])
        algorithm = p.get("algorithm", "MD5")
        base = algorithm.upper().removesuffix("-SESS")
        h = HASH[base]

        def hx(text: str) -> str:
            return h(text.encode()).hexdigest()

        if p.get("nonce") != self.nonce or p.get("username") != "admin" or p.get("realm") != self.realm:
            return False
        ha1 = hx(f"admin:{self.realm}:{self.password}")
        if algorithm.upper().endswith("-SESS"):
            ha1 = hx(f"{ha1}:{p['nonce']}:{p['cnonce']}")
        ha2 = hx(f"{method}:{p['uri']}")
        if "qop" in p:
            if p["qop"] != "auth" or (self.accepted_nc and int(p["nc"], 16) <= int(self.accepted_nc[-1], 16)):
                return False
            expected = hx(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        else:
            expected = hx(f"{ha1}:{p['nonce']}:{ha2}")
        if p.get("response") != expected:
            return False
        self.accepted_nc.append(p.get("nc", "-"))
        return True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.server is not None
        while True:
            line, fields, _body = await self.server.read_request(reader)
            method = line.split(b" ")[0].decode()
            if self.valid(method, fields.get("authorization", "")):
                self.uses += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                             b'{"ok":true}')
                if self.rotate_after and self.uses % self.rotate_after == 0:
                    self.nonce = f"{self.nonce}x"
                    self.accepted_nc.clear()
            else:
                self.unauthorized += 1
                stale = bool(self.rotate_after) and "authorization" in fields
                head = "".join(f"WWW-Authenticate: {c}\r\n" for c in self.challenge(stale))
                writer.write(f"HTTP/1.1 401 Unauthorized\r\n{head}Content-Length: 0\r\n\r\n".encode())
            await writer.drain()
