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
from wattbus.config import ConfigError, ServiceCommon, load
from wattbus.settings import ConfigFile, env_overrides
from wattbus.site import site_config

from . import setup_guard
from .config import Config
from .setup_fields import describe
from .setup_roles import (
    CHARGER_KEYS,
    CONTROLLER,
    SITE,
    TUNING,
    RoleBody,
    RoleError,
    effective_max_a,
    roles_of,
    write_role,
)
from .site import Site
from .state import DeviceRecord
from .web import convert, json_response, read_json, reject, site_of

BASE = "/api/v1/setup"
SELF = "http-api"
HELP = tomllib.loads((Path(__file__).parent / "data" / "settings_help.toml").read_text())
LIVE_KEYS = ("power_w", "soc_pct", "water_m3", "gas_m3")
_WHERE = re.compile(r"^config \[[^\]]+\] ([^\s=(]+)")


def _settings(request: web.Request) -> ConfigFile:
    site = site_of(request)
    if not site.config.setup.enabled:
        raise reject(request, 403, "setup is switched off here ([http-api] setup.enabled = false)")
    if site.setup.config_file is None:
        raise reject(request, 409, "this http-api was started without a config file: start it with --config or "
                                   "WATTBUS_CONFIG (or set [http-api] setup.config_file)")
    try:
        return ConfigFile(site.setup.config_file)
    except ConfigError as exc:
        raise reject(request, 409, str(exc), "file") from None


def _hidden(settings: ConfigFile) -> list[str]:
    """Every secret value in the file: never part of an answer, not even inside an error message."""
    return list(setup_guard.secret_values({name: settings.section(name) for name in settings.sections()}))


def _config_error(request: web.Request, exc: ConfigError, settings: ConfigFile, prefix: str = "$",
                  also_hide: list[str] | None = None) -> web.HTTPException:
    found = _WHERE.match(str(exc))
    where = f"{prefix}.{found.group(1)}" if found else prefix
    return reject(request, 400, setup_guard.redact(str(exc), [*_hidden(settings), *(also_hide or [])]), where)


def _save(request: web.Request, settings: ConfigFile) -> None:
    try:
        settings.save()
    except ConfigError as exc:
        raise reject(request, 409, str(exc), "file") from None


async def _apply(request: web.Request, section: str, config: Any) -> dict[str, Any]:
    """Tell the section's service; our own section is applied in place (roles) or by a deferred reload."""
    site = site_of(request)
    if section == SITE:
        return _apply_site(site)
    if section == SELF:
        new: Config = config
        _apply_site(site)  # an old [http-api.site] table may have changed
        site.ctx.config = msgspec.structs.replace(site.config, setup=new.setup)
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


def _apply_site(site: Site) -> dict[str, Any]:
    """The power flow follows the file's [site] (old places included, environment on top) at once."""
    try:
        roles = site_config(load(site.setup.config_file, os.environ))
    except ConfigError as exc:
        return {"status": "invalid", "message": str(exc)}
    site.roles.cfg = roles
    site.ctx.config = msgspec.structs.replace(site.config, site=roles)
    return {"status": "ok", "message": "applied now"}


def _roles(settings: ConfigFile) -> dict[str, dict[str, Any]]:
    """Each device's role as the file states it ([site], or the old places while they are in use)."""
    try:
        return roles_of(msgspec.to_builtins(site_config(load(settings.path, {}))))
    except ConfigError:  # the problem shows in the overview's problems; the roles as far as [site] goes
        return roles_of(settings.section(SITE))


# ------------------------------------------------------------------ overview and sections

async def overview(request: web.Request) -> web.Response:
    settings = _settings(request)
    site = site_of(request)
    roles = _roles(settings)
    hidden = _hidden(settings)
    problems = {name: setup_guard.redact(text, hidden) for name, text in settings.check().items()}
    return json_response({"config_file": str(settings.path), "sections": settings.sections(),
                          "problems": problems, "services": settings.types.known,
                          # first run: no role anywhere yet (the UI opens on the setup page then)
                          "first_run": not roles,
                          "help": HELP, "fields": _fields(settings),
                          **site.setup.forms.page(),  # "forms" of running bridges, "not_running" ones
                          "roles": roles,
                          "overrides": {name: found for name in ("bus", *settings.types.known)
                                        if (found := settings.overrides(name))},
                          "devices": _devices(site, settings)})


def _fields(settings: ConfigFile) -> dict[str, list[dict[str, Any]]]:
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
    if name not in ("bus", SITE) and name not in settings.types.known:
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

def _ignored(settings: ConfigFile, bridge: str) -> set[str]:
    return {str(d).strip().lower() for d in settings.section(bridge).get("deny", [])}


def _live(rec: DeviceRecord, now: float) -> dict[str, Any] | None:
    """The values that tell devices apart in the wizard (six meters look alike until a kettle goes
    on): power, or the volume of a water/gas meter, with the reading's age on our clock."""
    if rec.reading is None:
        return None
    values = {key: getattr(rec.reading, key, None) for key in LIVE_KEYS}
    age = rec.age_s(now)
    return {**{k: v for k, v in values.items() if v is not None}, "age_s": round(age, 1) if age is not None else None}


def _devices(site: Site, settings: ConfigFile) -> dict[str, list[dict[str, Any]]]:
    roles = _roles(settings)
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
        try:
            changed = write_role(settings, ref, rec.meta.kind, body)  # [site], and the old places it replaces
        except RoleError as exc:
            raise reject(request, 400, str(exc), exc.where) from None
        except ConfigError as exc:
            raise _config_error(request, exc, settings, "$.config") from None
        _save(request, settings)
    applied = {name: await _apply(request, name, config) for name, config in changed.items() if name != SITE}
    applied[SITE] = await _apply(request, SITE, changed[SITE])
    if CONTROLLER in settings.types.known:  # it regulates on [site]: a reload picks the roles up
        instance = msgspec.structs.replace(ServiceCommon(), **{k: v for k, v in settings.section(CONTROLLER).items()
                                                               if k == "instance"})
        applied[CONTROLLER] = await _apply(request, CONTROLLER, instance)
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

