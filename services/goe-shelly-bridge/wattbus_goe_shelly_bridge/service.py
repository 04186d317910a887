"""The bridge service: a poll loop per device and the command subscription."""

from __future__ import annotations

import asyncio

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.commands import RecentCommands, request_key
from wattbus.runner import ServiceContext

from .adopt import Fleet
from .commands import answer, execute
from .config import Config
from .worker import DeviceWorker


async def run(ctx: ServiceContext[Config]) -> None:
    fleet = Fleet(ctx)
    workers = fleet.workers
    if not workers and not ctx.config.adopt:
        ctx.log.warning("no devices configured", hint="add [[goe-shelly-bridge.devices]] url = \"http://...\"")
    running: set[asyncio.Task[None]] = set()
    recent = RecentCommands(ctx.counters)  # a QoS 1 redelivery is answered, not executed again

    async def on_command(msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        device_id = parsed.ident or "unknown"
        fallback = topics.device_result(ctx.name, device_id)
        try:
            command = codec.decode_command(msg.payload)
        except codec.PayloadError as exc:
            ctx.counters.inc("commands_invalid")
            ctx.log.warning("rejected command", topic=msg.topic, error=str(exc))
            ctx.bus.respond(msg, m.CommandResult(status="invalid", target=device_id,
                                                 message=f"command on {msg.topic} does not decode: {exc}"), fallback)
            return
        worker = next((w for w in workers if w.owns(device_id)), None)
        if worker is None:
            ctx.counters.inc("commands_refused")
            ctx.bus.respond(msg, answer(command, device_id, "refused", f"no device {device_id} on this bridge"),
                            fallback)
            return
        # Read-back can take seconds; run it beside the dispatcher so other devices' commands flow.
        task = asyncio.create_task(_run_command(ctx, worker, device_id, command, msg, fallback, recent))
        running.add(task)
        task.add_done_callback(running.discard)

    ctx.bus.subscribe(topics.commands_for(ctx.name), bytes, on_command)
    fleet.adoption.subscribe(ctx.bus, fleet.adopt)
    await fleet.wait()


async def _run_command(ctx: ServiceContext[Config], worker: DeviceWorker, device_id: str, command: m.CommandBase,
                       msg: Message[bytes], fallback: str, recent: RecentCommands) -> None:
    result, repeated = await recent.once(request_key(msg, command.request_id),
                                         lambda: execute(worker, device_id, command))
    if repeated:
        ctx.log.info("repeated request answered with its first result", device=device_id, command=result.command,
                     request_id=command.request_id)
        ctx.bus.respond(msg, result, fallback)
        return
    ctx.counters.inc(f"commands_{result.status}")
    if result.status != "ok":
        ctx.log.info("command not applied", device=device_id, command=result.command, status=result.status,
                     reason=result.message)
    ctx.bus.respond(msg, result, fallback)
    if result.status == "ok":
        await worker.poll_once(worker.interval)  # publish the new state now, not at the next tick
