"""Read and write the installation's config file, validated by each service's own config Struct.

The web UI's setup page, its REST endpoints and `wattbus config` change the same TOML file a
person edits by hand. Edits go through tomlkit so comments, key order and blank lines survive
(the file stays readable and diff-friendly); a value is only rewritten when it changed.

One source of truth: a section is valid when the service's own Struct decodes it, with the same
message the service prints at start-up (`wattbus.config.convert`). Services never import each
other, so the Struct is found at run time by the service's name:

    console script `wattbus-<name>` -> module `wattbus_<name with _>.__main__` -> `SERVICE.config_type`

`ServiceTypes.config_type` (via `wattbus.multi.load_service`, which `wattbus run-many` uses the
same way) is the ONE place outside run-many that imports a service module by name, and only the
setup code path calls it. We chose this over services publishing a JSON Schema on the bus:
validation then works with the stack down (`wattbus config check` before the first start), it
gives the exact msgspec messages and constraints (patterns, bounds, tagged unions) without a
JSON-Schema validator, and it needs no change in any service (every one already has SERVICE).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Table

from .config import BusConfig, ConfigError, _apply_env, convert
from .messages import CommandResult
from .site import SiteConfig

_SECRET = re.compile(r"(password|token|secret|key)$")  # key_file, password_file: paths, shown
NOT_SERVICES = frozenset({"sim"})  # wattbus-sim runs simulators, it has no config section
SETUP_COMMENT = "written by wattbus setup (web UI, REST or `wattbus config`); edit freely"


def installed_services() -> list[str]:
    """Service names from the installed console scripts `wattbus-<name> = wattbus_<x>.__main__:main`."""
    names = set()
    for ep in metadata.entry_points(group="console_scripts"):
        if not ep.name.startswith("wattbus-") or not ep.value.endswith(".__main__:main"):
            continue
        name = ep.name[len("wattbus-"):]
        if name not in NOT_SERVICES and ep.value == f"wattbus_{name.replace('-', '_')}.__main__:main":
            names.add(name)
    return sorted(names)


@dataclass
class ServiceTypes:
    """Config Structs by section name, imported on first use."""

    known: list[str] = field(default_factory=installed_services)
    _types: dict[str, type[Any]] = field(default_factory=dict)

    def config_type(self, section: str) -> type[Any]:
        if section == "bus":
            return BusConfig
        if section == "site":  # no service: the table every service reads the site's devices from
            return SiteConfig
        if section not in self._types:
            if section not in self.known:
                raise ConfigError(f"config [{section}]: no service {section!r} is installed "
                                  f"(known: bus, {', '.join(self.known)})")
            from .multi import load_service  # the shared by-name loader (see the module docstring)

            try:
                self._types[section] = load_service(section).config_type
            except (ImportError, TypeError, ValueError) as exc:  # a service that is broken, not ours to crash on
                raise ConfigError(f"config [{section}]: cannot load service {section!r} to validate it "
                                  f"({type(exc).__name__}: {exc})") from exc
        return self._types[section]


def parse_value(raw: str) -> Any:
    """A command-line value: TOML where it parses (`5`, `true`, `["a"]`, `{x = 1}`), else text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


class ConfigFile:
    """One config file: read, validate, change (keeping the layout) and save atomically."""

    def __init__(self, path: Path, types: ServiceTypes | None = None) -> None:
        self.path = path
        self.types = types or ServiceTypes()
        self.doc = self._read()

    def _read(self) -> tomlkit.TOMLDocument:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return tomlkit.document()  # first run: the file appears on the first save
        except OSError as exc:
            raise ConfigError(f"config file {self.path}: cannot read it ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {self.path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
        try:
            return tomlkit.parse(text)
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(f"config file {self.path}: not valid TOML ({exc})") from exc

    def reload(self) -> None:
        """Pick up edits made by hand since we read the file."""
        self.doc = self._read()

    # ------------------------------------------------------------------ reading

    def sections(self) -> list[str]:
        return [str(k) for k, v in self.doc.items() if isinstance(v, Table | dict)]

    def section(self, name: str) -> dict[str, Any]:
        """The section as plain data ({} when absent)."""
        item = self.doc.get(name)
        if item is None:
            return {}
        data = item.unwrap() if hasattr(item, "unwrap") else item
        if not isinstance(data, dict):
            raise ConfigError(f"config [{name}] must be a table, got {type(data).__name__}")
        return data

    def overrides(self, name: str, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """Keys of [name] a WATTBUS_<SECTION>_<KEY> variable sets (config.load applies them over the
        file): dotted key -> {"env", "value" (effective), "file_value", "note"}. Editing such a key in
        the file changes nothing while the variable is set, and the UI, REST and CLI say so."""
        found = env_overrides(name, os.environ if environ is None else environ)
        data = self.section(name)
        out: dict[str, dict[str, Any]] = {}
        for key, (env, value) in sorted(found.items()):
            file_value: Any = data
            for part in key.split("."):
                file_value = file_value.get(part) if isinstance(file_value, dict) else None
            if _SECRET.search(key.rsplit(".", 1)[-1]):  # shown over REST: say that it is set, not what
                value, file_value = "(secret)", None if file_value is None else "(secret)"
            out[key] = {"env": env, "value": value, "file_value": file_value,
                        "note": f"{env} sets [{name}] {key} = {value!r}; editing the file will not change it "
                                "while that variable is set"}
        return out

    def validate(self, name: str, data: Mapping[str, Any], origin: str = "the request") -> Any:
        """The section decoded by its service's Struct; ConfigError naming key, value and rule."""
        config_type = self.types.config_type(name)
        return convert(name, dict(data), config_type, dict.fromkeys(data, origin))

    def check(self) -> dict[str, str]:
        """Every section's problem (empty = all sections valid)."""
        problems: dict[str, str] = {}
        for name in self.sections():
            try:
                self.validate(name, self.section(name), str(self.path))
            except ConfigError as exc:
                problems[name] = str(exc)
        return problems

    # ------------------------------------------------------------------ changing

    def put_section(self, name: str, data: Mapping[str, Any]) -> Any:
        """Validate, then make the file's section equal to data (unchanged keys keep their comments)."""
        config = self.validate(name, data)
        table = self.doc.get(name)
        if isinstance(table, Table):
            _merge(table, dict(data))
        else:
            if self.doc.body:
                self.doc.add(tomlkit.nl())
            new = tomlkit.table()
            new.comment(SETUP_COMMENT)
            _merge(new, dict(data))
            self.doc.add(name, new)
        return config

    def set_value(self, name: str, key: str, value: Any) -> Any:
        """Set one (dotted: `site.grid`, `loadpoints.0.max_current_a`) key and validate the section."""
        data = self.section(name)
        target: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = _step(target, part, key, create=True)
        last = parts[-1]
        if isinstance(target, list):
            target[_index(target, last, key)] = value
        else:
            target[last] = value
        return self.put_section(name, data)

    def save(self) -> None:
        """Write atomically (temp file + rename), so a service never reads half a file."""
        text = tomlkit.dumps(self.doc)
        tomllib.loads(text)  # what we write must parse with the reader the services use
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            if self.path.exists():
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigError(f"config file {self.path}: cannot write it ({exc.strerror})") from exc


def env_overrides(section: str, environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Dotted key -> (variable name, value as the services read it), by the rules of wattbus.config."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    _apply_env(section, data, environ, sources)
    out: dict[str, tuple[str, Any]] = {}
    for key, source in sources.items():
        value: Any = data
        for part in key.split("."):
            value = value[part]
        out[key] = (source.removeprefix("environment variable "), value)
    return out


def _step(target: Any, part: str, key: str, create: bool) -> Any:
    if isinstance(target, list):
        return target[_index(target, part, key)]
    if not isinstance(target, dict):
        raise ConfigError(f"config key {key!r}: {part!r} is inside a value that is not a table")
    if part not in target and create:
        target[part] = {}
    return target[part]


def _index(target: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(target):
        raise ConfigError(f"config key {key!r}: {part!r} is not an index of a list with {len(target)} items")
    return int(part)


def _merge(table: Table | Container, data: dict[str, Any]) -> None:
    """Make table equal to data, touching only what differs (comments on unchanged keys stay)."""
    for key in [str(k) for k in table]:
        if key not in data:
            del table[key]
    for key, value in data.items():
        current = table.get(key)
        plain = current.unwrap() if isinstance(current, tomlkit.items.Item) else current
        if current is not None and plain == value:
            continue
        if isinstance(value, dict) and isinstance(current, Table):
            _merge(current, value)
        elif _is_tables(value) and isinstance(current, AoT) and len(current) == len(value):
            for item, new in zip(current, value, strict=True):
                _merge(item, new)
        elif _is_tables(value):
            aot = tomlkit.aot()
            for new in value:
                item = tomlkit.table()
                _merge(item, new)
                aot.append(item)
            table[key] = aot
        elif isinstance(value, dict):
            sub = tomlkit.table()
            _merge(sub, value)
            table[key] = sub
        else:
            table[key] = value


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


async def request_reload(bus_config: BusConfig, service: str, instance: str = "main",
                         timeout_s: float = 10.0) -> CommandResult:
    """Ask a running service to re-read its section (`wattbus config apply`); its answer, or a timeout."""
    from . import topics
    from .bus import Bus, Message
    from .messages import ReloadConfig

    request_id = uuid.uuid4().hex
    answer: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()

    def on_result(msg: Message[CommandResult]) -> None:
        if msg.payload.request_id == request_id and not answer.done():
            answer.set_result(msg.payload)

    # `instance = "auto"` replicas have no name we know: ask all of them, take the first answer.
    every = instance in ("auto", topics.ALL_INSTANCES)
    bus = Bus(bus_config, "wattbus-config", f"cli-{request_id[:8]}")
    bus.subscribe(f"{topics.PREFIX}/service/{topics.segment(service, 'service')}/+/result" if every
                  else topics.service_result(service, instance), CommandResult, on_result)
    await bus.start()
    try:
        if not await bus.wait_connected(timeout_s):
            # The name the bus really logs in with: a password without a user name logs in as
            # "wattbus-config", which no broker account has (set WATTBUS_BUS_USERNAME).
            login = bus_config.username or ("wattbus-config" if bus_config.resolved_password() is not None
                                            else "anonymous")
            hint = "" if bus_config.username or login == "anonymous" else \
                " (no user name given: set WATTBUS_BUS_USERNAME to an account such as admin)"
            raise ConfigError(f"cannot reach the broker at {bus_config.host}:{bus_config.port} as "
                              f"{login}{hint}")
        bus.publish(topics.service_broadcast(service) if every else topics.service_command(service, instance),
                    ReloadConfig(request_id=request_id))
        return await asyncio.wait_for(answer, timeout_s)
    except TimeoutError:
        return CommandResult(status="timeout", command="reload_config", target=f"{service}/{instance}",
                             request_id=request_id, message=f"{service}/{instance} did not answer within "
                             f"{timeout_s:g} s (not running, or the broker user may not write its command topic)")
    finally:
        await bus.stop()
