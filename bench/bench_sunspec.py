"""SunSpec bridge figures: requests and time per scan and per poll against the simulator on loopback.

    .venv/bin/python bench/bench_sunspec.py
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

from wattbus_sim.sunspec_image import encode_model
from wattbus_sunspec_bridge.decode import decode_model
from wattbus_sunspec_bridge.link import Endpoint, Link
from wattbus_sunspec_bridge.models import model_def
from wattbus_sunspec_bridge.scan import read_models, scan


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _measure(port: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    link = Link(Endpoint("127.0.0.1", port), 5.0)
    for unit in (1, 240, 2):
        before = link.requests
        start = time.perf_counter()
        dmap = await scan(link, unit)
        scan_ms = (time.perf_counter() - start) * 1000
        registers = sum(b.length + 2 for b in dmap.blocks)
        rows.append((f"scan unit {unit} ({len(dmap.blocks)} models, {registers} regs)",
                     f"{link.requests - before} requests, {scan_ms:.1f} ms"))
        polls = 50
        before = link.requests
        start = time.perf_counter()
        for _ in range(polls):
            await read_models(link, dmap)
        per_poll = (time.perf_counter() - start) * 1000 / polls
        rows.append((f"poll unit {unit} (all models)",
                     f"{(link.requests - before) / polls:.0f} requests, {per_poll:.1f} ms"))
    link.close()
    regs = encode_model(103, {"W_SF": 0, "W": 5000, "A_SF": -2, "A": 21.5})
    mdef = model_def(103)
    count = 20000
    start = time.perf_counter()
    for _ in range(count):
        decode_model(mdef, 40070, regs)
    rows.append(("decode model 103 (CPU only)", f"{(time.perf_counter() - start) * 1e6 / count:.1f} µs"))
    return rows


def main() -> str:
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "wattbus_sim", "sunspec", "--port", str(port), "--static",
                            "--profile", "fronius", "--profile", "float"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        rows = asyncio.run(_measure(port))
    finally:
        sim.terminate()
        sim.wait(10)
    width = max(len(r[0]) for r in rows)
    text = "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
