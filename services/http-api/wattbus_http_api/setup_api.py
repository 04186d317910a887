"""/api/v1/setup: the first-run wizard's REST side. Sections of the config file (GET/PUT, validated
by the owning service's Struct via wattbus.settings), discovered devices (adopt/ignore), devices
added by hand (connect check first) and device roles; every change is saved to the file and the
affected service is told over the bus (`reload_config`). Writes and reads need the bearer token (or a
trusted network, security.door); secrets show as "set"/"not set" and paths stay put (setup_guard)."""

from __future__ import annotations

import asyncio
import os
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from wattbus.config import ConfigError
from wattbus.settings import Settings, env_overrides

from . import setup_guard
from .config import Config
from .setup_fields import describe
from .setup_roles import (
    CHARGER_KEYS,
    CONTROLLER,
    TUNING,
    RoleBody,
    RoleError,
    assign,
    breaker_problem,
    check_body,
    effective_max_a,
    roles_of,
)
from .site import Site
from .state import DeviceRecord
from .web import convert, json_response, read_json, reject, site_of

BASE = "/api/v1/setup"
SELF = "http-api"
HELP = tomllib.loads((Path(__file__).parent / "data" / "settings_help.toml").read_text())
LIVE_KEYS = ("power_w", "soc_pct", "water_m3", "gas_m3")
_WHERE = re.compile(r"^config \[[^\]]+\] ([^\s=(]+)")


def _settings(request: web.Request) -> Settings:
    site = site_of(request)
    if not site.config.setup.enabled:
        raise reject(request, 403, "setup is switched off here ([http-api] setup.enabled = false)")
    if site.setup.config_file is None:
        raise reject(request, 409, "this http-api was started without a config file: start it with --config or "
                                   "WATTBUS_CONFIG (or set [http-api] setup.config_file)")
    try:
        return Settings(site.setup.config_file)
    except ConfigError as exc:
        raise reject(request, 409, str(exc), "file") from None


def _hidden(settings: Settings) -> list[str]:
    """Every secret value in the file: never part of an answer, not even inside an error message."""
    return list(setup_guard.secret_values({name: settings.section(name) for name in settings.sections()}))


def _config_error(request: web.Request, exc: ConfigError, settings: Settings, prefix: str = "$",
                  also_hide: list[str] | None = None) -> web.HTTPException:
    found = _WHERE.match(str(exc))
    where = f"{prefix}.{found.group(1)}" if found else prefix
    return reject(request, 400, setup_guard.redact(str(exc), [*_hidden(settings), *(also_hide or [])]), where)


def _save(request: web.Request, settings: Settings) -> None:
    try:
        settings.save()
    except ConfigError as exc:
        raise reject(request, 409, str(exc), "file") from None


async def _apply(request: web.Request, section: str, config: Any) -> dict[str, Any]:
    """Tell the section's service; our own section is applied in place (roles) or by a deferred reload."""
    site = site_of(request)
    if section == SELF:
        new: Config = config
        site.roles.cfg = new.site  # the power flow follows the new roles at once
        site.ctx.config = msgspec.structs.replace(site.config, site=new.site, setup=new.setup)
        other = msgspec.structs.replace(new, site=site.config.site, setup=site.config.setup)
        if other == site.config:
            return {"status": "ok", "message": "applied now"}
        # Our own restart would cut this answer: ask ourselves once the response is out.
        asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(
            site.setup.commands.reload(SELF, site.ctx.instance, site.config.setup.reload_timeout_s)))
        return {"status": "ok", "message": "http-api restarts in a second to apply listener/access changes"}
    override = env_overrides(section, os.environ).get("instance")  # the environment wins, as in the service
    # "auto": every replica, on service/<name>/all/command
    instance = str(override[1]) if override else getattr(config, "instance", "main")
    result = await site.setup.commands.reload(section, instance, site.config.setup.reload_timeout_s)
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ overview and sections

async def overview(request: web.Request) -> web.Response:
    settings = _settings(request)
    site = site_of(request)
    controller, site_roles = settings.section(CONTROLLER), settings.section(SELF).get("site", {})
    hidden = _hidden(settings)
    problems = {name: setup_guard.redact(text, hidden) for name, text in settings.check().items()}
    return json_response({"config_file": str(settings.path), "sections": settings.sections(),
                          "problems": problems, "services": settings.types.known,
                          # first run: no role anywhere yet (the UI opens on the setup page then)
                          "first_run": not controller.get("grid_meter") and not any(site_roles.values()),
                          "help": HELP, "fields": _fields(settings),
                          **site.setup.forms.page(),  # "forms" of running bridges, "not_running" ones
                          "roles": roles_of(controller, site_roles, _breakers(settings)),
                          "overrides": {name: found for name in ("bus", *settings.types.known)
                                        if (found := settings.overrides(name))},
                          "devices": _devices(site, settings)})


def _fields(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Typed inputs for the wizard: the controller's settings and a loadpoint's (the role body)."""
    words = HELP.get("loadpoint", {})
    fields = {"loadpoint": describe(RoleBody, words, CHARGER_KEYS),
              "relay": describe(RoleBody, HELP.get("relay", {}), ("power_w", "priority", "channel"))}
    try:
        controller = settings.types.config_type(CONTROLLER)
    except ConfigError:  # no controller installed here: no controller form either
        return fields
    fields[CONTROLLER] = describe(controller, HELP.get(CONTROLLER, {}))
    # The role body leaves tuning open (None = keep the file's value); its bounds are the controller's.
    tuning = {f["key"]: {**f, "optional": True, "default": None}
              for f in describe(controller, words, TUNING, inner="LoadpointConfig")}
    fields["loadpoint"] = [tuning.get(f["key"], f) for f in fields["loadpoint"]]
    return fields


async def get_section(request: web.Request) -> web.Response:
    settings = _settings(request)
    name = request.match_info["section"]
    if name != "bus" and name not in settings.types.known:
        raise reject(request, 404, f"no service {name!r} here; known: bus, {', '.join(settings.types.known)}", "path")
    values = settings.section(name)
    try:
        settings.validate(name, values, str(settings.path))
        problem = None
    except ConfigError as exc:
        problem = setup_guard.redact(str(exc), _hidden(settings))
    overrides = settings.overrides(name)
    effective = dict(values)
    for key, found in overrides.items():  # what the services run with: the environment wins
        target = effective
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
        target[last] = found["value"]
    return json_response({"section": name, "values": setup_guard.mask(values), "valid": problem is None,
                          "problem": problem, "config_file": str(settings.path), "overrides": overrides,
                          "effective": setup_guard.mask(effective)})


async def put_section(request: web.Request) -> web.Response:
    name = request.match_info["section"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise reject(request, 400, f"the body must be a JSON object with the [{name}] keys", "body")
    async with site_of(request).setup.lock:
        settings = _settings(request)
        try:
            body = setup_guard.prepare(name, body, settings.section(name))
        except setup_guard.GuardError as exc:
            raise reject(request, 403 if exc.where == "path" else 400, exc.message, exc.where) from None
        problem = breaker_problem(body, _breakers(settings)) if name == CONTROLLER else None
        if problem is not None:
            raise reject(request, 400, str(problem), problem.where)
        try:
            config = settings.put_section(name, body)
        except ConfigError as exc:
            raise _config_error(request, exc, settings, also_hide=list(setup_guard.secret_values(body))) from None
        _save(request, settings)
    # Keys the person just edited that an environment variable overrides: saved, but without effect.
    overridden = {key: found for key, found in settings.overrides(name).items() if key.split(".")[0] in body}
    return json_response({"saved": str(settings.path), "section": name, "overridden": overridden,
                          "applied": await _apply(request, name, config)})


# ------------------------------------------------------------------ devices

def _breakers(settings: Settings) -> dict[str, Any]:
    breakers: dict[str, Any] = settings.section(SELF).get("setup", {}).get("breakers", {})
    return breakers


def _ignored(settings: Settings, bridge: str) -> set[str]:
    return {str(d).strip().lower() for d in settings.section(bridge).get("deny", [])}


def _live(rec: DeviceRecord, now: float) -> dict[str, Any] | None:
    """The values that tell devices apart in the wizard (six meters look alike until a kettle goes
    on): power, or the volume of a water/gas meter, with the reading's age on our clock."""
    if rec.reading is None:
        return None
    values = {key: getattr(rec.reading, key, None) for key in LIVE_KEYS}
    age = rec.age_s(now)
    return {**{k: v for k, v in values.items() if v is not None}, "age_s": round(age, 1) if age is not None else None}


def _devices(site: Site, settings: Settings) -> dict[str, list[dict[str, Any]]]:
    roles = roles_of(settings.section(CONTROLLER), settings.section(SELF).get("site", {}), _breakers(settings))
    on_bus, now = [], time.monotonic()
    for rec in sorted(site.state.devices.values(), key=lambda r: r.ref):
        meta = rec.meta
        on_bus.append({"ref": rec.ref, "source": rec.source, "device_id": rec.device_id,
                       "kind": meta.kind if meta else None, "protocol": meta.protocol if meta else None,
                       "manufacturer": meta.manufacturer if meta else None, "model": meta.model if meta else None,
                       "serial": meta.serial if meta else None, "parent_id": meta.parent_id if meta else None,
                       "online": rec.online, "live": _live(rec, now),
                       **(roles.get(rec.ref) or {"role": "none"})})
    adopted = {rec.device_id for rec in site.state.devices.values()}
    found = []
    for ann in sorted(site.setup.discovered.devices.values(), key=lambda a: a.device_id):
        owner = site.setup.forms.owner(ann.protocol)
        names = {ann.device_id.lower(), (ann.serial or "").lower(), ann.address.lower()}
        ignored = owner is not None and bool(names & _ignored(settings, owner.service))
        found.append({**msgspec.to_builtins(ann), "bridge": owner.service if owner else None,
                      "can_ignore": bool(owner and owner.deny),
                      "state": "ignored" if ignored else "adopted" if ann.device_id in adopted else "found"})
    return {"on_bus": on_bus, "discovered": found}


async def list_devices(request: web.Request) -> web.Response:
    return json_response(_devices(site_of(request), _settings(request)))


async def adopt_or_ignore(request: web.Request) -> web.Response:
    site = site_of(request)
    device_id, action = request.match_info["device_id"], request.match_info["action"]
    ann = site.setup.discovered.devices.get(device_id)
    if ann is None:
        raise reject(request, 404, f"discovery has not announced {device_id!r}", "path")
    owner = site.setup.forms.owner(ann.protocol)
    if owner is None:  # bridges say which protocols they adopt when they start (BridgeForms)
        raise reject(request, 409, f"no bridge has announced that it handles protocol {ann.protocol!r} "
                                   "(start the bridge for it once)", "path")
    async with site.setup.lock:
        settings = _settings(request)
        section = settings.section(owner.service)
        keys = {device_id.lower(), (ann.serial or "").lower(), ann.address.lower()} - {""}
        deny = [d for d in section.get("deny", []) if str(d).strip().lower() not in keys]
        if action == "ignore":
            if not owner.deny:
                raise reject(request, 409, f"{owner.service} has no deny list: it polls only the {ann.protocol} "
                                           "devices its config names, so there is nothing to ignore", "path")
            deny.append(device_id)
        if deny:
            section["deny"] = deny
        else:
            section.pop("deny", None)
        try:
            config = settings.put_section(owner.service, section)
        except ConfigError as exc:
            raise _config_error(request, exc, settings) from None
        _save(request, settings)
    return json_response({"device_id": device_id, "state": "ignored" if action == "ignore" else "adopted",
                          "bridge": owner.service, "applied": await _apply(request, owner.service, config)})


# ------------------------------------------------------------------ roles

async def set_role(request: web.Request) -> web.Response:
    site = site_of(request)
    ref = f"{request.match_info['source']}/{request.match_info['device_id']}"
    rec = site.state.devices.get(ref)
    if rec is None or rec.meta is None:
        raise reject(request, 404, f"no device {ref} on the bus (adopt it first)", "path")
    body = convert(request, await read_json(request), RoleBody)
    async with site.setup.lock:
        settings = _settings(request)
        controller, own = settings.section(CONTROLLER), settings.section(SELF)
        site_roles = own.setdefault("site", {})
        breakers = own.setdefault("setup", {}).setdefault("breakers", {})
        stored = breakers.get(body.loadpoint_id or rec.device_id)
        if body.role == "charger" and body.breaker_a is None and stored is not None:
            body.breaker_a = stored  # the breaker given earlier still limits the maximum
        try:
            check_body(body, rec.meta.kind, ref)
            assign(controller, site_roles, breakers, ref, body)
        except RoleError as exc:
            raise reject(request, 400, str(exc), exc.where) from None
        for empty in ("site", "setup"):
            if own.get(empty) in ({}, {"breakers": {}}):
                own.pop(empty)
        try:
            controller_config = settings.put_section(CONTROLLER, controller) if controller else None
            own_config = settings.put_section(SELF, own)
        except ConfigError as exc:
            raise _config_error(request, exc, settings, "$.config") from None
        _save(request, settings)
    applied = {SELF: await _apply(request, SELF, own_config)}
    if controller_config is not None:
        applied[CONTROLLER] = await _apply(request, CONTROLLER, controller_config)
    answer: dict[str, Any] = {"ref": ref, "role": body.role, "saved": str(settings.path), "applied": applied}
    if body.role == "charger" and effective_max_a(body) < body.max_current_a:
        answer["note"] = (f"max_current_a {body.max_current_a:g} A is above the circuit breaker "
                          f"({body.breaker_a:g} A): the controller offers at most {effective_max_a(body):g} A")
    return json_response(answer)


def routes() -> list[web.RouteDef]:
    return [
        web.get(BASE, overview),
        web.get(f"{BASE}/sections/{{section}}", get_section), web.put(f"{BASE}/sections/{{section}}", put_section),
        web.get(f"{BASE}/devices", list_devices),
        web.post(f"{BASE}/devices/{{device_id}}/{{action:adopt|ignore}}", adopt_or_ignore),
        web.put(f"{BASE}/roles/{{source}}/{{device_id}}", set_role),
    ]

