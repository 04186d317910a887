"""One GivEnergy dongle (inverter, batteries, meters) as the toolkit's `Adapter`.

A poll reads every register block into the plant's caches; the readings, the metas and GivTCP's
runAll document (published on the device's native topic, and on GivTCP's MQTT tree when asked)
all come from that one read. Identifying is a poll: the serial sits in the same blocks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus.bridge import answer, tags
from wattbus.runner import ServiceContext

from . import controls, givtcp, givtcp_mqtt
from .config import Config
from .dongle import DongleError
from .givtcp_control import GivAction, GivFunctions
from .plant import Plant, readings

COMMANDS: tuple[type[m.CommandBase], ...] = (*controls.COMMANDS, GivAction)
CAPABILITIES = tags(controls.COMMANDS)  # GivTCP's own functions are no contract capability


class GivAdapter:
    commands = COMMANDS
    errors: tuple[type[Exception], ...] = (DongleError,)

    def __init__(self, ctx: ServiceContext[Config], plant: Plant, functions: GivFunctions, *,
                 publish: bool = True) -> None:
        self.ctx, self.plant, self.functions = ctx, plant, functions
        self.publish = publish  # GivTCP's document too (a probe publishes nothing)
        self.metas: list[m.DeviceMeta] = []
        self._fresh = False  # identify has just polled: the next read uses that poll

    async def identify(self) -> list[m.DeviceMeta]:
        await self._poll()
        if self.plant.serial is None:
            raise DongleError(f"{self.where}: answered, but reported no inverter serial")
        self._fresh = True
        self.metas = self.plant.metas(self.ctx.name, CAPABILITIES)
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        if not self._fresh:
            await self._poll()
        self._fresh = False
        self.metas = self.plant.metas(self.ctx.name, CAPABILITIES)  # batteries found in this poll join
        if self.publish:
            self.publish_givtcp()
        return readings(self.plant, self.plant.last_poll or datetime.now(UTC))

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        name = command.name if isinstance(command, GivAction) else None
        message = ""
        try:
            if isinstance(command, GivAction):
                applied, message = await self.functions.run(self.plant, command)  # the poll lock is held
            else:
                applied = await controls.execute(self.plant, command)
        except controls.CommandInvalid as exc:
            return self._answer(command, name, "invalid", str(exc))
        except RuntimeError as exc:  # the inverter did not take or keep a value
            return self._answer(command, name, "failed", str(exc))
        return self._answer(command, name, "ok", message, applied)

    def _answer(self, command: m.CommandBase, name: str | None, status: m.CommandStatus, message: str,
                applied: dict[str, m.ExtraValue] | None = None) -> m.CommandResult:
        result = answer(command, self.plant.device_id, status, message, applied)
        # GivTCP's functions answer under their own name (forceCharge...), as GivTCP's REST did
        return result if name is None else msgspec.structs.replace(result, command=name)

    async def close(self) -> None:
        await self.plant.dongle.close()

    @property
    def where(self) -> str:
        return f"{self.plant.config.host}:{self.plant.config.port}"

    async def _poll(self) -> None:
        try:
            problems = await self.plant.poll()
        except DongleError:
            await self.plant.dongle.close()  # the next poll connects afresh
            raise
        for problem in problems:
            self.ctx.counters.inc("optional_read_failures")
            self.ctx.log.warning("optional part not read", inverter=self.plant.config.host, problem=problem)

    def publish_givtcp(self) -> None:
        """GivTCP's runAll on the native topic, and its MQTT tree when configured."""
        cfg, plant = self.ctx.config, self.plant
        document: dict[str, Any] = givtcp.run_all(plant, raw=cfg.print_raw, timed=self.functions.minutes_left(plant))
        self.ctx.bus.publish(topics.device_native(self.ctx.name, plant.device_id, "runAll"),
                             json.dumps(document, default=str).encode())
        if cfg.givtcp_mqtt and plant.serial:
            for topic, text in givtcp_mqtt.topics_for(cfg.givtcp_mqtt_topic, plant.serial, document):
                self.ctx.bus.publish(topic, text, retain=cfg.givtcp_mqtt_retain, qos=0)
