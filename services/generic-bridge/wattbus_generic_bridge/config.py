"""The `[generic-bridge]` section: one entry per device, each naming its description and its address.

    [[generic-bridge.devices]]
    id = "water"                 # the device id on the bus
    template = "ai-on-the-edge"  # a shipped description (data/<template>.toml) ...
    # file = "/etc/wattbus/devices/heatpump.toml"   # ... or a file of your own ...
    # description = { kind = "meter", ... }         # ... or the description inline
    host = "192.168.1.60"
    vars = { number = "main" }   # the description's other variables ({port}, {meter}, ...)
    # serial_port = "/dev/ttyUSB0"  # a Modbus description over RTU (baudrate, parity, stopbits, unit_id)
    # broker = { host = "10.0.0.5", username = "wattbus", password_file = "/run/secrets/hp" }  # MQTT elsewhere

A description is resolved, decoded and checked once at start-up (`resolve`): anything wrong is a
ConfigError naming the device, the key and what is wrong, and the service does not start.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from wattbus import topics
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ConfigError, ConfigStruct, ServiceCommon

from . import families
from .brokers import BrokerConfig, client_id_clashes
from .spec import Description, ModbusSource, MqttSource, problems
from .writes import VALUE

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
    timeout_s: Annotated[float, Meta(gt=0, le=60)] | None = None  # overrides the description's (Modbus)
    # Modbus RTU: the description's registers over this serial line instead of TCP to {host}.
    serial_port: str | None = None  # "/dev/ttyUSB0", or "socket://host:port" (RTU frames over TCP)
    baudrate: Annotated[int, Meta(ge=300, le=921600)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit_id: Annotated[int, Meta(ge=0, le=255)] | None = None  # fills {unit_id}
    broker: BrokerConfig | None = None  # an MQTT description's topics on another broker
    # A charger's current limits, inside the description's: commands outside are refused by the bridge.
    min_current_a: Annotated[float, Meta(ge=0, le=80)] | None = None
    max_current_a: Annotated[float, Meta(ge=0, le=80)] | None = None

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
    elif dev.serial_port is not None:
        out["host"] = ""  # RTU: the description's {host} is not used
    if dev.port is not None:
        out["port"] = str(dev.port)
    if dev.unit_id is not None:
        out["unit_id"] = str(dev.unit_id)
    return out


def substitute(data: Any, values: dict[str, str], where: str) -> Any:
    """Fill {name} in every string of the description; an unknown name is a start-up error."""
    if isinstance(data, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if match.group(0) == VALUE:  # a write's commanded value: filled when a command comes
                return VALUE
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
    entry_problems(dev, desc, where)
    return desc


def entry_problems(dev: DeviceConfig, desc: Description, where: str) -> None:
    """What in the device entry does not fit its description (a serial port for an HTTP device)."""
    source = desc.source
    if dev.serial_port is not None and not isinstance(source, ModbusSource):
        raise ConfigError(f"{where}.serial_port: the description reads {_tag(source)}; a serial port carries "
                          "Modbus RTU only")
    if dev.serial_port is not None and not dev.serial_port.strip():
        raise ConfigError(f"{where}.serial_port: empty; give the device (/dev/ttyUSB0) or socket://host:port")
    if dev.broker is not None:
        if not isinstance(source, MqttSource):
            raise ConfigError(f"{where}.broker: the description reads {_tag(source)}; a broker serves MQTT "
                              "sources only")
        dev.broker.check(where)
    limits = [k for k in ("min_current_a", "max_current_a") if getattr(dev, k) is not None]
    write = desc.write
    if limits and (write is None or write.charge_current is None):
        raise ConfigError(f"{where}.{limits[0]}: the description writes no charge current")
    if write is None:
        return
    low, high = current_limits(dev, desc)
    for key, value in (("min_current_a", dev.min_current_a), ("max_current_a", dev.max_current_a)):
        if value is not None and not write.min_current_a <= value <= write.max_current_a:
            raise ConfigError(f"{where}.{key} = {value:g}: outside the charger's {write.min_current_a:g}-"
                              f"{write.max_current_a:g} A (the description's write.min/max_current_a)")
    if low > high:
        raise ConfigError(f"{where}.min_current_a = {low:g}: above max_current_a = {high:g}")


def current_limits(dev: DeviceConfig, desc: Description) -> tuple[float, float]:
    """The charge current range the bridge allows: the device entry's, else the description's."""
    assert desc.write is not None
    low = dev.min_current_a if dev.min_current_a is not None else desc.write.min_current_a
    high = dev.max_current_a if dev.max_current_a is not None else desc.write.max_current_a
    return low, high


def _tag(source: Any) -> str:
    return str(source.__struct_config__.tag)


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
    lines: dict[str, tuple[int, DeviceConfig]] = {}
    for index, dev in enumerate(config.devices):  # one serial line, one set of line settings
        if dev.serial_port is None:
            continue
        first_index, first = lines.setdefault(dev.serial_port, (index, dev))
        theirs, mine = ((d.baudrate, d.parity, d.stopbits) for d in (first, dev))
        if theirs != mine:
            raise ConfigError(f"devices[{index}] ({dev.id}).serial_port = {dev.serial_port!r}: baudrate/parity/"
                              f"stopbits {mine} differ from devices[{first_index}] ({first.id})'s {theirs} "
                              "on the same line")
    clash = client_id_clashes([(f"devices[{i}] ({d.id})", d.broker) for i, d in enumerate(config.devices)
                               if d.broker is not None])
    if clash is not None:
        raise ConfigError(clash)
    return [(dev, resolve(dev, i)) for i, dev in enumerate(config.devices) if not family_entry(dev, i)]


def family_entry(dev: DeviceConfig, index: int) -> bool:
    """True for an entry of a device family (families/): checked here, its adapter started by the service."""
    if dev.template not in families.FAMILIES:
        return False
    families.check(dev.template, dev, f"devices[{index}] ({dev.id})",
                   {"file": dev.file, "description": dev.description, "vars": dev.vars,
                    "password": dev.password or dev.password_file, "serial_port": dev.serial_port,
                    "broker": dev.broker, "unit_id": dev.unit_id})
    return True
