"""One config file per installation, a section per service, environment overrides for containers.

    [bus]                      # shared by every service
    host = "127.0.0.1"
    [sml-reader]               # one section per service, decoded into that service's Struct
    port = "/dev/ttyUSB0"

Every key can be overridden by `WATTBUS_<SECTION>_<KEY>` (section and key upper-cased, `-` as
`_`; nested keys joined with `__`): `WATTBUS_BUS_HOST=broker`, `WATTBUS_SML_READER_PORT=/dev/ttyAMA0`.
Override values are read as TOML values where they parse (`5`, `true`, `[1, 2]`), else as text.
A bad value stops start-up with a ConfigError naming the key, the value, where it came from and
what is allowed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import Meta, Struct

from .log import get_logger

T = TypeVar("T")

DEFAULT_PATHS = (Path("/etc/wattbus/wattbus.toml"),)


class ConfigError(ValueError):
    """Start-up stops on this; str() is the whole explanation for a person."""


class ConfigStruct(Struct, kw_only=True, forbid_unknown_fields=True):
    """The base of config Structs: a key it does not know is an error that names it (a typo must
    never be ignored silently); subclasses inherit that. msgspec applies kw_only only to the fields
    of the class that says it, so a subclass whose fields are to be keyword-only (or that has a
    required field after optional ones) says `kw_only=True` itself.

    A key a service no longer has goes into RETIRED (key -> what became of it): files that still set
    it keep loading, the key is dropped before decoding and the service says so as it starts."""

    RETIRED: ClassVar[Mapping[str, str]] = {}


class BusConfig(ConfigStruct, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    username: str | None = None  # defaults to the service name when a password is set
    password: str | None = None
    password_file: str | None = None  # docker secret or the embedded stack's generated file
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    reconnect_min_s: Annotated[float, Meta(gt=0)] = 1.0
    reconnect_max_s: Annotated[float, Meta(gt=0)] = 60.0
    max_queued_messages: Annotated[int, Meta(ge=0)] = 10000  # outgoing, while disconnected
    max_inflight_messages: Annotated[int, Meta(ge=1, le=65535)] = 100  # unacknowledged QoS 1 in flight
    session_expiry_s: Annotated[int, Meta(ge=0)] = 0  # > 0: persistent session (broker queues for us)

    def resolved_password(self) -> str | None:
        if self.password is not None:
            return self.password
        if self.password_file:
            try:
                return Path(self.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"[bus] password_file = {self.password_file!r}: cannot read it ({exc})") from exc
        return None


class ServiceCommon(ConfigStruct, kw_only=True):
    """Keys every service section accepts; a service's own config Struct inherits it."""

    instance: str = "main"
    status_interval_s: Annotated[float, Meta(ge=1, le=3600)] = 30.0


def read_secret(value: str | None, file: str | None, where: str) -> str | None:
    """A secret given in the config or in a file (a docker secret); the value wins. A file that
    cannot be read is a ConfigError naming `where`."""
    if value is not None or file is None:
        return value
    try:
        return Path(file).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: password_file {file!r} cannot be read ({exc.strerror})") from None


def env_prefix(section: str) -> str:
    return "WATTBUS_" + re.sub(r"[^A-Za-z0-9]", "_", section).upper() + "_"


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(section: str, data: dict[str, Any], environ: Mapping[str, str], sources: dict[str, str]) -> None:
    prefix = env_prefix(section)
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        keys = [k.lower() for k in name[len(prefix):].split("__") if k]
        if not keys:
            continue
        target = data
        for key in keys[:-1]:
            nested = target.setdefault(key, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"{name}: [{section}] {key} is not a table, cannot set {keys[-1]} inside it")
            target = nested
        target[keys[-1]] = _parse_env_value(raw)
        sources[".".join(keys)] = f"environment variable {name}"


def _lookup(data: Any, path: list[str | int]) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


def convert(section: str, data: dict[str, Any], config_type: type[T], sources: Mapping[str, str]) -> T:
    """Decode one section into its Struct; turn msgspec's message into one a person can act on."""
    retired = retired_keys(data, config_type)
    if retired:
        data = {key: value for key, value in data.items() if key not in retired}
    try:
        return msgspec.convert(data, type=config_type, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = re.search(r" - at `\$(.*)`$", text)
        reason = text[: where.start()] if where else text
        path: list[str | int] = [a if a else int(b) for a, b in _PATH_PART.findall(where.group(1) if where else "")]
        key = ".".join(str(p) for p in path)
        origin = sources.get(key) or sources.get(str(path[0]) if path else "", "the config file")
        value = _lookup(data, path) if path else None
        shown = f" = {value!r}" if value is not None else ""
        label = f"[{section}] {key}".rstrip()
        hint = _allowed_hint(config_type, path, reason)
        raise ConfigError(f"config {label}{shown} (from {origin}): {reason}{hint}") from exc


def retired_keys(data: Mapping[str, Any], config_type: Any) -> dict[str, str]:
    """The keys of a section that its Struct lists as retired, each with what became of it."""
    retired: Mapping[str, str] = getattr(config_type, "RETIRED", {})
    return {key: retired[key] for key in data if key in retired}


def _bare(info: Any) -> Any:
    """The type itself: without `| None` and without Meta (descriptions) around it."""
    while isinstance(info, msgspec.inspect.UnionType | msgspec.inspect.Metadata):
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        else:
            info = next((t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)), info.types[0])
    return info


def _allowed_hint(config_type: Any, path: list[str | int], reason: str) -> str:
    """Spell out what is allowed where msgspec's message does not (enums, unknown keys)."""
    info: Any = msgspec.inspect.type_info(config_type)
    for step in path:
        info = _bare(info)
        if isinstance(step, int) and isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType):
            info = info.item_type
        elif isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == step), None)
        else:
            return ""
    info = _bare(info)
    if "unknown field" in reason and isinstance(info, msgspec.inspect.StructType):
        return "; known keys: " + ", ".join(f.encode_name for f in info.fields)
    if isinstance(info, msgspec.inspect.LiteralType):
        return "; allowed: " + ", ".join(repr(v) for v in info.values)
    return ""


class LoadedConfig:
    """The parsed file plus the environment; sections are decoded on demand by type."""

    def __init__(self, data: dict[str, Any], path: Path | None, environ: Mapping[str, str]) -> None:
        self.data = data
        self.path = path
        self.environ = environ

    def section(self, name: str, config_type: type[T]) -> T:
        raw = self.data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"config [{name}] must be a table, got {type(raw).__name__}")
        data = dict(raw)
        origin = f"{self.path}" if self.path else "defaults"
        sources = dict.fromkeys(data, origin)
        _apply_env(name, data, self.environ, sources)
        for key, became in retired_keys(data, config_type).items():
            get_logger("config").warning("config key no longer used, ignored: remove it", section=name, key=key,
                                         source=sources.get(key, origin), why=became)
        return convert(name, data, config_type, sources)

    def bus(self) -> BusConfig:
        return self.section("bus", BusConfig)


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read the config file: the given path, else $WATTBUS_CONFIG, else /etc/wattbus/wattbus.toml if present."""
    environ = os.environ if environ is None else environ
    chosen: Path | None = Path(path) if path else None
    if chosen is None and environ.get("WATTBUS_CONFIG"):
        chosen = Path(environ["WATTBUS_CONFIG"])
    if chosen is None:
        chosen = next((p for p in DEFAULT_PATHS if p.exists()), None)
    if chosen is None:
        return LoadedConfig({}, None, environ)
    try:
        data = tomllib.loads(chosen.read_text())
    except OSError as exc:
        raise ConfigError(f"config file {chosen}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {chosen}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {chosen}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    return LoadedConfig(data, chosen, environ)
