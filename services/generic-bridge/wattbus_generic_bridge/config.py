"""The `[generic-bridge]` section: one entry per device, each naming its description and its address.

    [[generic-bridge.devices]]
    id = "water"                 # the device id on the bus
    template = "ai-on-the-edge"  # a shipped description (data/<template>.toml) ...
    # file = "/etc/wattbus/devices/heatpump.toml"   # ... or a file of your own ...
    # description = { kind = "meter", ... }         # ... or the description inline
    host = "192.168.1.60"
    vars = { number = "main" }   # the description's other variables ({port}, {meter}, ...)

A description is resolved, decoded and checked once at start-up (`resolve`): anything wrong is a
ConfigError naming the device, the key and what is wrong, and the service does not start.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from wattbus import topics
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ConfigError, ConfigStruct, ServiceCommon

from . import families
from .spec import Description, problems

DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
                               description="letters, digits and _ . : - (the device id on the bus)")]
VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class DeviceConfig(ConfigStruct, kw_only=True):
    id: DeviceId
    template: str | None = None
    file: str | None = None
    description: dict[str, Any] | None = None
    name: str | None = None  # shown in the UI
    host: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    vars: dict[str, str] = {}
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    interval_s: Annotated[float, Meta(gt=0, le=86400)] | None = None  # overrides the description's

    def resolved_password(self) -> str | None:
        if self.password is not None or self.password_file is None:
            return self.password
        try:
            return Path(self.password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"device {self.id!r}: password_file {self.password_file!r} "
                              f"cannot be read ({exc.strerror})") from None


class Config(ServiceCommon, kw_only=True):
    devices: list[DeviceConfig] = []
    offline_after_failures: Annotated[int, Meta(ge=1, le=100)] = 2
    max_backoff_s: Annotated[float, Meta(ge=1, le=3600)] = 300.0
    # `--scale` replicas share the devices (wattbus.bridge.ownership); 0 = poll every device here
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        # Decoding the section checks every description too, so the runner refuses a bad one before
        # it connects (exit 2, the message names device, key and problem) and reload_config answers
        # `invalid` instead of restarting into a broken config.
        resolve_all(self)


def templates() -> dict[str, str]:
    """Shipped descriptions: name -> TOML text."""
    folder = resources.files(__package__) / "data"
    return {entry.name.removesuffix(".toml"): entry.read_text() for entry in folder.iterdir()
            if entry.name.endswith(".toml")}


def _raw_description(dev: DeviceConfig, where: str) -> tuple[dict[str, Any], str]:
    given = [k for k in ("template", "file", "description") if getattr(dev, k) is not None]
    if len(given) != 1:
        raise ConfigError(f"{where}: give exactly one of template, file or description "
                          f"(got {', '.join(given) or 'none'})")
    if dev.description is not None:
        return dict(dev.description), "description"
    if dev.template is not None:
        shipped = templates()
        if dev.template not in shipped:
            raise ConfigError(f"{where}.template = {dev.template!r}: no such shipped description; "
                              f"known: {', '.join(sorted([*shipped, *families.FAMILIES]))}")
        text, origin = shipped[dev.template], f"template {dev.template!r}"
    else:
        assert dev.file is not None
        try:
            text, origin = Path(dev.file).read_text(), f"file {dev.file}"
        except OSError as exc:
            raise ConfigError(f"{where}.file = {dev.file!r}: cannot read it ({exc.strerror})") from None
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {origin} is not valid TOML ({exc})") from None


def variables(dev: DeviceConfig, defaults: dict[str, str]) -> dict[str, str]:
    out = {**defaults, **dev.vars}
    if dev.host is not None:
        out["host"] = dev.host
    if dev.port is not None:
        out["port"] = str(dev.port)
    return out


def substitute(data: Any, values: dict[str, str], where: str) -> Any:
    """Fill {name} in every string of the description; an unknown name is a start-up error."""
    if isinstance(data, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                hint = "set host = \"...\" in the device entry" if name == "host" else \
                       f"set vars = {{ {name} = \"...\" }} in the device entry"
                raise ConfigError(f"{where}: {data!r} uses {{{name}}}, which has no value; {hint}")
            return values[name]
        whole = VARIABLE.fullmatch(data)
        if whole is not None and values.get(whole.group(1), "").isdigit():
            return int(one(whole))  # "{port}" alone fills an integer key (port, unit_id)
        return VARIABLE.sub(one, data)
    if isinstance(data, list):
        return [substitute(item, values, f"{where}[{i}]") for i, item in enumerate(data)]
    if isinstance(data, dict):
        return {k: v if k in ("defaults", "about") else substitute(v, values, f"{where}.{k}") for k, v in data.items()}
    return data


def resolve(dev: DeviceConfig, index: int) -> Description:
    """The device's description with its variables filled in, decoded and checked."""
    where = f"devices[{index}] ({dev.id})"
    dev.resolved_password()  # an unreadable password file stops the start too
    raw, origin = _raw_description(dev, where)
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise ConfigError(f"{where}: {origin}: defaults must be a table of text values")
    filled = substitute(raw, variables(dev, defaults), f"{where} {origin}")
    try:
        desc = msgspec.convert(filled, type=Description, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where} {origin}: {_explain(exc, filled)}") from None
    found = problems(desc)
    if found:
        listed = "; ".join(f"{key}: {why}" for key, why in found)
        raise ConfigError(f"{where} {origin}: {listed}")
    return desc


def _explain(exc: msgspec.ValidationError, data: dict[str, Any]) -> str:
    """msgspec's reason with the key as a TOML user writes it (values[0].unit) and the value found."""
    text = str(exc)
    reason, _, at = text.partition(" - at `$")
    path = [p for p in re.split(r"\.|\[|\]", at.rstrip("`")) if p]
    key = ".".join(f"[{p}]" if p.isdigit() else p for p in path).replace(".[", "[")
    node: Any = data
    for part in path:
        try:
            node = node[int(part)] if part.isdigit() else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            node = None
            break
    unknown = re.search(r"unknown field `([^`]+)`", reason)
    if unknown:  # "unknown field" would also make the section's own hint list the service's keys
        return f"{key + '.' if key else ''}{unknown.group(1)}: not a key of a device description here"
    shown = f" = {node!r}" if node is not None and not isinstance(node, dict | list) else ""
    hint = "; allowed: http, mqtt, modbus" if key == "source.type" else ""
    return f"{key or 'description'}{shown}: {reason}{hint}"


def resolve_all(config: Config) -> list[tuple[DeviceConfig, Description]]:
    ids = [topics.segment(d.id, "device id") for d in config.devices]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"devices: id {duplicate!r} is used more than once")
    return [(dev, resolve(dev, i)) for i, dev in enumerate(config.devices) if not family_entry(dev, i)]


def family_entry(dev: DeviceConfig, index: int) -> bool:
    """True for an entry of a device family (families/): checked here, its adapter started by the service."""
    if dev.template not in families.FAMILIES:
        return False
    families.check(dev.template, dev, f"devices[{index}] ({dev.id})",
                   {"file": dev.file, "description": dev.description, "vars": dev.vars,
                    "password": dev.password or dev.password_file})
    return True
