"""A commanding client that is at-least-once across its own crash: it appends each command to an
outbox file before publishing it and, after a restart, sends the whole outbox again (it kept no
record of the answers), then goes on. Run as a subprocess the test SIGKILLs mid-stream:

    python -m tests.reliability.outbox_sender PORT USER PASSWORD TOPIC OUTBOX COUNT

Commands alternate 10 A / 12 A with request ids r0, r1, ...; each answer is printed as
`<request_id> <status>`; exit 0 once COUNT commands were answered `ok`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from wattbus import messages as m
from wattbus.bus import Bus
from wattbus.config import BusConfig


def amps_for(index: int) -> int:
    return 10 if index % 2 == 0 else 12


async def send(bus: Bus, topic: str, request_id: str, amps: int) -> bool:
    result = await bus.request(topic, m.SetChargeCurrent(current_a=amps, request_id=request_id), timeout=30)
    print(request_id, result.status, flush=True)
    return bool(result.status == "ok")


async def run(port: int, user: str, password: str, topic: str, outbox: Path, count: int) -> int:
    bus = Bus(BusConfig(port=port, username=user, password=password, reconnect_max_s=2), user, "outbox")
    await bus.start()
    if not await bus.wait_connected(20):
        print("no broker", file=sys.stderr)
        return 2
    sent = outbox.read_text().split() if outbox.exists() else []
    for index, request_id in enumerate(sent):  # the replay after a crash
        if not await send(bus, topic, request_id, amps_for(index)):
            return 1
    with outbox.open("a") as out:
        for index in range(len(sent), count):
            request_id = f"r{index}"
            out.write(request_id + "\n")
            out.flush()
            os.fsync(out.fileno())  # on disk before it can reach the device
            if not await send(bus, topic, request_id, amps_for(index)):
                return 1
            await asyncio.sleep(0.2)
    await bus.stop()
    return 0


def main() -> int:
    port, user, password, topic, outbox, count = sys.argv[1:7]
    return asyncio.run(run(int(port), user, password, topic, Path(outbox), int(count)))


if __name__ == "__main__":
    sys.exit(main())
