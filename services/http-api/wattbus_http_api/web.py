"""HTTP helpers: JSON answers, clear 4xx errors (counted), bearer-token checks, body parsing."""

from __future__ import annotations

import hmac
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

    def __init__(self, status: int, message: str, where: str | None = None) -> None:
        self.status_code = status
        body = {"error": message, **({"where": where} if where else {})}
        super().__init__(body=_ENCODER.encode(body), content_type="application/json")


def site_of(request: web.Request) -> Site:
    return request.app[SITE]


def reject(request: web.Request, status: int, message: str, where: str | None = None) -> ApiError:
    """Count and log a rejected request; return the error to raise."""
    site = site_of(request)
    count = site.ctx.counters.inc("http_rejected")
    if count <= 50 or count % 100 == 0:
        site.ctx.log.warning("request rejected", method=request.method, path=request.path, status=status,
                             problem=message, where=where, remote=request.remote)
    return ApiError(status, message, where)


def require_write(request: web.Request) -> None:
    """Writes need the bearer token, unless the client is in trusted_networks."""
    site = site_of(request)
    if site.trusted(request.remote):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if site.token is None:
        raise reject(request, 403, f"writes from {request.remote} are not allowed: no token is configured "
                                   "([http-api] token) and the address is not in trusted_networks")
    if scheme.lower() != "bearer" or not given:
        raise reject(request, 401, "this endpoint changes something: send Authorization: Bearer <token>")
    if not hmac.compare_digest(given.strip().encode(), site.token.encode()):
        raise reject(request, 401, "the bearer token is wrong")


async def read_json(request: web.Request, allow_empty: bool = False) -> Any:
    """The request body as JSON; 400 naming the problem, 413 when too large."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise reject(request, 413, f"body of {request.content_length} bytes is over the {MAX_BODY} byte limit")
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return None
        raise reject(request, 400, "the request needs a JSON body", "body")
    try:
        return codec.decode(raw, Any)  # invalid UTF-8 included
    except codec.PayloadError as exc:
        raise reject(request, 400, f"the body is not JSON: {exc}", "body") from None


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
