"""HTTP helpers: JSON answers, clear 4xx errors (counted, logged once per interval), body parsing."""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from wattbus import codec
from wattbus import messages as m

from .site import HTTP_STATUS, Site

T = TypeVar("T")
SITE: web.AppKey[Site] = web.AppKey("site", Site)
MAX_BODY = 64 * 1024

_ENCODER = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


class ApiError(web.HTTPException):
    """An error answer with a JSON body {"error": ..., "where": ...}."""

    def __init__(self, status: int, message: str, where: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        body = {"error": message, **({"where": where} if where else {})}
        super().__init__(body=_ENCODER.encode(body), content_type="application/json", headers=headers)


def site_of(request: web.Request) -> Site:
    return request.app[SITE]


def reject(request: web.Request, status: int, message: str, where: str | None = None,
           headers: dict[str, str] | None = None) -> ApiError:
    """Count a rejected request and log it (one line per status and interval); return the error to raise."""
    site = site_of(request)
    site.ctx.counters.inc("http_rejected")
    site.ctx.counters.inc(f"http_rejected_{status}")
    site.limiter.warning(f"rejected {status}", "request rejected", method=request.method, path=request.path[:200],
                         status=status, problem=message[:300], where=where, remote=request.remote)
    return ApiError(status, message, where, headers)


# JSON punctuation outside strings: how deep a body nests, found before the decoder recurses.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes, limit: int) -> int:
    """The deepest nesting of raw JSON, counting until it passes limit (then limit + 1)."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(raw):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


async def read_json(request: web.Request, allow_empty: bool = False) -> Any:
    """The request body as JSON; 400 naming the problem, 413 when too large."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise reject(request, 413, f"body of {request.content_length} bytes is over the {MAX_BODY} byte limit")
    timeout = site_of(request).config.limits.body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise reject(request, 408, f"the body did not arrive within {timeout:g} s", "body") from None
    if not raw.strip():
        if allow_empty:
            return None
        raise reject(request, 400, "the request needs a JSON body", "body")
    limit = site_of(request).config.limits.json_max_depth
    if json_depth(raw, limit) > limit:
        raise reject(request, 400, f"the body nests deeper than {limit} levels", "body")
    try:
        return codec.decode(raw, Any)  # invalid UTF-8 included
    except codec.PayloadError as exc:
        raise reject(request, 400, f"the body is not JSON: {exc}", "body") from None
    except RecursionError:  # a nesting the depth scan did not see (it only counts brackets)
        raise reject(request, 400, "the body nests too deeply", "body") from None


def convert(request: web.Request, data: Any, into: type[T], strict: bool = True,
            client_fields: dict[str, str] | None = None) -> T:
    """Validate decoded JSON against a Struct; 400 with msgspec's message ("... - at `$.mode`").
    client_fields maps a Struct path to the field the client sent ({"$.power_w": "$.chargeRate"}),
    for compatibility endpoints whose request fields are not the contract's."""
    try:
        return msgspec.convert(data, type=into, strict=strict)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason, _, where = text.partition(" - at ")
        where = where.strip("`") or "body"
        raise reject(request, 400, reason, (client_fields or {}).get(where, where)) from None


def result_response(result: m.CommandResult) -> web.Response:
    return json_response(msgspec.to_builtins(result), HTTP_STATUS.get(result.status, 502))
