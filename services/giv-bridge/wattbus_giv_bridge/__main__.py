"""giv-bridge: GivEnergy inverters and batteries on the bus, read and control (GivTCP compatible)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import Meta
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.commands import RecentCommands, request_key
from wattbus.config import ServiceCommon
from wattbus.runner import Service, ServiceContext, Subcommand

from . import controls, decode, givtcp, givtcp_mqtt
from .adopt import Adopter
from .dongle import Dongle, DongleError
from .givtcp_control import GivAction, GivFunctions, from_givtcp
from .plant import InverterConfig, Plant, readings


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    inverters: list[InverterConfig] = []
    poll_interval_s: Annotated[float, Meta(ge=1, le=3600)] = 15.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0
    retries: Annotated[int, Meta(ge=0, le=5)] = 2
    print_raw: bool = False  # GivTCP's PRINT_RAW: raw registers inside runAll
    # Poll inverters the discovery service announces (configured inverters win).
    adopt: bool = True
    deny: list[str] = []  # serials, device ids or addresses (host or host:port) never to adopt
    adopted_batteries: Annotated[int, Meta(ge=0, le=6)] = 1  # batteries to look for behind an adopted inverter
    # GivTCP's MQTT layout (<topic>/<serial>/Power/Power/SOC ...), GivTCP's MQTT_OUTPUT/MQTT_TOPIC/MQTT_RETAIN.
    # The broker's ACL lets giv-bridge write GivEnergy/# only: another root needs an ACL line.
    givtcp_mqtt: bool = False
    givtcp_mqtt_topic: Annotated[str, Meta(pattern=r"^[^#+$\s/][^#+\s]*$")] = "GivEnergy"
    givtcp_mqtt_retain: bool = False


class Bridge:
    """The inverters of one instance, their poll loops and their commands."""

    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        self.plants: list[Plant] = []
        self.locks: dict[int, asyncio.Lock] = {}  # a command never interleaves with a poll
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.recent = RecentCommands(ctx.counters)  # a redelivered request is answered, not executed again
        self.identified: Callable[[Plant], None] | None = None  # told once a plant's serial is known
        self.functions = GivFunctions(self.locked_write, ctx.log.child("givtcp"))  # GivTCP's timed functions

    async def locked_write(self, plant: Plant, writes: Mapping[int, int]) -> dict[str, m.ExtraValue]:
        async with self.locks[id(plant)]:  # never in the middle of a poll
            return await controls.write_confirmed(plant, writes)

    def add(self, cfg: InverterConfig) -> Plant:
        """Start polling one inverter in its own loop."""
        ctx = self.ctx
        plant = Plant(cfg, Dongle(cfg.host, cfg.port, ctx.counters, ctx.log.child(f"{cfg.host}:{cfg.port}"),
                                  timeout_s=ctx.config.timeout_s, retries=ctx.config.retries))
        self.plants.append(plant)
        self.locks[id(plant)] = asyncio.Lock()
        self.tasks[id(plant)] = asyncio.create_task(self.poll_loop(plant), name=f"giv-{cfg.host}:{cfg.port}")
        return plant

    def remove(self, plant: Plant) -> None:
        """Stop polling an inverter (it moved); its devices stay announced."""
        self.plants.remove(plant)
        task = self.tasks.pop(id(plant), None)
        if task is not None:
            task.cancel()

    def plant_for(self, device_id: str) -> Plant | None:
        for plant in self.plants:
            ids = {plant.device_id, f"{plant.device_id}-battery", *(plant.battery_id(i) for i in plant.battery_serials)}
            if device_id in ids:
                return plant
        return None

    async def poll_loop(self, plant: Plant) -> None:
        announced: set[str] = set()
        try:
            await self._poll_until_stopped(plant, announced)
        finally:
            await plant.dongle.close()

    async def _poll_until_stopped(self, plant: Plant, announced: set[str]) -> None:
        ctx = self.ctx
        while not ctx.stopping.is_set():
            try:
                async with self.locks[id(plant)]:
                    problems = await plant.poll()
                for problem in problems:
                    ctx.counters.inc("optional_read_failures")
                    ctx.log.warning("optional part not read", inverter=plant.config.host, problem=problem)
                self.publish(plant, announced)
                ctx.counters.inc("polls")
            except DongleError as exc:
                ctx.counters.inc("poll_failures")
                ctx.log.warning("poll failed", inverter=f"{plant.config.host}:{plant.config.port}", error=str(exc))
                for device_id in announced:
                    ctx.devices[device_id].set_online(False)
                await plant.dongle.close()
            if not await ctx.sleep(ctx.config.poll_interval_s):
                break

    def publish(self, plant: Plant, announced: set[str]) -> None:
        if not announced and self.identified is not None:
            self.identified(plant)
        for meta in plant.metas(self.ctx.name):
            if meta.device_id not in announced:
                self.ctx.device(meta)
                announced.add(meta.device_id)
        now = plant.last_poll or datetime.now(UTC)
        for reading in readings(plant, now):
            self.ctx.devices[reading.device_id].publish_reading(reading)
        cfg = self.ctx.config
        document = givtcp.run_all(plant, raw=cfg.print_raw, timed=self.functions.minutes_left(plant))
        self.ctx.bus.publish(topics.device_native(self.ctx.name, plant.device_id, "runAll"),
                             json.dumps(document, default=str).encode())
        if cfg.givtcp_mqtt and plant.serial:
            for topic, text in givtcp_mqtt.topics_for(cfg.givtcp_mqtt_topic, plant.serial, document):
                self.ctx.bus.publish(topic, text, retain=cfg.givtcp_mqtt_retain, qos=0)

    # ------------------------------------------------------------------ commands

    async def on_command(self, msg: Message[bytes]) -> None:
        device_id = topics.parse(msg.topic).ident or "unknown"
        try:
            command = self.parse_command(msg.payload)
        except (codec.PayloadError, controls.CommandInvalid) as exc:
            self.answer(msg, device_id, m.CommandResult(status="invalid", target=device_id, message=str(exc),
                                                        request_id=_request_id(msg.payload)))
            return
        tag = command.name if isinstance(command, GivAction) else command.__struct_config__.tag
        name = tag if isinstance(tag, str) else None
        plant = self.plant_for(device_id)
        if plant is None:
            self.answer(msg, device_id, m.CommandResult(status="refused", command=name, target=device_id,
                                                        request_id=command.request_id,
                                                        message=f"{device_id} is not a controllable device here"))
            return
        result, _ = await self.recent.once(request_key(msg, command.request_id),
                                           lambda: self.execute(plant, device_id, name, command))
        self.answer(msg, device_id, result)

    async def execute(self, plant: Plant, device_id: str, name: str | None,
                      command: m.CommandBase | GivAction) -> m.CommandResult:
        message = ""
        try:
            if isinstance(command, GivAction):
                applied, message = await self.functions.run(plant, command)  # takes the lock per write
            else:
                async with self.locks[id(plant)]:
                    applied = await controls.execute(plant, command)
        except controls.CommandInvalid as exc:
            return m.CommandResult(status="invalid", command=name, target=device_id, request_id=command.request_id,
                                   message=str(exc))
        except (DongleError, RuntimeError) as exc:
            self.ctx.counters.inc("commands_failed")
            return m.CommandResult(status="failed", command=name, target=device_id, request_id=command.request_id,
                                   message=str(exc))
        self.ctx.counters.inc("commands_ok")
        self.publish(plant, set(self.ctx.devices))  # show the new settings at once
        return m.CommandResult(status="ok", command=name, target=device_id, request_id=command.request_id,
                               applied=applied, message=message)

    def parse_command(self, payload: bytes) -> m.CommandBase | GivAction:
        raw: Any = codec.decode(payload, Any)  # PayloadError for anything that is not JSON text
        if isinstance(raw, dict) and "givtcp" in raw:
            return from_givtcp(raw)
        command: m.CommandBase = codec.decode_command(payload)
        return command

    def answer(self, msg: Message[bytes], device_id: str, result: m.CommandResult) -> None:
        if result.status != "ok":
            self.ctx.counters.inc(f"commands_{result.status}")
            self.ctx.log.warning("command not applied", device=device_id, status=result.status,
                                 reason=result.message)
        self.ctx.bus.respond(msg, result, topics.device_result(self.ctx.name, device_id))


def _request_id(payload: bytes) -> str | None:
    try:
        raw: Any = codec.decode(payload, Any)
    except codec.PayloadError:
        return None
    value = raw.get("request_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


async def run(ctx: ServiceContext[Config]) -> None:
    if not ctx.config.inverters and not ctx.config.adopt:
        ctx.log.error("no inverters configured: set [giv-bridge] inverters = [{ host = ... }] or INVERTOR_IP")
        await ctx.stopping.wait()
        return
    bridge = Bridge(ctx)
    adopter = Adopter(bridge)
    for cfg in ctx.config.inverters:
        adopter.configured(bridge.add(cfg))
    ctx.bus.subscribe(topics.commands_for(ctx.name), bytes, bridge.on_command)
    adopter.adoption.subscribe(ctx.bus, adopter.adopt)
    await ctx.stopping.wait()
    await bridge.functions.close()  # a forced charge or paused battery gets its settings back
    await asyncio.gather(*bridge.tasks.values(), return_exceptions=True)


SERVICE = Service("giv-bridge", Config, run, "GivEnergy inverters and batteries to the bus (GivTCP compatible)",
                  subcommands=(Subcommand("decode", "decode captured dongle frames to JSON lines",
                                          decode.add_arguments, decode.run),))


def main() -> int:
    try:
        notes = givtcp.apply_env()
    except ValueError as exc:
        print(f"wattbus-giv-bridge: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"wattbus-giv-bridge: GivTCP setting {note}", file=sys.stderr)
    code: int = SERVICE.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
