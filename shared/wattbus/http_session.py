"""HTTP to devices and databases on the LAN, on aiohttp.

aiohttp speaks the protocol (keep-alive connections, gzip/deflate bodies, Basic auth, Digest auth
through `aiohttp.DigestAuthMiddleware`). What every caller here needs on top is small: a failure is
one `HttpError` whose message names the method, the URL without credentials and what went wrong; a
total timeout bounds each request including its body; a body is read with a size cap; redirects are
not followed (a device answers its API directly, and a redirect elsewhere is not what was asked).

A `ClientSession` binds to the running event loop: create it (`session()`) inside the loop that uses
it, one per device or service, and close it when that stops.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.client_middlewares import ClientMiddlewareType
from yarl import URL

__all__ = ["DEFAULT_MAX_BODY", "HttpError", "HttpResponse", "HttpTimeout", "request", "session"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
KEEPALIVE_S = 15.0  # idle connections older than this are closed: devices drop theirs after a while


class HttpError(OSError):
    """A request failed; the message names the method, the URL and what went wrong."""


class HttpTimeout(HttpError, TimeoutError):
    """No complete response within the request's total timeout."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    method: str
    url: str  # without credentials
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes = field(repr=False)

    def text(self, errors: str = "strict") -> str:
        """The body decoded with the Content-Type charset (UTF-8 when none or unknown)."""
        charset = "utf-8"
        for part in self.headers.get("Content-Type", "").split(";")[1:]:
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


def session(*, timeout_s: float = 10.0, limit_per_host: int = 0, headers: Mapping[str, str] | None = None,
            auth: aiohttp.BasicAuth | None = None, middlewares: Sequence[ClientMiddlewareType] = (),
            skip_auto_headers: Sequence[str] = ()) -> aiohttp.ClientSession:
    """A session with wattbus' defaults. Call it inside the running loop; close it on stop.

    `limit_per_host` caps concurrent connections per host (0: no cap); small devices serve one
    client at a time well, so a device's session uses 1. `skip_auto_headers`: headers aiohttp
    would add on its own (a Content-Type guessed from the body) that are sent only when given.
    """
    connector = aiohttp.TCPConnector(limit_per_host=limit_per_host, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 headers={"User-Agent": "wattbus", **(headers or {})}, auth=auth,
                                 middlewares=middlewares, skip_auto_headers=skip_auto_headers)


def shown(url: URL) -> str:
    """The URL as messages and logs may show it: user and password removed."""
    return str(url.with_user(None)) if url.user is not None or url.password is not None else str(url)


async def request(client: aiohttp.ClientSession, method: str, url: str, *,
                  params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                  data: bytes | Mapping[str, str] | None = None, json: Any = None,
                  timeout_s: float | None = None, auth: aiohttp.BasicAuth | None = None,
                  middlewares: Sequence[ClientMiddlewareType] | None = None,
                  max_body: int = DEFAULT_MAX_BODY) -> HttpResponse:
    """One request, its body read whole (at most `max_body` bytes after decompression).

    `data` as a mapping is sent form-encoded; `middlewares` None keeps the session's. Raises
    HttpError (HttpTimeout on timeout); any HTTP status is a response, not an error.
    """
    method = method.upper()
    where = f"{method} {_shown_text(url)}"
    try:
        target = URL(url)
        if params:
            target = target.update_query(params)
        where = f"{method} {shown(target)}"
        if not target.absolute or target.scheme not in ("http", "https"):
            raise ValueError("expected an absolute http:// or https:// URL")
    except (ValueError, TypeError) as exc:
        raise HttpError(f"{where}: bad URL: {exc}") from None
    limit = timeout_s if timeout_s is not None else client.timeout.total
    options: dict[str, Any] = {"allow_redirects": False, "timeout": aiohttp.ClientTimeout(total=limit)}
    if middlewares is not None:
        options["middlewares"] = middlewares
    try:
        # The same limit around the whole exchange: the request, the digest retry and the body.
        async with asyncio.timeout(limit), client.request(method, target, headers=headers, data=data, json=json,
                                                          auth=auth, **options) as resp:
            body = await _read(resp, max_body, where)
            return HttpResponse(method, shown(target), resp.status, resp.reason or "", resp.headers, body)
    except HttpError:
        raise
    except TimeoutError:  # aiohttp's ServerTimeoutError is one too
        raise HttpTimeout(f"{where}: no response within {limit or 0:g} s") from None
    except aiohttp.ClientError as exc:
        raise HttpError(f"{where}: {_describe(exc)}") from None
    except (ValueError, TypeError) as exc:  # a header aiohttp refuses to send (CR/LF, not encodable)
        raise HttpError(f"{where}: bad request: {exc}") from None


async def _read(resp: aiohttp.ClientResponse, max_body: int, where: str) -> bytes:
    if resp.content_length is not None and resp.content_length > max_body:
        raise HttpError(f"{where}: response body of {resp.content_length} bytes exceeds the limit of "
                        f"{max_body} bytes")
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):  # decompressed when gzip/deflate
        total += len(chunk)
        if total > max_body:
            raise HttpError(f"{where}: response body exceeds the limit of {max_body} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, in words; aiohttp's own texts would repeat the URL (credentials and all)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {_why(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):  # also TLS handshake and certificate errors
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused by {exc.host}:{exc.port}"
        return f"cannot connect to {exc.host}:{exc.port}: {_why(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the server without a complete response"
    if isinstance(exc, aiohttp.ClientResponseError):  # unparsable status line or header section
        return f"malformed response: {exc.message}"
    if isinstance(exc, aiohttp.ClientPayloadError):  # truncated body, broken chunking or gzip
        return f"broken response body: {exc}"
    if isinstance(exc, aiohttp.InvalidURL):
        return "bad URL"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection lost: {_why(exc)}"
    return f"{type(exc).__name__}: {exc}"  # e.g. a digest challenge we cannot answer


def _why(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _shown_text(url: str) -> str:
    try:
        return shown(URL(url))
    except (ValueError, TypeError):
        return "<unparsable URL>"
