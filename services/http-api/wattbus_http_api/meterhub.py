"""MeterHub compatibility: `GET /` flat site document, `POST /` external values, `POST /command/<target>`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from wattbus import messages as m
from wattbus import topics

from .config import Source
from .flows import aggregate, field_value
from .site import HTTP_STATUS, Site
from .state import External
from .web import convert, json_response, read_json, reject, site_of

ROLE_WORDS = ("grid", "pv", "battery", "bat", "car", "home", "water")
STATUS_ORDER = ("ok", "invalid", "refused", "failed", "timeout")


def check_source(key: str, src: Source) -> str | None:
    """A config problem with one mapping entry, or None."""
    name = src.source
    if "/" in name:
        return None
    if name.rstrip("0123456789") in ROLE_WORDS:
        return None
    return f"config [http-api.meterhub] {key}: source {name!r} is neither a role ({', '.join(ROLE_WORDS)}, " \
           "with an optional number like pv2) nor a device ref source/device_id"


def resolve(site: Site, src: Source, now: float) -> m.ExtraValue:
    if src.source == "home":
        value: m.ExtraValue = site.flow().home_w if src.field == "power_w" else None
    elif src.source == "water":
        value = water(site, src.field, now)
    elif "/" in src.source:
        rec = site.state.devices.get(src.source)
        reading = site.state.fresh(rec, now, site.config.stale_after_s) if rec else None
        value = field_value(reading, src.field) if reading else None
    else:
        members = site.roles.role(src.source) or []
        value = aggregate(site.state, members, src.field, now, site.config.stale_after_s)
    if isinstance(value, int | float) and not isinstance(value, bool):
        scaled = round(float(value) * src.scale, src.digits)
        return int(scaled) if src.digits == 0 else scaled
    return value


def water(site: Site, field: str, now: float) -> m.ExtraValue:
    """MeterHub's water meter (`water_vto`): the first meter, by ref, whose fresh reading has the field
    (water_m3: an AI-on-the-edge meter on the generic-bridge, an M-Bus channel of the sml-reader).
    With several, name one by its ref in [http-api.meterhub]."""
    for rec in site.state.of_kind("meter", parentless=False):
        reading = site.state.fresh(rec, now, site.config.stale_after_s)
        value = field_value(reading, field) if reading else None
        if value is not None:
            return value
    return None


def document(site: Site) -> dict[str, Any]:
    now = time.monotonic()
    doc: dict[str, Any] = {"time": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
    for key, src in site.config.mapping().items():
        doc[key] = resolve(site, src, now)
    for key in site.config.publish:
        doc[key] = None  # an allowed key that nobody posted (or that expired) is null, like a stale value
    doc.update(site.state.external_values(now))
    return doc


async def get_document(request: web.Request) -> web.Response:
    return json_response(document(site_of(request)))


def publish_externals(site: Site) -> None:
    """Put the posted values on the bus as one gateway reading of the http-api's own device."""
    now = time.monotonic()
    values = site.state.external_values(now)
    device_id = f"external-{site.ctx.instance}"
    channel = site.ctx.devices.get(device_id) or site.ctx.device(m.DeviceMeta(
        device_id=device_id, kind="gateway", source=site.ctx.name, protocol="http", manufacturer="wattbus",
        model="posted values", name="values posted to the http-api"))
    channel.publish_reading(m.GatewayReading(device_id=device_id, timestamp=m.utc_now(), extra=values))
    site.posted_on_bus = frozenset(values)


async def post_values(request: web.Request) -> web.Response:
    site = site_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise reject(request, 400, f"POST / takes a JSON object of values, got a JSON {type(body).__name__}", "body")
    for key in body:
        if not key.isprintable():  # it would also end up in a log line and a response header
            raise reject(request, 400, f"key {key!r} contains control characters", "body")
    now = time.monotonic()
    allowed = site.config.publish
    ignored = sorted(k for k in body if k not in allowed)
    for key, value in body.items():
        if key in allowed and not isinstance(value, int | float | str | bool | None):
            raise reject(request, 400, f"value of {key!r} must be a number, text, true/false or null", f"$.{key}")
    for key, value in body.items():
        if key in allowed:
            site.state.externals[key] = External(value, now + allowed[key])
    if ignored:
        site.ctx.counters.inc("values_ignored", len(ignored))
        site.ctx.log.warning("posted keys not in [http-api] publish, ignored", keys=ignored)
    if len(ignored) < len(body):
        publish_externals(site)
        site.state.touch()
    response = json_response(document(site))
    if ignored:
        response.headers["X-Wattbus-Ignored"] = ",".join(ignored)[:500]
    return response


# --------------------------------------------------------------------------- /command/<target>?...

def _flag(text: str) -> bool | None:
    lowered = text.strip().lower()
    return True if lowered in ("1", "true", "on", "yes") else False if lowered in ("0", "false", "off", "no") else None


def commands_from_query(request: web.Request, query: dict[str, str], loadpoint: bool) -> list[m.CommandBase]:
    """go-e style (amp, alw, psm), Shelly style (turn, relay), mode=, or a contract command=<tag>&field=..."""
    if "command" in query:
        return [convert(request, dict(query), m.Command, strict=False)]  # type: ignore[arg-type]
    out: list[m.CommandBase] = []
    for key, value in query.items():
        match key:
            case "amp" | "current_a":
                out.append(convert(request, {"current_a": value}, m.SetChargeCurrent, strict=False))
            case "alw" | "charging":
                flag = _flag(value)
                if flag is None:
                    raise reject(request, 400, f"{key}={value!r}: use 1/0, true/false or on/off", f"query.{key}")
                out.append(m.SetCharging(enabled=flag))
            case "psm" | "phases":
                phases = {"1": 1, "2": 3, "3": 3} if key == "psm" else {"1": 1, "3": 3}
                if value not in phases:
                    raise reject(request, 400, f"{key}={value!r}: use {' or '.join(phases)}", f"query.{key}")
                out.append(m.SetPhases(phases=phases[value]))  # type: ignore[arg-type]
            case "turn" | "on":
                flag = _flag(value)
                if flag is None:
                    raise reject(request, 400, f"{key}={value!r}: use on/off", f"query.{key}")
                channel = query.get("relay", query.get("channel", "0"))
                out.append(convert(request, {"on": flag, "channel": channel}, m.SetRelay, strict=False))
            case "mode":
                out.append(convert(request, {"mode": value}, m.SetLoadpointMode, strict=False))
            case "relay" | "channel" | "request_id":
                continue
            case _:
                raise reject(request, 400, f"unknown command parameter {key!r}: use amp, alw, psm, turn(+relay), "
                                           "mode, or command=<contract command>&<its fields>", f"query.{key}")
    if not out:
        raise reject(request, 400, "no command in the query: e.g. ?amp=8, ?mode=pv or ?command=restart", "query")
    if loadpoint and any(not isinstance(c, m.SetLoadpointMode | m.SetLoadpointLimits) for c in out):
        raise reject(request, 400, "a loadpoint takes mode= or command=set_loadpoint_limits", "query")
    return out


def target_topic(site: Site, target: str) -> tuple[str, bool] | None:
    """The command topic for a target: loadpoint id, device ref or id, role (car, battery, ...)."""
    if target in site.state.loadpoints:
        return topics.loadpoint_command(target), True
    if target == "discovery":
        return topics.DISCOVERY_COMMAND, False
    rec = site.state.find_device(target)
    if rec is None:
        members = site.roles.role(target) if "/" not in target else None
        rec = members[0].record if members else None
    return (topics.device_command(rec.source, rec.device_id), False) if rec else None


async def command(request: web.Request) -> web.Response:
    site = site_of(request)
    target = request.match_info["target"]
    found = target_topic(site, target)
    if found is None:
        known = sorted([*site.state.loadpoints, *(r.ref for r in site.state.devices.values())])
        raise reject(request, 404, f"unknown target {target!r}; known: {', '.join(known[:30]) or 'none yet'}",
                     "path")
    topic, loadpoint = found
    query = dict(request.query)
    if request.can_read_body:
        body = await read_json(request, allow_empty=True)
        if isinstance(body, dict):
            query.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items()})
    results = [await site.command(topic, c) for c in commands_from_query(request, query, loadpoint)]
    worst = max(results, key=lambda r: STATUS_ORDER.index(r.status))
    return json_response({"target": target, "topic": topic, "status": worst.status,
                          "results": [msgspec.to_builtins(r) for r in results]}, HTTP_STATUS[worst.status])


async def command_by_get(request: web.Request) -> web.Response:
    """MeterHub's `GET /command/goe?amp=8`: a link or an <img> of any web page could send it, so a
    GET changes nothing here; the same query works with POST (and the token)."""
    raise reject(request, 405, f"GET must not change anything: send POST {request.path_qs[:200]} instead "
                               "(with Authorization: Bearer <token>)", "method",
                 headers={"Allow": "POST"})


def routes() -> list[web.RouteDef]:
    return [web.get("/", get_document), web.post("/", post_values),
            web.get("/command/{target:.+}", command_by_get, allow_head=False),
            web.post("/command/{target:.+}", command)]
