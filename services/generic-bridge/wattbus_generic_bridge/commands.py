"""set_relay for described relays: the bridge's switch interval, the write, then read-back.

`ok` is sent only after a fresh poll shows the relay in the asked state; a refused command says why.
"""

from __future__ import annotations

import asyncio
import math
import time

from wattbus import messages as m

from .fetch import FetchError
from .modbus import ModbusError
from .worker import DeviceWorker


def answer(command: m.CommandBase, device_id: str, status: m.CommandStatus, message: str = "",
           applied: dict[str, m.ExtraValue] | None = None) -> m.CommandResult:
    return m.CommandResult(status=status, command=str(command.__struct_config__.tag), target=device_id,
                           request_id=command.request_id, message=message, applied=applied or {})


class Switcher:
    """The relay's last switch time, so contacts (and the load behind them) are not worn by chatter."""

    def __init__(self) -> None:
        self.last_switch: dict[str, float] = {}

    async def execute(self, worker: DeviceWorker, command: m.CommandBase) -> m.CommandResult:
        dev = worker.device_id
        write = worker.desc.write
        if write is None or not isinstance(command, m.SetRelay):
            accepts = "set_relay" if write else "none (no [write] in its description)"
            return answer(command, dev, "refused", f"{dev}: {command.__struct_config__.tag} is not supported "
                                                   f"(accepts: {accepts})")
        if command.channel != 0:
            return answer(command, dev, "refused", f"{dev}: a described relay has channel 0 only")
        if not worker.online:
            return answer(command, dev, "failed", f"{dev} is not reachable: {worker.last_error or 'no reading yet'}")
        try:
            async with worker.lock:
                now_on = await self._state(worker)
                if now_on != command.on:
                    last = self.last_switch.get(dev)
                    ago = time.monotonic() - last if last is not None else math.inf
                    if ago < write.min_switch_interval_s:
                        return answer(command, dev, "refused",
                                      f"{dev}: last switch was {ago:.0f} s ago; the minimum interval is "
                                      f"{write.min_switch_interval_s:g} s (retry in "
                                      f"{math.ceil(write.min_switch_interval_s - ago)} s)")
                    await worker.http.request(write.on_url if command.on else write.off_url, write.method)
                    self.last_switch[dev] = time.monotonic()
                got = await self._confirm(worker, command.on, write.confirm_timeout_s)
        except (FetchError, ModbusError) as exc:
            return answer(command, dev, "failed", f"{dev}: {exc}")
        applied: dict[str, m.ExtraValue] = {"on": got, "channel": 0}
        if got == command.on:
            return answer(command, dev, "ok", "confirmed by reading back", applied)
        return answer(command, dev, "failed", f"{dev}: the device did not report the new state (read back {got})",
                      applied)

    @staticmethod
    async def _state(worker: DeviceWorker) -> bool | None:
        reading = worker.mapper.reading(await worker.read_raw(), worker.latest.timestamp if worker.latest
                                        else m.utc_now())[0]
        on = getattr(reading, "on", None)
        return on if isinstance(on, bool) else None

    async def _confirm(self, worker: DeviceWorker, wanted: bool, timeout_s: float) -> bool | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            got = await self._state(worker)
            if got == wanted or loop.time() >= deadline:
                return got
            await asyncio.sleep(0.2)
