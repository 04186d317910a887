"""Commands to a bridge's devices: topic -> the adapter that owns the device -> at most once -> answer.

Every command is answered, on the request's response topic or else on the device's result topic:
`invalid` when it does not decode, `refused` (with what the device accepts) for a device this
bridge does not own or a command its adapter does not handle, `failed` when the device is not
reachable (a command for a device not read yet, at start-up, first waits up to FIRST_READ_WAIT_S
for its first read: the service is up before its devices are, and a consumer that acts on the
service's `online` or on another device's reading must not be told `failed` for that), else
what the adapter's `execute` found on reading back. A redelivered request is answered with its
first result, never executed again (wattbus.commands). After a command that
changed something the device is polled at once, so its new state is on the bus now, not next tick.

Replicas (ownership.py): every replica receives every command; only the device's owner answers
(an id no replica knows: the replica it hashes to refuses it). The owner records the request in the
device's claim before executing it and waits until the broker has it; a replica that takes the
device over answers a re-sent request from that record (its result, or `failed` when the previous
owner died while executing it: it may have run) and never executes it again. The de-duplication is
thus on the broker, not in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .. import codec, topics
from .. import messages as m
from ..bus import Message
from ..commands import Key, RecentCommands, request_key
from ..runner import ServiceContext
from .adapter import answer, tag, tags
from .fleet import Fleet
from .ownership import PENDING, Executed
from .poller import Poller

# How long a command waits for its device's first read: a slow first poll (a connect, an identify)
# fits, and the answer still comes well inside a consumer's own timeout (15 s: controller, http-api).
FIRST_READ_WAIT_S = 8.0


class CommandRouter:
    def __init__(self, ctx: ServiceContext[Any], fleet: Fleet,
                 decode: Callable[[bytes], m.CommandBase] = codec.decode_command) -> None:
        self.ctx = ctx
        self.fleet = fleet
        self.decode = decode  # a bridge that also takes a vendor's payloads decodes them into commands
        self.recent = RecentCommands(ctx.counters)
        self._running: set[asyncio.Task[None]] = set()

    def subscribe(self) -> None:
        self.ctx.bus.subscribe(topics.commands_for(self.ctx.name), bytes, self.on_message)

    def on_message(self, msg: Message[bytes]) -> None:
        device_id = topics.parse(msg.topic).ident or "unknown"
        fallback = topics.device_result(self.ctx.name, device_id)
        ownership = self.fleet.ownership
        if ownership is not None and not self.fleet.holds(device_id):
            if not self.fleet.assigned(device_id):
                return  # another replica's device: it answers
            if self.fleet.get(device_id) is not None:  # mine in a moment: its last holder is letting go
                self.ctx.counters.inc("commands_failed")
                self.ctx.bus.respond(msg, m.CommandResult(status="failed", target=device_id,
                                                          message=f"{device_id} is being taken over: retry"),
                                     fallback)
                return
        try:
            command = self.decode(msg.payload)
        except codec.PayloadError as exc:
            self.ctx.counters.inc("commands_invalid")
            self.ctx.bus.respond(msg, m.CommandResult(status="invalid", target=device_id,
                                                      message=f"command on {msg.topic} does not decode: {exc}"),
                                 fallback)
            return
        poller = self.fleet.get(device_id)
        refusal = self._refusal(poller, device_id, command)
        if refusal is not None or poller is None:
            self.ctx.counters.inc("commands_refused")
            self.ctx.bus.respond(msg, refusal or answer(command, device_id, "refused"), fallback)
            return
        # A write and its read-back take a moment: other devices' commands keep flowing meanwhile.
        task = asyncio.create_task(self._run(poller, command, msg, fallback))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    def _refusal(poller: Poller | None, device_id: str, command: m.CommandBase) -> m.CommandResult | None:
        if poller is None:
            return answer(command, device_id, "refused", f"no device {device_id!r} on this bridge")
        handled = poller.adapter.commands
        if type(command) not in handled:
            accepts = ", ".join(tags(handled)) or "none"
            return answer(command, device_id, "refused",
                          f"{device_id}: {tag(command)} is not supported (accepts: {accepts})")
        child = next((meta for meta in poller.adapter.metas if meta.device_id == device_id), None)
        if child is not None and device_id != poller.device_id and tag(command) not in child.capabilities:
            # `execute` does not learn the target: a child (a Shelly's meter beside its relay, an
            # inverter's string) takes only the commands its meta lists, never its parent's.
            accepts = ", ".join(child.capabilities) or "none"
            return answer(command, device_id, "refused",
                          f"{device_id}: {tag(command)} is not supported (accepts: {accepts})")
        return None

    async def _run(self, poller: Poller, command: m.CommandBase, msg: Message[bytes], fallback: str) -> None:
        key = request_key(msg, command.request_id)
        journal: list[m.CommandResult] = []

        async def first_delivery() -> m.CommandResult:
            # Looked up here, inside `once`: a repeat of a request this replica is still executing
            # waits for its answer; only one it never saw is answered from the previous owner's record.
            earlier = self._recorded(poller, command, key)
            if earlier is not None:
                journal.append(earlier)
                return earlier
            return await self._once_across_replicas(poller, command, key)

        result, repeated = await self.recent.once(key, first_delivery)
        if journal:  # executed (or begun) by the device's previous owner: answered, not run
            self.ctx.counters.inc("commands_duplicate")
            repeated = True
        if not repeated:
            self.ctx.counters.inc(f"commands_{result.status}")
            if result.status != "ok":
                self.ctx.log.info("command not applied", device=poller.device_id, command=tag(command),
                                  status=result.status, reason=result.message)
        self.ctx.bus.respond(msg, result, fallback)
        if result.status == "ok" and not repeated and not poller.push:
            await poller.poll_once()

    def _recorded(self, poller: Poller, command: m.CommandBase, key: Key | None) -> m.CommandResult | None:
        ownership = self.fleet.ownership
        if ownership is None or key is None:
            return None
        entry = ownership.recorded(poller.device_id, "|".join(key))
        if entry is None:
            return None
        return entry.result or answer(command, poller.device_id, "failed", f"{poller.device_id}: its previous "
                                      "owner died while executing this request: it may have been applied")

    async def _once_across_replicas(self, poller: Poller, command: m.CommandBase, key: Key | None) -> m.CommandResult:
        """Record the request in the device's claim (on the broker) before executing it, the result after."""
        # A device not read yet (start-up): wait for its first read, without the lock (the poll needs
        # it), and before the record and the fencing check, so that a lease lost meanwhile is seen.
        await poller.first_read(FIRST_READ_WAIT_S)
        ownership, device_id = self.fleet.ownership, poller.device_id
        if ownership is None or key is None:
            return await self._execute(poller, command)
        name = "|".join(key)
        if not await ownership.record(device_id, Executed(key=name, status=PENDING)):
            return answer(command, device_id, "failed", f"{device_id}: this replica no longer owns it or the "
                                                        "broker did not confirm the request record: not executed")
        if not self.fleet.holds(device_id):  # fencing: the lease ran out while the record travelled
            return answer(command, device_id, "failed", f"{device_id}: ownership lost: not executed")
        result = await self._execute(poller, command)
        await ownership.record(device_id, Executed(key=name, status=result.status, result=result))
        return result

    @staticmethod
    async def _execute(poller: Poller, command: m.CommandBase) -> m.CommandResult:
        device_id = poller.device_id
        # `offline_commands` (optional on an adapter): those that reach the device another way, such
        # as an ECU's restart through its web UI when its data port no longer answers.
        if not poller.online and type(command) not in getattr(poller.adapter, "offline_commands", ()):
            return answer(command, device_id, "failed",
                          f"{device_id} is not reachable: {poller.last_error or 'no reading yet'}")
        async with poller.lock:
            try:
                return await poller.adapter.execute(command)
            except poller.adapter.errors as exc:  # the write or its read-back did not get through
                return answer(command, device_id, "failed", f"{device_id}: {exc}")
