"""ecu-bridge benchmark: decoder speed on real and large answers, poll cycles against the simulator.

    .venv/bin/python bench/bench_ecu.py

Prints a short table (and returns it from main()). The poll cycle uses a short answer delay so it
measures the bridge and the wire, not the pause a real ECU needs (5 s by default, per command).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from wattbus import apsystems as wire
from wattbus.apsystems import decode_info
from wattbus_ecu_bridge.client import EcuClient, Timing
from wattbus_ecu_bridge.decode import decode_realtime, decode_signal
from wattbus_sim.ecu import EcuSimulator, fleet_from_text

DATA = Path(__file__).resolve().parents[1] / "tests" / "ecu_bridge" / "data"


def _per_call_us(fn: Callable[[bytes], object], arg: bytes, seconds: float = 0.5) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            fn(arg)
        n += 100
    return (time.perf_counter() - start) / n * 1e6


async def _poll_cycle(ecus: int, delay_s: float) -> float:
    sims = [EcuSimulator(f"2162000000{i:02d}", fleet=fleet_from_text("01:8,02:2,03:2"), pv_fraction=0.5)
            for i in range(ecus)]
    for sim in sims:
        await sim.start(0)
    timing = Timing(answer_delay_s=delay_s, pause_between_commands_s=0.0, timeout_s=5.0)

    async def one(sim: EcuSimulator) -> None:
        client = EcuClient("127.0.0.1", sim.port or 0, timing)
        info = decode_info(await client.ask(wire.info_query(), wire.CMD_INFO))
        decode_realtime(await client.ask(wire.realtime_query(info.ecu_id), wire.CMD_REALTIME))
        decode_signal(await client.ask(wire.signal_query(info.ecu_id), wire.CMD_SIGNAL))

    start = time.perf_counter()
    await asyncio.gather(*(one(s) for s in sims))
    elapsed = time.perf_counter() - start
    for sim in sims:
        await sim.stop()
    return elapsed


def main() -> str:
    rows: list[tuple[str, str]] = []
    for name in sorted(p.name for p in DATA.glob("realtime_*.hex")):
        data = wire.parse_hex_or_raw((DATA / name).read_bytes())
        rows.append((f"decode {name} ({len(data)} B)", f"{_per_call_us(decode_realtime, data):.1f} us"))
    big = EcuSimulator(fleet=fleet_from_text("01:300,02:50,03:50"), pv_fraction=0.6).realtime_answer()
    rows.append((f"decode 400-inverter answer ({len(big)} B)", f"{_per_call_us(decode_realtime, big):.0f} us"))
    for ecus in (1, 3):
        cycle = asyncio.run(_poll_cycle(ecus, 0.1))
        rows.append((f"poll cycle, {ecus} ECU(s) in parallel, 0.1 s answer delay", f"{cycle:.2f} s"))
    rows.append(("aps2mqtt reference: 3 commands x 5 s sleep, 1 ECU per process", "15.00 s + I/O"))
    width = max(len(k) for k, _ in rows)
    text = "\n".join([f"{'ecu-bridge benchmark':<{width}}  value", "-" * (width + 14)]
                     + [f"{k:<{width}}  {v}" for k, v in rows])
    print(text)
    return text


if __name__ == "__main__":
    main()
    sys.exit(0)
