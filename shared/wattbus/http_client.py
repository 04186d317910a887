"""A small asyncio HTTP/1.1 client (RFC 9112) for devices and databases on the LAN.

Why not aiohttp: importing it costs ~9 MB RSS per process, for plain requests to one device or
database. Idle keep-alive connections are kept per host; one total timeout bounds each request and
a size cap each response; every failure is one `HttpError` naming the method, the URL and what went
wrong. `ssl` is imported only when an https URL is used.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from .http_auth import AuthError, BasicAuth, DigestAuth
from .http_wire import (
    FIELD_NAME,
    MAX_HEAD,
    Headers,
    HttpError,
    HttpResponse,
    HttpTimeout,
    ResponseReader,
    StaleConnection,
)
from .lean import openssl_kept_out, tls_unavailable

if TYPE_CHECKING:
    import ssl

__all__ = ["DEFAULT_MAX_BODY", "BasicAuth", "DigestAuth", "Headers", "HttpClient", "HttpError", "HttpResponse",
           "HttpTimeout"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
_UNSET: Any = object()
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
Auth = BasicAuth | DigestAuth


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
        for conn in (conn for conns in self._idle.values() for conn in conns):
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
        shown = _USERINFO.sub(r"\1", url)  # credentials in a URL never reach a message or a log
        where = f"{method} {shown}"
        try:
            if params:
                url += ("&" if "?" in url else "?") + urlencode(params)
                shown = _USERINFO.sub(r"\1", url)
                where = f"{method} {shown}"
            if not FIELD_NAME.fullmatch(method.encode()):
                raise ValueError(f"method {method!r} is not a token")
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
            if not FIELD_NAME.fullmatch(name.encode()) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} is not a valid field")
            send[name.lower()] = (name, value)
        return send

    async def _authorised(self, method: str, target: _Target, send: dict[str, tuple[str, str]],
                          payload: bytes | None, where: str, auth: Auth | None, shown: str) -> HttpResponse:
        """The exchange with Basic credentials, or Digest answered (once) after a 401 challenge."""
        value = auth.header(method, target.path) if auth is not None else None  # Digest: once challenged
        if value is not None:
            send["authorization"] = ("Authorization", value)
        resp = await self._exchange(method, target, send, payload, where, shown)
        if resp.status != 401 or not isinstance(auth, DigestAuth):
            return resp
        try:
            value = auth.answer(resp.headers.get_all("WWW-Authenticate"), method, target.path, value is not None)
        except AuthError as exc:
            raise HttpError(f"{where}: cannot answer the digest challenge: {exc}") from None
        if value is None:
            return resp
        send["authorization"] = ("Authorization", value)
        return await self._exchange(method, target, send, payload, where, shown)

    async def _exchange(self, method: str, target: _Target, send: dict[str, tuple[str, str]],
                        payload: bytes | None, where: str, shown: str) -> HttpResponse:
        lines = [f"{method} {target.path} HTTP/1.1"]
        if "host" not in send:  # a caller's Host (a device behind a port forward) replaces ours
            lines.append(f"Host: {target.host_header}")
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
                resp, keep = await ResponseReader(conn.reader, where, self.max_body_bytes).read(method, shown)
                done = True
            except StaleConnection:
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
        raise AssertionError("unreachable: the second attempt uses a new connection")

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        """The newest live idle connection to the host; expired or closed ones, to any host, are
        closed here, so a client talking to many hosts holds no stale sockets for long."""
        now = time.monotonic()
        for host in list(self._idle):
            live = [c for c in self._idle[host] if c.usable() and now - c.idle_since < self.idle_timeout_s]
            for conn in self._idle[host]:
                if conn not in live:
                    conn.close()
            if live:
                self._idle[host] = live
            else:
                del self._idle[host]  # no entry is kept for a host without idle connections
        conns = self._idle.get(key)
        if not conns:
            return None
        conn = conns.pop()
        if not conns:
            del self._idle[key]
        return conn

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
                hint = f"; {tls_unavailable('an https URL')}" if openssl_kept_out() else ""
                raise HttpError(f"{where}: https needs Python's ssl module, which cannot be imported "
                                f"in this process ({exc}){hint}") from None
            context = ssl.create_default_context()
            if not self.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls
