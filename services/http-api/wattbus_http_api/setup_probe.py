"""Devices added by hand: checked live by their bridge before they are saved.

POST /api/v1/setup/probe reads the device once and answers what it read; POST /api/v1/setup/devices
does the same check and saves the entry only after a good read (or with `save_anyway`). The check
is the bridge's own `probe_device` command (wattbus.runner -> `<bridge package>.probe`), sent with
MQTT v5 request/response, so it uses the adapter the bridge polls with. A TCP connect comes first:
an address nobody listens on is refused at once, even when the bridge is not running."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta, Struct
from wattbus import messages as m
from wattbus import topics
from wattbus.config import ConfigError

from .setup_api import _apply, _config_error, _save, _settings
from .setup_store import BridgeSpec
from .web import convert, json_response, read_json, reject, site_of


class ManualDevice(Struct, kw_only=True, forbid_unknown_fields=True):
    """A device discovery cannot find (another subnet, a serial port)."""

    protocol: str
    host: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    unit_id: Annotated[int, Meta(ge=0, le=255)] = 1
    serial_port: str | None = None  # /dev/ttyUSB0 or socket://host:port (serial protocols)
    key: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")] = "meter"
    save_anyway: bool = False  # save without a good read (the device is off today); still validated


class Checked(Struct, kw_only=True):
    """What the check found: the bridge's entry, and the probe's answer (None when not asked)."""

    bridge: str
    entry: dict[str, Any]
    target: str
    where: str  # the form field a problem belongs to
    problem: str | None = None
    probe: m.CommandResult | None = None


async def _reachable(host: str, port: int, timeout_s: float) -> str | None:
    """None when a TCP connection opens, else why not (for the person)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    writer.close()
    return None


def _bridge_instance(request: web.Request, bridge: str) -> str:
    """The instance the bridge runs as (an environment override wins, as in the bridge itself)."""
    settings = _settings(request)
    override = settings.overrides(bridge).get("instance")
    instance = str(override["value"] if override else settings.section(bridge).get("instance", "main"))
    return topics.ALL_INSTANCES if instance == "auto" else instance


def serial_form_problem(target: str) -> str | None:
    """What is wrong with a serial port's form, whatever the device does today (never saved, not even
    with save_anyway): socket://host:port, or a device under /dev/ (a by-id link or a simulator's pty
    may name it: what it leads to must be under /dev/; any other file is not a meter, setup_guard)."""
    if target.startswith("socket://"):
        host, _, port_text = target[len("socket://"):].rpartition(":")
        return None if port_text.isdigit() and host else "use socket://host:port"
    if target.startswith("/"):
        return None if os.path.realpath(target).startswith("/dev/") else \
            "a serial device lives under /dev/; other paths cannot be set here"
    return "give a serial device (/dev/ttyUSB0) or socket://host:port"


async def _connect_check(spec: BridgeSpec, body: ManualDevice, timeout: float) -> tuple[str, str, str | None]:
    """(target, field, problem): a quick look that the address exists before the bridge reads it."""
    if spec.serial:
        target = body.serial_port or ""
        if target.startswith("socket://"):
            host, _, port_text = target[len("socket://"):].rpartition(":")
            return target, "$.serial_port", await _reachable(host, int(port_text), timeout)
        return target, "$.serial_port", None if Path(target).exists() else "no such device file"
    port = body.port or spec.port or 0
    target = f"{body.host}:{port}"
    return target, "$.host", await _reachable(body.host or "", port, timeout)


async def check(request: web.Request, body: ManualDevice, for_saving: bool = False) -> Checked:
    site = site_of(request)
    spec = site.setup.bridges.get(body.protocol)
    if spec is None:
        raise reject(request, 400, f"unknown protocol {body.protocol!r}; one of: {', '.join(site.setup.bridges)}",
                     "$.protocol")
    if not spec.serial and not body.host:
        raise reject(request, 400, f"{body.protocol} devices are added by host (and port)", "$.host")
    problem = serial_form_problem(body.serial_port or "") if spec.serial else None
    if problem is not None:
        raise reject(request, 400, f"serial_port {body.serial_port!r}: {problem}", "$.serial_port")
    values: dict[str, Any] = ({"serial_port": body.serial_port, "key": body.key} if spec.serial else
                              {"host": body.host, "port": body.port or spec.port or 0, "unit_id": body.unit_id})
    entry = spec.new_entry(values)
    target, where, problem = await _connect_check(spec, body, site.config.setup.probe_timeout_s)
    if for_saving and entry in _settings(request).section(spec.bridge).get(spec.list_key, []):
        raise reject(request, 400, f"{target} is already configured in [{spec.bridge}] {spec.list_key}", where)
    checked = Checked(bridge=spec.bridge, entry=entry, target=target, where=where)
    if for_saving and body.save_anyway:  # the person said so (the device is off today): no wait for a read
        return checked
    if problem is not None:
        checked.problem = f"cannot reach {target}: {problem}; check the address and that the device is switched on"
        return checked
    site.ctx.counters.inc("probes_sent")
    command = m.ProbeDevice(entry=entry)
    wait = max(spec.probe_wait_s, site.config.setup.probe_timeout_s)
    result = await site.ctx.bus.request(topics.service_command(spec.bridge, _bridge_instance(request, spec.bridge)),
                                        command, wait)
    checked.probe = result
    if result.status == "timeout":
        checked.problem = (f"{spec.bridge} did not answer within {wait:g} s, so {target} could not be read "
                           f"(is {spec.bridge} running?); save anyway to add it without a check")
    elif result.status != "ok":
        checked.problem = f"{spec.bridge} could not read {target}: {result.message}"
    return checked


def _answer(checked: Checked) -> dict[str, Any]:
    probe = msgspec.to_builtins(checked.probe) if checked.probe is not None else None
    return {"bridge": checked.bridge, "entry": checked.entry, "target": checked.target, "ok": checked.problem is None,
            "checked": checked.probe is not None, "problem": checked.problem, "where": checked.where, "probe": probe}


async def probe_device(request: web.Request) -> web.Response:
    """POST /api/v1/setup/probe: read the device once; nothing is saved. 200 with the values, or 400
    with the problem naming the field (as for a refused save)."""
    checked = await check(request, convert(request, await read_json(request), ManualDevice))
    if checked.problem is not None:
        raise reject(request, 400, checked.problem, checked.where)
    return json_response(_answer(checked))


async def add_device(request: web.Request) -> web.Response:
    """POST /api/v1/setup/devices: check live, then add the entry to the bridge's list and tell it."""
    site = site_of(request)
    body = convert(request, await read_json(request), ManualDevice)
    checked = await check(request, body, for_saving=True)
    if checked.problem is not None:
        raise reject(request, 400, checked.problem, checked.where)
    spec = site.setup.bridges[body.protocol]
    async with site.setup.lock:
        settings = _settings(request)
        section = settings.section(spec.bridge)
        items = section.get(spec.list_key, [])
        if checked.entry in items:
            raise reject(request, 400, f"{checked.target} is already configured in [{spec.bridge}] {spec.list_key}",
                         checked.where)
        section[spec.list_key] = [*items, checked.entry]
        try:
            config = settings.put_section(spec.bridge, section)
        except ConfigError as exc:
            raise _config_error(request, exc, settings) from None
        _save(request, settings)
    return json_response({**_answer(checked), "applied": await _apply(request, spec.bridge, config)}, 201)


def routes(base: str) -> list[web.RouteDef]:
    return [web.post(f"{base}/probe", probe_device), web.post(f"{base}/devices", add_device)]
