"""giv-bridge figures: frame decoding on real captures, a full poll and a confirmed write against the simulator."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from wattbus import givenergy as f
from wattbus import messages as m
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_giv_bridge import controls
from wattbus_giv_bridge.cli import parse_line
from wattbus_giv_bridge.dongle import Dongle
from wattbus_giv_bridge.plant import InverterConfig, Plant
from wattbus_sim import giv

CAPTURE = Path(__file__).resolve().parents[1] / "tests/giv_bridge/data/hybrid_gen1_arm449_0x11_poll_10min.log"


def decode_rate() -> tuple[int, float]:
    raws = [parse_line(line) for line in CAPTURE.read_text().splitlines()]
    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        stream = {True: f.FrameStream(from_dongle=True), False: f.FrameStream(from_dongle=False)}
        for _ts, direction, raw in raws:
            for _frame in stream[direction].feed(raw):
                pass
    elapsed = time.perf_counter() - start
    return len(raws) * rounds, elapsed


async def sim_figures() -> tuple[float, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    ready: asyncio.Event = asyncio.Event()
    holder: list[giv.Dongle] = []
    server = asyncio.create_task(giv.serve("127.0.0.1", port, 2, 180, 5, False, ready, holder))
    await ready.wait()
    plant = Plant(InverterConfig(host="127.0.0.1", port=port, batteries=2),
                  Dongle("127.0.0.1", port, Counters(), get_logger("bench")))
    await plant.poll()
    polls, writes = [], []
    for i in range(10):
        t = time.perf_counter()
        await plant.poll()
        polls.append(time.perf_counter() - t)
        t = time.perf_counter()
        await controls.execute(plant, m.SetBatteryReserve(soc_pct=10 + i))
        writes.append(time.perf_counter() - t)
    await plant.dongle.close()
    server.cancel()
    return sorted(polls)[len(polls) // 2], sorted(writes)[len(writes) // 2]


def main() -> str:
    frames, seconds = decode_rate()
    poll_s, write_s = asyncio.run(sim_figures())
    table = "\n".join([
        "| giv-bridge figure | value |", "|---|---|",
        f"| frame reassembly + decode (real capture) | {frames / seconds:,.0f} frames/s |",
        f"| full poll: 5 inverter blocks + 2 batteries (simulator, median) | {poll_s * 1000:.1f} ms |",
        f"| confirmed write: write + 3-block read-back (median) | {write_s * 1000:.1f} ms |",
    ])
    print(table)
    return table


if __name__ == "__main__":
    main()
