"""The own REST API under /api/v1: site, devices, loadpoints, energy, commands, live events (SSE)."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Annotated, Any

import msgspec
from aiohttp import web
from wattbus import messages as m
from wattbus import topics

from . import history_api, openapi
from .access import client_key
from .energy import BUCKET_S
from .site import Site
from .web import SITE, convert, json_response, read_json, reject, result_response, site_of

BASE = "/api/v1"
HEARTBEAT_S = 5.0  # the page calls the gateway silent after a few of these went missing


class ModeBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: m.LoadpointMode


class LimitsBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    min_current_a: m.ChargeCurrent | None = None
    max_current_a: m.ChargeCurrent | None = None


class PlanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole charge plan (set_loadpoint_plan): a field left out clears its part."""

    soc_pct: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    time: m.ClockTime | None = None  # HHMM, the gateway's local time
    min_soc_pct: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None


async def get_site(request: web.Request) -> web.Response:
    site = site_of(request)
    return json_response({"flow": msgspec.to_builtins(site.flow()), "live": msgspec.to_builtins(site.live()),
                          "energy_today_wh": _today(site)["totals_wh"],
                          "loadpoints": site.loadpoints_doc(),
                          "devices": {"total": len(site.state.devices),
                                      "online": sum(1 for r in site.state.devices.values() if r.online)},
                          "posted_values": site.state.external_values(time.monotonic())})


async def get_devices(request: web.Request) -> web.Response:
    return json_response(site_of(request).devices_doc())


def _device_ref(request: web.Request) -> str:
    site = site_of(request)
    ref = f"{request.match_info['source']}/{request.match_info['device_id']}"
    if ref not in site.state.devices:
        raise reject(request, 404, f"no device {ref} on the bus", "path")
    return ref


async def get_device(request: web.Request) -> web.Response:
    ref = _device_ref(request)
    doc = next(d for d in site_of(request).devices_doc() if d["ref"] == ref)
    return json_response(doc)


async def device_command(request: web.Request) -> web.Response:
    ref = _device_ref(request)
    command: m.CommandBase = convert(request, await read_json(request), m.Command)  # type: ignore[arg-type]
    source, device_id = ref.split("/", 1)
    return result_response(await site_of(request).command(topics.device_command(source, device_id), command))


async def get_loadpoints(request: web.Request) -> web.Response:
    return json_response(site_of(request).loadpoints_doc())


def _loadpoint(request: web.Request) -> str:
    lp_id = request.match_info["loadpoint_id"]
    if lp_id not in site_of(request).state.loadpoints:
        known = ", ".join(sorted(site_of(request).state.loadpoints)) or "none yet (is surplus-controller running?)"
        raise reject(request, 404, f"no loadpoint {lp_id!r} on the bus; known: {known}", "path")
    return lp_id


async def get_loadpoint(request: web.Request) -> web.Response:
    lp_id = _loadpoint(request)
    return json_response(next(d for d in site_of(request).loadpoints_doc() if d["loadpoint_id"] == lp_id))


async def set_mode(request: web.Request) -> web.Response:
    lp_id = _loadpoint(request)
    body = convert(request, await read_json(request), ModeBody)
    command = m.SetLoadpointMode(mode=body.mode)
    return result_response(await site_of(request).command(topics.loadpoint_command(lp_id), command))


async def set_limits(request: web.Request) -> web.Response:
    lp_id = _loadpoint(request)
    body = convert(request, await read_json(request), LimitsBody)
    if body.min_current_a is None and body.max_current_a is None:
        raise reject(request, 400, "give min_current_a and/or max_current_a", "body")
    if body.min_current_a is not None and body.max_current_a is not None and body.min_current_a > body.max_current_a:
        raise reject(request, 400, f"min_current_a {body.min_current_a:g} A is above max_current_a "
                                   f"{body.max_current_a:g} A", "$.min_current_a")
    command = m.SetLoadpointLimits(min_current_a=body.min_current_a, max_current_a=body.max_current_a)
    return result_response(await site_of(request).command(topics.loadpoint_command(lp_id), command))


async def set_plan(request: web.Request) -> web.Response:
    lp_id = _loadpoint(request)
    body = convert(request, await read_json(request), PlanBody)
    if (body.soc_pct is None) != (body.time is None):
        raise reject(request, 400, "give soc_pct and time together (or neither, to clear the target)",
                     "$.time" if body.time is None else "$.soc_pct")
    command = m.SetLoadpointPlan(soc_pct=body.soc_pct, time=body.time, min_soc_pct=body.min_soc_pct)
    return result_response(await site_of(request).command(topics.loadpoint_command(lp_id), command))


async def rescan(request: web.Request) -> web.Response:
    return result_response(await site_of(request).command(topics.DISCOVERY_COMMAND, m.Rescan()))


def _today(site: Site) -> dict[str, Any]:
    site.history.sample()
    site.history.flush()
    doc = history_api.history(site, "day", date.today())
    return {"date": doc["date"], "bucket_s": BUCKET_S, "labels": doc["labels"], "series": doc["series"],
            "totals_wh": doc["totals_wh"]}


async def energy_today(request: web.Request) -> web.Response:
    """Today in 15-minute buckets (kept for clients of the first API; /history has every range)."""
    return json_response(_today(site_of(request)))


async def status(request: web.Request) -> web.Response:
    return json_response(msgspec.to_builtins(site_of(request).ctx.status()))


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `summary` with the flow, liveness, devices and loadpoints whenever the bus
    changes or the liveness verdict does (a stopped broker changes nothing on the bus), and at least
    every HEARTBEAT_S, so the page can tell a silent gateway from a quiet house."""
    site = request.app[SITE]
    # A stream holds its connection slot for as long as it lasts (it is never evicted): a few per
    # client address, and at most a quarter of all slots, so streams cannot fill the connection cap.
    limits, address = site.config.limits, client_key(request.remote)
    if site.streams.get(address, 0) >= limits.event_streams_per_address:
        raise reject(request, 429, f"{address} already has {limits.event_streams_per_address} event streams open",
                     "header.Connection")
    if sum(site.streams.values()) >= max(1, limits.max_connections // 4):
        raise reject(request, 503, "too many event streams open on this gateway; try again later")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    site.ctx.counters.inc("sse_clients")
    site.streams[address] = site.streams.get(address, 0) + 1
    sent: tuple[int, Any] = (-1, None)
    quiet_since = time.monotonic()
    try:
        # The browser reconnects this soon after the stream breaks (an http-api restart).
        await response.write(b"retry: 2000\n\n")
        # Polling the state's version number is cheap and cannot miss a change (no shared Event to race on).
        # A closed connection ends the stream at once (not at the next write): its place is free again.
        while not site.ctx.stopping.is_set() and request.transport is not None and not request.transport.is_closing():
            live = site.live()
            now = (site.state.version, (live.state, live.reasons, live.warnings))
            if now != sent or time.monotonic() - quiet_since > HEARTBEAT_S:
                sent, quiet_since = now, time.monotonic()
                data = msgspec.json.encode(site.summary()).decode()
                await response.write(f"event: summary\ndata: {data}\n\n".encode())
            await asyncio.sleep(site.config.push_interval_s)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the browser went away
    finally:
        site.streams[address] -= 1
        if not site.streams[address]:
            del site.streams[address]
    return response


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document())


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{BASE}/site", get_site), web.get(f"{BASE}/devices", get_devices),
        web.get(f"{BASE}/devices/{{source}}/{{device_id}}", get_device),
        web.post(f"{BASE}/devices/{{source}}/{{device_id}}/command", device_command),
        web.get(f"{BASE}/loadpoints", get_loadpoints), web.get(f"{BASE}/loadpoints/{{loadpoint_id}}", get_loadpoint),
        web.put(f"{BASE}/loadpoints/{{loadpoint_id}}/mode", set_mode),
        web.post(f"{BASE}/loadpoints/{{loadpoint_id}}/mode", set_mode),
        web.put(f"{BASE}/loadpoints/{{loadpoint_id}}/limits", set_limits),
        web.put(f"{BASE}/loadpoints/{{loadpoint_id}}/plan", set_plan),
        web.post(f"{BASE}/discovery/rescan", rescan), web.get(f"{BASE}/energy/today", energy_today),
        web.get(f"{BASE}/status", status), web.get(f"{BASE}/events", events),
        web.get(f"{BASE}/openapi.json", get_openapi),
    ]
