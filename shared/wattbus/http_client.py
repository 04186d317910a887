"""A small asyncio HTTP/1.1 client (RFC 9112) for devices and databases on the LAN.

Why not aiohttp: importing it costs ~9 MB RSS per process (and it loads OpenSSL), and the services
only need plain requests to one device or database. This client keeps idle keep-alive connections
per host, bounds every request by one total timeout and every response by a size cap, and turns
every failure (refused, timeout, garbage from a broken device) into one `HttpError` naming the
method, the URL and what went wrong. `ssl` is imported only when an https URL is used.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import socket
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .http_auth import AuthError, BasicAuth, DigestAuth

if TYPE_CHECKING:
    import ssl

__all__ = ["DEFAULT_MAX_BODY", "BasicAuth", "DigestAuth", "Headers", "HttpClient", "HttpError", "HttpResponse",
           "HttpTimeout"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
MAX_HEAD = 64 * 1024  # status line + header section (and one chunk-size line)
MAX_FIELDS = 100
_STATUS = re.compile(rb"HTTP/(\d)\.(\d) ([1-9]\d\d)(?: (.*))?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() would accept "²"
_UNSET: Any = object()
Auth = BasicAuth | DigestAuth


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
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ValueError(f"{self.method} {self.url}: answer is not JSON ({exc})") from None


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    host_header: str
    path: str  # request-target: path and query


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} (http or https)")
    host = parts.hostname
    if not host:
        raise ValueError("URL without a host")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default  # .port raises ValueError for a bad port
    shown = f"[{host}]" if ":" in host else host
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return _Target(parts.scheme, host, port, shown if port == default else f"{shown}:{port}", path)


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(Exception):
    """The server closed a connection before sending any byte of the response."""


class HttpClient:
    """HTTP/1.1 to one device or database (any URL works; idle connections are kept per host).

    `base_url` lets requests name only a path. No state is shared between clients.
    """

    def __init__(self, base_url: str | None = None, *, timeout_s: float = 10.0, auth: Auth | None = None,
                 headers: Mapping[str, str] | None = None, max_idle_per_host: int = 2,
                 max_body_bytes: int = DEFAULT_MAX_BODY, idle_timeout_s: float = 15.0,
                 verify_tls: bool = True) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = timeout_s
        self.auth = auth
        self.headers = {"User-Agent": "wattbus", "Accept": "*/*", **(headers or {})}
        self.max_idle_per_host = max_idle_per_host
        self.max_body_bytes = max_body_bytes
        # Idle connections older than this are dropped instead of reused: servers close theirs
        # after a while, and sending into that race costs a retry (or, mid-send, an error).
        self.idle_timeout_s = idle_timeout_s
        self.verify_tls = verify_tls
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def idle_connections(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    async def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("POST", url, **kwargs)

    async def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None, body: bytes | str | None = None,
                      json: Any = None, form: Mapping[str, str] | None = None, timeout_s: float | None = None,
                      auth: Auth | None = _UNSET) -> HttpResponse:
        """One request; `json`/`form` encode the body. Raises HttpError (HttpTimeout on timeout)."""
        method = method.upper()
        if url.startswith("/") and self.base_url:
            url = self.base_url + url
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        shown = _without_userinfo(url)
        where = f"{method} {shown}"
        try:
            target = _parse_url(url)
            send = self._request_headers(headers)
            payload: bytes | None = body.encode() if isinstance(body, str) else body
            if json is not None:
                payload = jsonlib.dumps(json, separators=(",", ":")).encode()
                send.setdefault("content-type", ("Content-Type", "application/json"))
            elif form is not None:
                payload = urlencode(form).encode()
                send.setdefault("content-type", ("Content-Type", "application/x-www-form-urlencoded"))
            if payload is not None or method in ("POST", "PUT", "PATCH"):
                send["content-length"] = ("Content-Length", str(len(payload or b"")))
        except (ValueError, TypeError) as exc:
            raise HttpError(f"{where}: bad request: {exc}") from None
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._authorised(method, target, send, payload, where,
                                              self.auth if auth is _UNSET else auth, shown)
        except HttpError:
            raise
        except TimeoutError:
            raise HttpTimeout(f"{where}: no response within {limit:g} s") from None

    def _request_headers(self, extra: Mapping[str, str] | None) -> dict[str, tuple[str, str]]:
        send: dict[str, tuple[str, str]] = {}
        for name, value in {**self.headers, **(extra or {})}.items():
            if not _FIELD_NAME.fullmatch(name.encode()) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} is not a valid field")
            send[name.lower()] = (name, value)
        return send

    async def _authorised(self, method: str, target: _Target, send: dict[str, tuple[str, str]],
                          payload: bytes | None, where: str, auth: Auth | None, shown: str) -> HttpResponse:
        """The exchange with Basic credentials, or Digest answered (once) after a 401 challenge."""
        sent_digest = False
        if isinstance(auth, BasicAuth):
            send["authorization"] = ("Authorization", auth.header())
        elif isinstance(auth, DigestAuth):
            value = auth.header(method, target.path)
            if value is not None:
                send["authorization"] = ("Authorization", value)
                sent_digest = True
        resp = await self._exchange(method, target, send, payload, where, shown)
        if resp.status != 401 or not isinstance(auth, DigestAuth):
            return resp
        try:
            retry = auth.accept(resp.headers.get_all("WWW-Authenticate"), sent_digest)
            value = auth.header(method, target.path) if retry else None
        except AuthError as exc:
            raise HttpError(f"{where}: cannot answer the digest challenge: {exc}") from None
        if value is None:
            return resp
        send["authorization"] = ("Authorization", value)
        return await self._exchange(method, target, send, payload, where, shown)

    async def _exchange(self, method: str, target: _Target, send: dict[str, tuple[str, str]],
                        payload: bytes | None, where: str, shown: str) -> HttpResponse:
        lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
        lines += [f"{name}: {value}" for name, value in send.values()]
        try:
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b"")
        except UnicodeEncodeError as exc:
            raise HttpError(f"{where}: header not encodable as ISO-8859-1: {exc}") from None
        key = (target.scheme, target.host, target.port)
        for attempt in (0, 1):
            conn = self._take_idle(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target, where)
            done = False
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                resp, keep = await _ResponseReader(conn.reader, where, self.max_body_bytes).read(method, shown)
                done = True
            except _StaleConnection:
                if reused:
                    continue  # the server closed the idle keep-alive connection: once more on a new one
                raise HttpError(f"{where}: connection closed by the server without a response") from None
            except HttpError:
                raise
            except OSError as exc:  # reset, broken pipe, TLS errors while sending or receiving
                if reused and isinstance(exc, ConnectionError):
                    continue
                raise HttpError(f"{where}: connection lost: {exc.strerror or exc}") from None
            finally:
                if not done:
                    conn.close()
            self._release(key, conn, keep)
            return resp
        raise HttpError(f"{where}: connection closed by the server without a response")

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(key, [])
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.usable() and now - conn.idle_since < self.idle_timeout_s:
                return conn
            conn.close()
        if not conns:
            self._idle.pop(key, None)  # no entry kept per host once its connections are gone
        return None

    def _release(self, key: tuple[str, str, int], conn: _Connection, keep: bool) -> None:
        conns = self._idle.get(key, [])
        if keep and not self._closed and len(conns) < self.max_idle_per_host and conn.usable():
            conn.idle_since = time.monotonic()
            self._idle[key] = [*conns, conn]
        else:
            conn.close()

    async def _connect(self, target: _Target, where: str) -> _Connection:
        tls = self._tls_context(where) if target.scheme == "https" else None
        address = f"{target.host}:{target.port}"
        try:
            reader, writer = await asyncio.open_connection(
                target.host, target.port, ssl=tls, server_hostname=target.host if tls else None, limit=MAX_HEAD)
        except ConnectionRefusedError:
            raise HttpError(f"{where}: connection refused by {address}") from None
        except socket.gaierror as exc:
            raise HttpError(f"{where}: cannot resolve {target.host}: {exc.strerror or exc}") from None
        except OSError as exc:  # unreachable, TLS handshake (ssl.SSLError is an OSError), ...
            raise HttpError(f"{where}: cannot connect to {address}: {exc.strerror or exc}") from None
        return _Connection(reader, writer)

    def _tls_context(self, where: str) -> ssl.SSLContext:
        if self._tls is None:
            try:
                import ssl  # only here: a plain-HTTP process never loads OpenSSL
            except ImportError as exc:
                raise HttpError(f"{where}: https needs Python's ssl module, which cannot be imported "
                                f"in this process ({exc})") from None
            context = ssl.create_default_context()
            if not self.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class _ResponseReader:
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
                raise _StaleConnection from None
            raise self._error(f"connection closed in the {what}") from None
        except asyncio.LimitOverrunError:
            raise self._error(f"{what} longer than {MAX_HEAD} bytes") from None
        except ConnectionResetError:
            if first:
                raise _StaleConnection from None
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
            if not colon or not _FIELD_NAME.fullmatch(name):
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
        wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, detected
        try:
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(body, self.max_body + 1)
        except zlib.error as exc:
            if encoding != "deflate":
                raise self._error(f"{encoding} body does not decompress: {exc}") from None
            try:  # servers that send raw deflate without the zlib header
                inflater = zlib.decompressobj(-15)
                out = inflater.decompress(body, self.max_body + 1)
            except zlib.error as raw_exc:
                raise self._error(f"deflate body does not decompress: {raw_exc}") from None
        if len(out) > self.max_body or inflater.unconsumed_tail:
            raise self._error(f"{encoding} response body decompresses to more than the limit of {self.max_body} bytes")
        return out
