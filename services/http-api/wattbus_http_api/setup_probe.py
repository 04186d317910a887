"""Devices added by hand: checked live by their bridge before they are saved.

Each bridge announces its manual-add forms (`BridgeForms` on service/<bridge>/<instance>/forms,
wattbus.bridge.form): the inputs, typed from its config Struct, and the list item they make. The
setup page offers the forms of running bridges. POST /api/v1/setup/probe reads the device once and
answers what it read; POST /api/v1/setup/devices does the same check and saves the item only after a
good read (or with `save_anyway`). The check is the bridge's own `probe_device` command
(wattbus.runner -> `<bridge package>.probe`), sent with MQTT v5 request/response, so it uses the
adapter the bridge polls with. A TCP connect comes first: an address nobody listens on is refused at
once. What a form lets a person send is no wider than before: a host name or address (no path, user
or query), a serial device under /dev/ or socket://, values of the form's own fields (the bridge's
description decides the path it reads), and the item passes setup_guard like any section change."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta, Struct
from wattbus import messages as m
from wattbus import topics
from wattbus.bridge.form import HOST_PATTERN, secret_problem
from wattbus.config import ConfigError

from . import setup_guard
from .setup_api import _apply, _config_error, _save, _settings
from .setup_fields import FormError, fill, form_values, nested
from .web import convert, json_response, read_json, reject, site_of


class ManualDevice(Struct, kw_only=True, forbid_unknown_fields=True):
    """A device discovery cannot find (another subnet, a serial port, a generic device)."""

    protocol: str  # the form's name: a protocol ("sunspec", "sml") or "generic:<template>"
    host: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    unit_id: Annotated[int, Meta(ge=0, le=255)] | None = None
    serial_port: str | None = None  # /dev/ttyUSB0 or socket://host:port (serial protocols)
    key: str | None = None
    values: dict[str, str | int | float | bool] = {}  # the form's other fields (a generic device's id, vars)
    save_anyway: bool = False  # save without a good read (the device is off today); still validated

    def given(self) -> dict[str, Any]:
        top = {"host": self.host, "port": self.port, "unit_id": self.unit_id, "serial_port": self.serial_port,
               "key": self.key}
        return {**{k: v for k, v in top.items() if v is not None}, **self.values}


class Checked(Struct, kw_only=True):
    """What the check found: the bridge's entry (flat, as probe_device takes it), and the probe's answer."""

    bridge: str
    list_key: str
    entry: dict[str, Any]
    target: str
    hidden: list[str] = []  # the values of the form's secret inputs: in no answer, page or log line
    where: str  # the form field a problem belongs to
    problem: str | None = None
    probe: m.CommandResult | None = None

    def item(self) -> dict[str, Any]:
        return nested(self.entry)


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
        return None if port_text.isdigit() and re.fullmatch(HOST_PATTERN, host) else "use socket://host:port"
    if target.startswith("/"):
        return None if os.path.realpath(target).startswith("/dev/") else \
            "a serial device lives under /dev/; other paths cannot be set here"
    return "give a serial device (/dev/ttyUSB0) or socket://host:port"


async def _connect_check(form: m.AddForm, values: dict[str, Any], timeout: float) -> tuple[str, str, str | None]:
    """(target, field, problem): a quick look that the address exists before the bridge reads it."""
    if form.address == "serial":
        target = str(values.get("serial_port", ""))
        if target.startswith("socket://"):
            host, _, port_text = target[len("socket://"):].rpartition(":")
            return target, "$.serial_port", await _reachable(host, int(port_text), timeout)
        return target, "$.serial_port", None if Path(target).exists() else "no such device file"
    if form.address == "none":  # read from the bus or pushed: nothing to connect to first
        return str(values.get("id", form.name)), "$.protocol", None
    host, port = str(values.get("host", "")), int(values.get("port", 0))
    if re.fullmatch(HOST_PATTERN, host) is None:  # whatever the form says: a host, never a URL's path or user
        raise FormError("$.host", f"{host[:80]!r} is no host name or IP address")
    return f"{host}:{port}", "$.host", await _reachable(host, port, timeout)


def _form(request: web.Request, body: ManualDevice, stopped_ok: bool) -> tuple[m.BridgeForms, m.AddForm]:
    """The form by name; a bridge that is not running offers none, except to save unread (`save_anyway`)."""
    forms = site_of(request).setup.forms
    found = forms.form(body.protocol)
    offered = ", ".join(f["name"] for f in forms.page()["forms"]) or "none (no bridge is running)"
    if found is None:
        raise reject(request, 400, f"no running bridge offers {body.protocol!r}; offered now: {offered}", "$.protocol")
    bridge, form = found
    if not forms.running(bridge.service) and not stopped_ok:
        raise reject(request, 400, f"{bridge.service} adds {body.protocol} devices but is not running: start it, "
                                   f"then add the device (it reads it once first)", "$.protocol")
    return bridge, form


async def check(request: web.Request, body: ManualDevice, for_saving: bool = False) -> Checked:
    site = site_of(request)
    given = body.given()
    serial = str(given["serial_port"]) if given.get("serial_port") is not None else None
    problem = serial_form_problem(serial) if serial is not None else None
    if problem is not None:  # a file is never a meter, whichever form names it
        raise reject(request, 400, f"serial_port {serial!r}: {problem}", "$.serial_port")
    bridge, form = _form(request, body, for_saving and body.save_anyway)
    leak = secret_problem(form)  # a bridge built without form.add_form's check
    if leak is not None:
        raise reject(request, 400, f"{bridge.service}: {leak}", "$.form")
    address = {"host": "$.host", "serial": "$.serial_port"}.get(form.address, "$.protocol")
    try:
        values = form_values(form, given)
        entry: dict[str, Any] = fill(form.entry, values)
        item = nested(entry)
        # Paths and URL schemes as for any section change; the serial port was checked above (a by-id
        # link to a device under /dev/ is fine there), so the guard takes it as known.
        vetted = {form.list_key: [{k: v for k, v in item.items() if serial is not None and v == serial}]}
        setup_guard.prepare(bridge.service, {form.list_key: [item]}, vetted)
        target, where, problem = await _connect_check(form, values, site.config.setup.probe_timeout_s)
    except (FormError, setup_guard.GuardError) as exc:
        raise reject(request, 400, exc.message, exc.where if isinstance(exc, FormError) else address) from None
    hidden = [str(values[f.key]) for f in form.fields if f.input == "secret" and f.key in values]
    checked = Checked(bridge=bridge.service, list_key=form.list_key, entry=entry, target=target, where=where,
                      hidden=hidden)
    if for_saving and checked.item() in _settings(request).section(bridge.service).get(form.list_key, []):
        raise reject(request, 400, f"{target} is already configured in [{bridge.service}] {form.list_key}", where)
    if for_saving and body.save_anyway:  # the person said so (the device is off today): no wait for a read
        return checked
    if problem is not None:
        checked.problem = f"cannot reach {target}: {problem}; check the address and that the device is switched on"
        return checked
    site.ctx.counters.inc("probes_sent")
    wait = max(bridge.probe_wait_s, site.config.setup.probe_timeout_s)
    command_topic = topics.service_command(bridge.service, _bridge_instance(request, bridge.service))
    result = await site.ctx.bus.request(command_topic, m.ProbeDevice(entry=entry), wait)
    checked.probe = result
    if result.status == "timeout":
        checked.problem = (f"{bridge.service} did not answer within {wait:g} s, so {target} could not be read "
                           f"(is {bridge.service} running?); save anyway to add it without a check")
    elif result.status != "ok":
        checked.problem = setup_guard.redact(f"{bridge.service} could not read {target}: {result.message}", hidden)
    return checked


def _shown(data: Any, hidden: list[str]) -> Any:
    """The entry or probe answer as an answer shows it: secret keys as "set", a secret's value nowhere."""
    if isinstance(data, dict):
        return {k: _shown(v, hidden) for k, v in setup_guard.mask(data).items()}
    if isinstance(data, list):
        return [_shown(v, hidden) for v in data]
    return setup_guard.redact(data, hidden) if isinstance(data, str) else data


def _answer(checked: Checked) -> dict[str, Any]:
    probe = _shown(msgspec.to_builtins(checked.probe), checked.hidden) if checked.probe is not None else None
    return {"bridge": checked.bridge, "entry": _shown(checked.item(), checked.hidden), "target": checked.target,
            "ok": checked.problem is None,
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
    async with site.setup.lock:
        settings = _settings(request)
        section = settings.section(checked.bridge)
        items = section.get(checked.list_key, [])
        if checked.item() in items:
            raise reject(request, 400, f"{checked.target} is already configured in [{checked.bridge}] "
                                       f"{checked.list_key}", checked.where)
        section[checked.list_key] = [*items, checked.item()]
        try:
            config = settings.put_section(checked.bridge, section)
        except ConfigError as exc:
            raise _config_error(request, exc, settings, f"$.{checked.list_key}.{len(items)}", checked.hidden) from None
        _save(request, settings)
    return json_response({**_answer(checked), "applied": await _apply(request, checked.bridge, config)}, 201)


def routes(base: str) -> list[web.RouteDef]:
    return [web.post(f"{base}/probe", probe_device), web.post(f"{base}/devices", add_device)]
