"""HTTP/1.1 responses off the wire (RFC 9112) for `wattbus.http_client`.

Built for what embedded web servers really send: bare-LF lines, folded header lines, interim 1xx
responses, chunk extensions and trailers, bodies that run to the close, and garbage. Every
malformed piece, and a body over the size cap, becomes an HttpError naming the request.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_HEAD = 64 * 1024  # status line + header section (and one chunk-size line)
MAX_FIELDS = 100
_STATUS = re.compile(rb"HTTP/(\d)\.(\d) ([1-9]\d\d)(?: (.*))?")
FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() would accept "²"


class HttpError(OSError):
    """A request failed; the message names the method, the URL and what went wrong."""


class HttpTimeout(HttpError, TimeoutError):
    """No complete response within the request's total timeout."""


class Headers(Mapping[str, str]):
    """Header fields, case-insensitive; repeated fields joined with ", " (RFC 9110 5.3)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self.fields = fields
        self._joined: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            self._joined[key] = f"{self._joined[key]}, {value}" if key in self._joined else value

    def __getitem__(self, name: str) -> str:
        return self._joined[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._joined)

    def __len__(self) -> int:
        return len(self._joined)

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key.lower() == name.lower()]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    method: str
    url: str
    status: int
    reason: str
    headers: Headers
    body: bytes = field(repr=False)

    def text(self, errors: str = "strict") -> str:
        """The body decoded with the Content-Type charset (UTF-8 when none or unknown)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors)
        except LookupError:
            return self.body.decode("utf-8", errors)

    def json(self) -> Any:
        """The body as JSON; ValueError (naming the URL) when it is not."""
        try:
            return jsonlib.loads(self.body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
            raise ValueError(f"{self.method} {self.url}: answer is not JSON ({type(exc).__name__})") from None


class StaleConnection(Exception):
    """The server closed a connection before sending any byte of the response."""


class ResponseReader:
    """Reads one response off a connection; every malformed piece becomes an HttpError."""

    def __init__(self, reader: asyncio.StreamReader, where: str, max_body: int) -> None:
        self.reader, self.where, self.max_body = reader, where, max_body

    def _error(self, what: str) -> HttpError:
        return HttpError(f"{self.where}: {what}")

    async def _line(self, what: str, first: bool = False) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise StaleConnection from None
            raise self._error(f"connection closed in the {what}") from None
        except asyncio.LimitOverrunError:
            raise self._error(f"{what} longer than {MAX_HEAD} bytes") from None
        except ConnectionResetError:
            if first:
                raise StaleConnection from None
            raise
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    async def read(self, method: str, url: str) -> tuple[HttpResponse, bool]:
        """The response and whether its connection may be reused."""
        first = True
        while True:
            line = await self._line("status line", first)
            first = False
            match = _STATUS.fullmatch(line)
            if match is None:
                raise self._error(f"malformed status line {line[:80]!r}")
            fields = await self._fields("header section")
            status = int(match[3])
            if status >= 200 or status == 101:
                break  # 1xx interim responses (100 Continue, 103 Early Hints) precede the real one
        version = (int(match[1]), int(match[2]))
        headers = Headers(fields)
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in tokens if version >= (1, 1) else "keep-alive" in tokens
        keep = keep and status != 101  # 101 Switching Protocols: the connection is no longer HTTP
        body = b""
        if method == "HEAD" or status < 200 or status in (204, 304):
            pass
        elif "transfer-encoding" in headers:
            chunked = headers["transfer-encoding"].rsplit(",", 1)[-1].strip().lower() == "chunked"
            body = await self._chunked() if chunked else await self._to_close()
            keep = keep and chunked and "content-length" not in headers
        elif "content-length" in headers:
            body = await self._sized(headers["content-length"])
        else:
            body, keep = await self._to_close(), False
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if body and encoding in ("gzip", "x-gzip", "deflate"):
            body = self._decompress(body, encoding)
        return HttpResponse(method, url, status, (match[4] or b"").decode("latin-1"), headers, body), keep

    async def _fields(self, what: str) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        size = 0
        while line := await self._line(what):
            size += len(line)
            if len(fields) >= MAX_FIELDS or size > MAX_HEAD:
                raise self._error(f"{what} larger than {MAX_FIELDS} fields / {MAX_HEAD} bytes")
            if line[:1] in (b" ", b"\t") and fields:  # obsolete line folding (RFC 9112 5.2)
                folded_name, folded = fields[-1]
                fields[-1] = (folded_name, f"{folded} {line.strip().decode('latin-1')}")
                continue
            name, colon, value = line.partition(b":")
            if not colon or not FIELD_NAME.fullmatch(name):
                raise self._error(f"malformed header line {line[:80]!r}")
            fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
        return fields

    def _too_large(self, size: int | str) -> HttpError:
        return self._error(f"response body of {size} bytes exceeds the limit of {self.max_body} bytes")

    async def _sized(self, value: str) -> bytes:
        values = {v.strip() for v in value.split(",")}  # repeated identical fields are allowed
        if len(values) != 1 or not _DIGITS.fullmatch(length := values.pop()):
            raise self._error(f"malformed Content-Length {value[:40]!r}")
        if int(length) > self.max_body:
            raise self._too_large(length)
        try:
            return await self.reader.readexactly(int(length))
        except asyncio.IncompleteReadError as exc:
            raise self._error(f"connection closed after {len(exc.partial)} of {length} body bytes") from None

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await self._line("chunk size line")
            size_text = line.split(b";", 1)[0].strip(b" \t")  # chunk extensions are ignored
            if not _HEX.fullmatch(size_text):
                raise self._error(f"malformed chunk size line {line[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise self._too_large(f"more than {total - size}")
            try:
                parts.append(await self.reader.readexactly(size))
            except asyncio.IncompleteReadError as exc:
                raise self._error(f"connection closed after {len(exc.partial)} of a {size}-byte chunk") from None
            if await self._line("chunk end"):
                raise self._error(f"chunk of {size} bytes not followed by CRLF")
        await self._fields("trailer section")
        return b"".join(parts)

    async def _to_close(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while chunk := await self.reader.read(65536):
            total += len(chunk)
            if total > self.max_body:
                raise self._too_large(f"more than {self.max_body}")
            parts.append(chunk)
        return b"".join(parts)

    def _decompress(self, body: bytes, encoding: str) -> bytes:
        inflater = zlib.decompressobj(47)  # 32 + 15: a gzip or a zlib ("deflate") header, detected
        try:
            out = inflater.decompress(body, self.max_body + 1)
        except zlib.error as exc:
            raise self._error(f"{encoding} body does not decompress: {exc}") from None
        if len(out) > self.max_body or inflater.unconsumed_tail:
            raise self._error(f"{encoding} response body decompresses to more than the limit of {self.max_body} bytes")
        if not inflater.eof:
            raise self._error(f"{encoding} body is truncated")
        return out
