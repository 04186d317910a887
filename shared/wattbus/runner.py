"""The service runner: config, logging, bus, status heartbeat and graceful shutdown.

A service is an async function `run(ctx)` plus a config Struct. `Service(...).main()` gives it
the console script `wattbus-<name>` with `--config`, the default `run` subcommand and any
user-facing subcommands the service adds (`read`, `decode`, `simulate`, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from . import __version__, topics
from . import messages as m
from .bus import Bus, Message
from .channel import DeviceChannel
from .config import BusConfig, ConfigError, LoadedConfig, ServiceCommon, load
from .counters import Counters
from .instance import resolve_instance
from .log import Logger, get_logger, setup_logging

C = TypeVar("C", bound=ServiceCommon)

# A service exits with this after `reload_config` found a changed, valid section: supervisord
# (autorestart=true), compose (restart: unless-stopped) and `wattbus run-many` start it again
# with the new section, and only this service restarts (EX_TEMPFAIL: "try again").
RELOAD_EXIT_CODE = 75


@dataclass
class ServiceContext(Generic[C]):
    name: str
    config: C
    loaded: LoadedConfig
    bus: Bus
    counters: Counters
    log: Logger
    stopping: asyncio.Event
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    devices: dict[str, DeviceChannel] = field(default_factory=dict)
    # configured devices that failed before they had an id (a probe that got no answer), by address
    address_errors: dict[str, m.DeviceError] = field(default_factory=dict)
    # Replicas (`--scale`): whether this replica answers a `probe_device` sent to all of them
    # (wattbus.bridge.Fleet sets it; None: every replica answers, as one alone does)
    answers_probe: Callable[[m.ProbeDevice], bool] | None = None
    _started_mono: float = field(default_factory=time.monotonic)
    _status_due: bool = False

    @property
    def instance(self) -> str:
        return resolve_instance(self.config.instance)

    def device(self, meta: m.DeviceMeta) -> DeviceChannel:
        """Register (or update) a device this service owns and announce its identity."""
        channel = self.devices.get(meta.device_id)
        if channel is None:
            channel = self.devices[meta.device_id] = DeviceChannel(self.bus, meta, self.device_errors_changed)
        channel.announce(meta)
        return channel

    def device_error(self, address: str, reason: str, name: str | None = None) -> None:
        """A configured device that has no id yet (it never answered) failed: report it by address."""
        old = self.address_errors.get(address)
        if old is not None and old.error == reason:
            return
        self.address_errors[address] = m.DeviceError(address=address, name=name, error=reason,
                                                     since=old.since if old else m.utc_now())
        self.device_errors_changed()

    def clear_device_error(self, address: str) -> None:
        """The device at this address answered (it has a channel of its own now)."""
        if self.address_errors.pop(address, None) is not None:
            self.device_errors_changed()

    def device_errors(self) -> list[m.DeviceError]:
        found = [c.error for c in self.devices.values() if c.error is not None]
        return [*self.address_errors.values(), *found]

    def device_errors_changed(self) -> None:
        """Consumers learn of a new or cleared error now, not at the next heartbeat: one status per loop pass."""
        if self._status_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test or tool calling directly): publish right away
            self.publish_status()
            return
        self._status_due = True
        loop.call_soon(self._publish_due_status)

    def _publish_due_status(self) -> None:
        self._status_due = False
        self.publish_status()

    def status(self) -> m.ServiceStatus:
        return m.ServiceStatus(
            service=self.name, instance=self.instance, version=__version__, started_at=self.started_at,
            uptime_s=round(time.monotonic() - self._started_mono, 3), counters=self.counters.snapshot(),
            devices=len(self.devices), device_errors=self.device_errors(),
        )

    def publish_status(self) -> None:
        self.bus.publish(topics.service_status(self.name, self.instance), self.status(), retain=True)
        health_file = os.environ.get("WATTBUS_HEALTH_FILE")
        if health_file and self.bus.connected:
            # Container healthchecks (`wattbus healthcheck`) look at this file's age.
            Path(health_file).write_text(datetime.now(UTC).isoformat())

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the service is stopping; returns False when it is."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, LoadedConfig], int]


class Service(Generic[C]):
    def __init__(self, name: str, config_type: type[C], run: Callable[[ServiceContext[C]], Coroutine[Any, Any, None]],
                 description: str, subcommands: tuple[Subcommand, ...] = (),
                 reconnect_max_s: float | None = None,
                 resolve: Callable[[LoadedConfig, C], C] | None = None) -> None:
        self.name = topics.segment(name, "service")
        # Fills the decoded section from other sections (the controller's devices from [site]), so a
        # change there is a change of the service's config for `reload_config` too.
        self.resolve = resolve
        # A cap on [bus] reconnect_max_s for services people watch live (the http-api): back within
        # seconds of the broker, whatever backoff the bridges use.
        self.reconnect_max_s = reconnect_max_s
        self.config_type = config_type
        self.run = run
        self.description = description
        self.subcommands = subcommands
        self.reloaded: LoadedConfig | None = None  # the file re-read by `reload_config` (run-many restarts)
        self._probes: set[asyncio.Task[m.CommandResult]] = set()  # probe_device tasks in flight

    def config_of(self, loaded: LoadedConfig) -> C:
        """The service's config from the loaded file: its section, resolved; ConfigError names a bad key."""
        config = loaded.section(self.name, self.config_type)
        return config if self.resolve is None else self.resolve(loaded, config)

    def parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"wattbus-{self.name}", description=self.description)
        parser.add_argument("--config", help="config file (default: $WATTBUS_CONFIG or /etc/wattbus/wattbus.toml)")
        parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
        sub = parser.add_subparsers(dest="subcommand")
        sub.add_parser("run", help="run the service (default)")
        for command in self.subcommands:
            command.add_arguments(sub.add_parser(command.name, help=command.help))
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        args = self.parser().parse_args(argv)
        setup_logging(args.log_level)
        try:
            loaded = load(args.config)
            if args.subcommand not in (None, "run"):
                command = next(c for c in self.subcommands if c.name == args.subcommand)
                return command.handler(args, loaded)
            config = self.config_of(loaded)
            bus_config = loaded.bus()
            # Errors the bus finds as it is built (password file, TLS without OpenSSL) end here too.
            return asyncio.run(self._serve(config, bus_config, loaded))
        except ConfigError as exc:
            print(f"wattbus-{self.name}: {exc}", file=sys.stderr)
            return 2

    async def serve(self, loaded: LoadedConfig, bus_cfg: BusConfig, stopping: asyncio.Event) -> int:
        """Run inside an existing loop next to other services (`wattbus run-many`): the caller owns
        the signal handlers and sets `stopping`; this service keeps its own bus client and status."""
        loaded = self.reloaded or loaded
        config = self.config_of(loaded)
        return await self._serve(config, bus_cfg, loaded, stopping)

    async def _serve(self, config: C, bus_cfg: BusConfig, loaded: LoadedConfig,
                     stopping: asyncio.Event | None = None) -> int:
        log = get_logger(self.name)
        if self.reconnect_max_s is not None and bus_cfg.reconnect_max_s > self.reconnect_max_s:
            bus_cfg = msgspec.structs.replace(bus_cfg, reconnect_max_s=self.reconnect_max_s,
                                              reconnect_min_s=min(bus_cfg.reconnect_min_s, self.reconnect_max_s))
        counters = Counters()
        instance = resolve_instance(config.instance)
        availability = topics.service_availability(self.name, instance)
        bus = Bus(bus_cfg, self.name, instance, will=(availability, m.OFFLINE.encode()),
                  counters=counters, log=log.child("bus"))
        ctx = ServiceContext(self.name, config, loaded, bus, counters, log, stopping or asyncio.Event())
        if stopping is None:  # a process of its own: the signals are ours
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, ctx.stopping.set)

        await bus.start()
        bus.publish(availability, m.ONLINE, retain=True)
        log.info("service starting", instance=instance, version=__version__, broker=f"{bus_cfg.host}:{bus_cfg.port}")
        status_task = asyncio.create_task(self._heartbeat(ctx))
        reload_wanted = asyncio.Event()
        self._answer_service_commands(ctx, reload_wanted)
        forms = self._announce_forms(ctx)
        work = asyncio.create_task(self.run(ctx), name=f"{self.name}-run")
        stop_wait = asyncio.create_task(ctx.stopping.wait())
        exit_code = 0
        await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
        try:
            await work
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.exception("service failed", error=repr(exc))
            exit_code = 1
        if reload_wanted.is_set() and exit_code == 0:
            exit_code = RELOAD_EXIT_CODE
        stop_wait.cancel()
        status_task.cancel()
        ctx.publish_status()
        final = [channel.offline_message() for channel in ctx.devices.values()]
        final.append((availability, m.OFFLINE.encode()))
        if forms is not None and config.instance == "auto":  # its successor has another hostname
            final.append((forms, b""))
        await bus.stop(final)
        log.info("service stopped", exit_code=exit_code)
        return exit_code

    def _answer_service_commands(self, ctx: ServiceContext[C], reload_wanted: asyncio.Event) -> None:
        """`reload_config` on service/<name>/<instance>/command: re-read the file, validate the section
        with our own Struct, answer on .../result (our own topic space, any broker user may write it),
        then stop cleanly with RELOAD_EXIT_CODE when the section changed."""
        result_topic = topics.service_result(self.name, ctx.instance)
        broadcast = topics.service_broadcast(self.name)

        def answer(msg: Message[m.CommandBase], status: m.CommandStatus, message: str) -> None:
            tag = msg.payload.__struct_config__.tag
            ctx.bus.respond(msg, m.CommandResult(status=status, command=tag if isinstance(tag, str) else None,
                                                 target=f"{self.name}/{ctx.instance}",
                                                 request_id=msg.payload.request_id, message=message), result_topic)

        def on_command(msg: Message[m.CommandBase]) -> None:
            if isinstance(msg.payload, m.ProbeDevice):
                # Sent to all replicas: one of them reads the device (two at once may lock it out).
                if msg.topic == broadcast and ctx.answers_probe is not None and not ctx.answers_probe(msg.payload):
                    ctx.counters.inc("probes_left_to_peer")
                    return
                self._start_probe(ctx, msg)
                return
            if not isinstance(msg.payload, m.ReloadConfig):
                ctx.counters.inc("service_commands_refused")
                answer(msg, "refused", "a service accepts only reload_config and probe_device here")
                return
            try:
                fresh = load(ctx.loaded.path, ctx.loaded.environ) if ctx.loaded.path else ctx.loaded
                config = self.config_of(fresh)
            except ConfigError as exc:
                ctx.counters.inc("config_reloads_refused")
                ctx.log.warning("reload refused: the new config section is invalid", error=str(exc))
                answer(msg, "invalid", str(exc))
                return
            if config == ctx.config:
                answer(msg, "ok", f"[{self.name}] unchanged, nothing to apply")
                return
            ctx.counters.inc("config_reloads")
            ctx.log.info("config section changed: restarting to apply it", exit_code=RELOAD_EXIT_CODE)
            self.reloaded = fresh
            answer(msg, "ok", f"[{self.name}] changed: restarting to apply it")
            reload_wanted.set()
            ctx.stopping.set()

        ctx.bus.subscribe(topics.service_command(self.name, ctx.instance), m.Command, on_command)
        if ctx.instance != topics.ALL_INSTANCES:  # every replica, also `instance = "auto"` ones nobody can name
            ctx.bus.subscribe(broadcast, m.Command, on_command)

    def _probe_module(self) -> Any:
        """The service's `<package>.probe` module, None when it has none (a service that is no bridge)."""
        # `python -m wattbus_x` runs the service's module as `__main__`: its spec still names the package.
        spec = getattr(sys.modules.get(self.run.__module__), "__spec__", None)
        name = f"{(spec.name if spec is not None else self.run.__module__).split('.')[0]}.probe"
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the probe module exists but is broken: that is a bug to see
                raise
            return None

    def _announce_forms(self, ctx: ServiceContext[C]) -> str | None:
        """A bridge's manual-add forms (`<package>.probe.FORMS`, wattbus.bridge.form), retained in its own
        service tree: the setup page offers what running bridges announced (issue 25); its topic."""
        declared = getattr(self._probe_module(), "FORMS", None)
        topic = topics.service_forms(self.name, ctx.instance)
        if declared is not None:
            ctx.bus.publish(topic, declared.announcement(self.name, ctx.instance, self.config_type), retain=True)
        return None if declared is None else topic

    def _start_probe(self, ctx: ServiceContext[C], msg: Message[m.CommandBase]) -> None:
        """`probe_device`: a bridge reads a device once with its own adapter (`<package>.probe.probe`,
        a module of the service's own package, imported on first use). Runs as a task: a slow device
        must not hold up the service's other messages."""
        result_topic = topics.service_result(self.name, ctx.instance)
        base = m.CommandResult(status="failed", command="probe_device", target=f"{self.name}/{ctx.instance}",
                               request_id=msg.payload.request_id)
        ctx.counters.inc("probes")
        module = self._probe_module()
        if module is None:
            ctx.counters.inc("service_commands_refused")
            ctx.bus.respond(msg, msgspec.structs.replace(
                base, status="refused", message=f"{self.name} cannot probe devices"), result_topic)
            return
        probe: Callable[[ServiceContext[C], m.CommandBase], Awaitable[m.CommandResult]] = module.probe

        def done(task: asyncio.Task[m.CommandResult]) -> None:
            if task.cancelled():
                return
            error = task.exception()
            if error is not None:  # a bug in the probe: answer it, log it, keep the service running
                ctx.counters.inc("probes_failed")
                ctx.log.error("probe failed unexpectedly", error=repr(error))
                result = msgspec.structs.replace(base, message=f"{self.name} probe failed: {error!r}")
            else:
                result = msgspec.structs.replace(task.result(), command=base.command, target=base.target,
                                                 request_id=base.request_id)
            ctx.bus.respond(msg, result, result_topic)

        task = asyncio.ensure_future(probe(ctx, msg.payload))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)
        task.add_done_callback(done)

    async def _heartbeat(self, ctx: ServiceContext[C]) -> None:
        while True:
            ctx.publish_status()
            await asyncio.sleep(ctx.config.status_interval_s)
