"""`wattbus run-many`: several services in one process, for small devices.

Every service on a Raspberry Pi is a Python interpreter of its own (~20-40 MB RSS each, most of
it the interpreter and shared libraries: msgspec, paho, asyncio). `wattbus run-many sml-reader
sunspec-bridge surplus-controller` runs their `Service` objects in one asyncio loop instead.

The bus-only coupling stays: each service keeps its own Bus client (own client id, own broker
user and password, own last will), its own status heartbeat, counters and config section, and
services still talk to each other only through the broker. What they share is the interpreter,
the event loop, the default thread pool and the signal handler. A service whose `run` fails is
restarted in place after a doubling delay (what supervisord's autorestart does for a process),
without touching the others. A service whose config section is refused (a first run, a typo) does
not start and does not stop the others: it waits until the file holds a valid section.

Per-service broker passwords come from `--secrets-dir DIR` (DIR/<service>, the layout of the
embedded stack's run/secrets/), or from `[bus] password_file` containing `{service}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from . import __version__, topics
from . import messages as m
from .bus import Bus
from .config import BusConfig, ConfigError, LoadedConfig, load
from .log import get_logger, setup_logging
from .runner import Service

RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0
CONFIG_POLL_S = 2.0  # how often a refused service looks at the config file again


def module_name(service: str) -> str:
    """`sml-reader` -> `wattbus_sml_reader` (the package layout every service follows)."""
    return "wattbus_" + service.replace("-", "_")


def load_service(name: str) -> Service[Any]:
    """The `SERVICE` object of a service package's `__main__` (imported, not executed as a script)."""
    if not name or not all(c.isalnum() or c == "-" for c in name):
        raise ConfigError(f"{name!r} is not a service name (like sml-reader)")
    module = f"{module_name(name)}.__main__"
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise ConfigError(f"no service {name!r} installed (module {module} not found)") from exc
        raise
    service = getattr(imported, "SERVICE", None)
    if not isinstance(service, Service):
        raise ConfigError(f"{module} has no SERVICE = Service(...) to run in-process")
    return service


def bus_config_for(base: BusConfig, service: str, secrets_dir: Path | None) -> BusConfig:
    """The shared [bus] settings with this service's own broker user and password."""
    changes: dict[str, object] = {"username": service, "password": None}
    if secrets_dir is not None:
        changes["password_file"] = str(secrets_dir / service)
    elif base.password_file and "{service}" in base.password_file:
        changes["password_file"] = base.password_file.replace("{service}", service)
    elif base.password is not None or base.password_file:
        # One password for every user would log all services in as one identity or fail the ACL.
        raise ConfigError("give each service its own broker password: --secrets-dir DIR "
                          "(DIR/<service>) or [bus] password_file with {service} in it")
    else:
        changes["username"] = None  # anonymous broker (a demo): nothing to log in with
    return msgspec.structs.replace(base, **changes)


@dataclass
class Slot:
    """One service in the shared loop, with its own stop event."""

    service: Service[Any]
    bus: BusConfig
    stopping: asyncio.Event
    restarts: int = 0
    exit_code: int = 0
    problem: str | None = None  # why its section (or password) is refused: it waits for a fix


def refusal(slot: Slot, loaded: LoadedConfig) -> str | None:
    """What keeps this service from starting with this config, or None."""
    try:
        slot.service.config_of(loaded)
        slot.bus.resolved_password()
    except ConfigError as exc:
        return str(exc)
    return None


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        found = path.stat() if path is not None else None
    except OSError:  # being replaced (setup saves by rename) or gone: look again next time
        return None
    return (found.st_mtime_ns, found.st_size) if found is not None else None


class Refusal:
    """The retained status of a service that does not run, saying why: every consumer (the web UI,
    `wattbus status`) shows it next to the service instead of a silent gap. Logged in as the service
    itself (its ACL allows its own status topics); gone once the service starts and reports itself."""

    def __init__(self, slot: Slot, loaded: LoadedConfig) -> None:
        raw = loaded.data.get(slot.service.name, {})
        configured = raw.get("instance") if isinstance(raw, dict) else None
        # the section is refused, so its instance may be too: the default then
        self.instance = "main"
        if isinstance(configured, str) and configured != "auto":
            # not a usable instance name (maybe that is the refusal): the default stays
            with contextlib.suppress(topics.TopicError):
                self.instance = topics.segment(configured, "instance")
        self.name = slot.service.name
        self.started_at = m.utc_now()
        self.availability = topics.service_availability(self.name, self.instance)
        self.bus: Bus | None = None
        try:
            self.bus = Bus(slot.bus, self.name, self.instance, will=(self.availability, m.OFFLINE.encode()),
                           log=get_logger("run-many").child(self.name))
        except ConfigError:  # no password to log in with (that may be the refusal): the log says it
            self.bus = None

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()

    def report(self, problem: str) -> None:
        if self.bus is None:
            return
        status = m.ServiceStatus(service=self.name, instance=self.instance, version=__version__,
                                 started_at=self.started_at, uptime_s=0.0,
                                 device_errors=[m.DeviceError(address="config", error=f"not started: {problem}",
                                                                since=self.started_at)])
        self.bus.publish(topics.service_status(self.name, self.instance), status, retain=True)
        self.bus.publish(self.availability, m.OFFLINE, retain=True)

    async def stop(self) -> None:
        if self.bus is not None:
            await self.bus.stop()


async def wait_until_valid(slot: Slot, loaded: LoadedConfig, all_stopping: asyncio.Event) -> LoadedConfig | None:
    refusal_status = Refusal(slot, loaded)
    await refusal_status.start()
    try:
        return await _wait_until_valid(slot, loaded, all_stopping, refusal_status)
    finally:
        await refusal_status.stop()


async def _wait_until_valid(slot: Slot, loaded: LoadedConfig, all_stopping: asyncio.Event,
                            refusal_status: Refusal) -> LoadedConfig | None:
    """Keep a refused service down (the others run) and watch the config file: once the section
    is valid (a person fixed it, or the setup page saved it) the service starts. None: stopping."""
    log = get_logger("run-many")
    log.error("service not started: its config is refused; waiting for the file to change",
              service=slot.service.name, error=slot.problem, config=str(loaded.path))
    refusal_status.report(slot.problem or "")
    stamp = _stamp(loaded.path)
    while True:
        try:
            await asyncio.wait_for(all_stopping.wait(), CONFIG_POLL_S)
            return None
        except TimeoutError:
            pass
        if loaded.path is None or _stamp(loaded.path) == stamp:
            continue
        stamp = _stamp(loaded.path)
        try:
            fresh = load(loaded.path, loaded.environ)
        except ConfigError as exc:  # half-written or broken file: report once per change
            log.warning("config file unreadable, still waiting", service=slot.service.name, error=str(exc))
            continue
        problem = refusal(slot, fresh)
        if problem is None:
            log.info("config now valid: starting the service", service=slot.service.name)
            slot.problem = None
            slot.service.reloaded = fresh  # `serve` prefers it to the file read at start-up
            return fresh
        if problem != slot.problem:
            slot.problem = problem
            log.error("service config still refused", service=slot.service.name, error=problem)
            refusal_status.report(problem)


def reread(slot: Slot, loaded: LoadedConfig) -> LoadedConfig:
    """The file as it is now, for a restart: a change saved while the service was down (the setup
    page saves twice in a second; the second `reload_config` finds nobody listening) is not lost."""
    if loaded.path is None:
        return loaded
    try:
        fresh = load(loaded.path, loaded.environ)
    except ConfigError as exc:
        slot.problem = str(exc)
        return loaded
    slot.problem = refusal(slot, fresh)
    if slot.problem is None:
        slot.service.reloaded = fresh  # `serve` prefers it to the file read at start-up
    return fresh


async def supervise(slot: Slot, loaded: LoadedConfig, all_stopping: asyncio.Event) -> None:
    """Run one service until the process stops; restart it in place when it fails, and keep it
    waiting (not the process) while its config is refused."""
    log = get_logger("run-many")
    delay = RESTART_MIN_S
    while not all_stopping.is_set():
        if slot.problem is not None:
            slot.exit_code = 2
            fresh = await wait_until_valid(slot, loaded, all_stopping)
            if fresh is None:
                return
            loaded, slot.exit_code = fresh, 0
        try:
            slot.exit_code = await slot.service.serve(loaded, slot.bus, slot.stopping)
        except ConfigError as exc:
            # A service may refuse its config at run time (a reload, a check inside `run`): that
            # one waits for a fixed file, the rest run.
            slot.problem = str(exc)
            continue
        if all_stopping.is_set():
            return
        slot.restarts += 1
        log.warning("service ended, restarting", service=slot.service.name, exit_code=slot.exit_code,
                    restart_in_s=delay, restarts=slot.restarts)
        slot.stopping.clear()
        try:
            await asyncio.wait_for(all_stopping.wait(), delay)
            return
        except TimeoutError:
            delay = min(delay * 2, RESTART_MAX_S)
        loaded = reread(slot, loaded)


async def run_many(services: list[Service[Any]], loaded: LoadedConfig, secrets_dir: Path | None) -> int:
    base = loaded.bus()
    slots = [Slot(s, bus_config_for(base, s.name, secrets_dir), asyncio.Event()) for s in services]
    for slot in slots:  # a refused section keeps only its own service down (it waits for a fix)
        slot.problem = refusal(slot, loaded)
    all_stopping = asyncio.Event()

    def stop() -> None:
        all_stopping.set()
        for slot in slots:
            slot.stopping.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    get_logger("run-many").info("running services in one process", services=[s.name for s in services])
    await asyncio.gather(*(supervise(slot, loaded, all_stopping) for slot in slots))
    return max((slot.exit_code for slot in slots), default=0)


def main(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    names: list[str] = list(args.services)
    try:
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{duplicates[0]} is named twice (one client id per service and instance)")
        services = [load_service(name) for name in names]
        loaded = load(args.config)
        secrets_dir = Path(args.secrets_dir) if args.secrets_dir else None
        if secrets_dir is not None and not secrets_dir.is_dir():
            raise ConfigError(f"--secrets-dir {secrets_dir} is not a directory")
        return asyncio.run(run_many(services, loaded, secrets_dir))
    except ConfigError as exc:
        print(f"wattbus run-many: {exc}", file=sys.stderr)
        return 2
