"""The bridge service: a worker per configured device and the command subscription."""

from __future__ import annotations

import asyncio

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.commands import RecentCommands, request_key
from wattbus.runner import ServiceContext

from .commands import Switcher, answer
from .config import Config, resolve_all
from .worker import DeviceWorker


async def run(ctx: ServiceContext[Config]) -> None:
    # Every description is resolved and checked before anything starts: a bad one stops the service
    # with the device, the key and what is wrong (a ConfigError, printed by the runner).
    resolved = resolve_all(ctx.config)
    if not resolved:
        ctx.log.warning("no devices configured",
                        hint='add [[generic-bridge.devices]] id = "...", template = "...", host = "..."')
    workers = {dev.id: DeviceWorker(ctx, dev, desc) for dev, desc in resolved}
    switcher = Switcher()
    recent = RecentCommands(ctx.counters)  # a QoS 1 redelivery is answered, not executed again
    running: set[asyncio.Task[None]] = set()

    async def on_command(msg: Message[bytes]) -> None:
        device_id = topics.parse(msg.topic).ident or "unknown"
        fallback = topics.device_result(ctx.name, device_id)
        try:
            command = codec.decode_command(msg.payload)
        except codec.PayloadError as exc:
            ctx.counters.inc("commands_invalid")
            ctx.bus.respond(msg, m.CommandResult(status="invalid", target=device_id,
                                                 message=f"command on {msg.topic} does not decode: {exc}"), fallback)
            return
        worker = workers.get(device_id)
        if worker is None:
            ctx.counters.inc("commands_refused")
            ctx.bus.respond(msg, answer(command, device_id, "refused", f"no device {device_id} on this bridge"),
                            fallback)
            return
        task = asyncio.create_task(_run_command(ctx, worker, switcher, command, msg, fallback, recent))
        running.add(task)  # read-back takes a moment: other devices' commands keep flowing meanwhile
        task.add_done_callback(running.discard)

    ctx.bus.subscribe(topics.commands_for(ctx.name), bytes, on_command)
    tasks = [asyncio.create_task(w.run(), name=f"device-{w.device_id}") for w in workers.values()]
    try:
        await ctx.stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_command(ctx: ServiceContext[Config], worker: DeviceWorker, switcher: Switcher,
                       command: m.CommandBase, msg: Message[bytes], fallback: str, recent: RecentCommands) -> None:
    result, repeated = await recent.once(request_key(msg, command.request_id),
                                         lambda: switcher.execute(worker, command))
    if not repeated:
        ctx.counters.inc(f"commands_{result.status}")
        if result.status != "ok":
            ctx.log.info("command not applied", device=worker.device_id, status=result.status, reason=result.message)
    ctx.bus.respond(msg, result, fallback)
    if result.status == "ok" and not repeated:
        await worker.poll_once(worker.interval)  # publish the new state now, not at the next tick
