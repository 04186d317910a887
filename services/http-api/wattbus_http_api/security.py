"""The door of every write and config read, as one middleware (no handler can forget it).

In order, each refusal a JSON error naming what to change, counted and logged once per interval:
  421  Host is not a name of this gateway (DNS rebinding, hosts.py)
  403  Origin of another site, or `Sec-Fetch-Site: cross-site` (cross-site request forgery)
  401  no or wrong bearer token, 403 no token configured, 429 too many wrong tokens (access.py)
  415  a body that is not `application/json` (a cross-site form or `text/plain` "simple request")
Reads of live data (the MeterHub document, runAll, /api/v1/site, devices, events) stay open:
MeterHub and GivTCP clients read without credentials. A GET never changes anything (the MeterHub
`/command` GET is refused with 405). No cookies are used: the token travels in a header, which a
page of another site cannot add to a request, so `SameSite` has nothing to protect.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from .access import check_token
from .hosts import origin_problem
from .web import reject, site_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READS = frozenset({"GET", "HEAD", "OPTIONS"})
CONFIG_PREFIX = "/api/v1/setup"


def guarded(request: web.Request) -> bool:
    """Writes, and reads that show the config."""
    return request.method not in READS or request.path == CONFIG_PREFIX or request.path.startswith(
        CONFIG_PREFIX + "/")


def _is_json(request: web.Request) -> bool:
    mimetype = request.content_type.lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def content_type_problem(request: web.Request) -> str | None:
    if request.method in READS:
        return None
    if "Content-Type" in request.headers:
        if _is_json(request):
            return None
        return (f"Content-Type {request.headers['Content-Type']!r} is not accepted: this endpoint takes "
                "application/json (a form or text/plain body from another page is refused)")
    if request.body_exists:
        return "a body without Content-Type: send Content-Type: application/json"
    return None


@web.middleware
async def door(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None or not guarded(request):
        return await handler(request)  # 404/405 answer for themselves; open reads need no checks
    site = site_of(request)
    host = request.headers.get("Host")
    problem = site.hosts.problem(host)
    if problem is not None:
        raise reject(request, 421, problem, "header.Host")
    origin = request.headers.get("Origin")
    problem = origin_problem(origin, host) if origin is not None else None
    if problem is None and request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        problem = "cross-site request refused (Sec-Fetch-Site: cross-site)"
    if problem is not None:
        raise reject(request, 403, problem, "header.Origin")
    refusal = check_token(request.headers.get("Authorization", ""), site.token, request.remote,
                          site.trusted(request.remote), site.throttle)
    if refusal is not None:
        headers = {"Retry-After": str(math.ceil(refusal.retry_after_s))} if refusal.retry_after_s else None
        where = "header.Authorization" if refusal.status != 403 else None
        raise reject(request, refusal.status, refusal.message, where, headers)
    problem = content_type_problem(request)
    if problem is not None:
        raise reject(request, 415, problem, "header.Content-Type")
    return await handler(request)
