"""goe-shelly-bridge figures: decode cost per recorded answer, and one poll (HTTP + decode) and one
confirmed write against the simulators on loopback. Run: .venv/bin/python bench/bench_goe_shelly.py"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from wattbus.shelly import parse_info
from wattbus_goe_shelly_bridge.detect import detect
from wattbus_goe_shelly_bridge.goe import GoeCharger
from wattbus_goe_shelly_bridge.goe_wire import decode_status
from wattbus_goe_shelly_bridge.shelly_wire import decode_gen1, decode_gen2
from wattbus_goe_shelly_bridge.transport import HttpDevice
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app

DATA = Path(__file__).resolve().parents[1] / "tests" / "goe_shelly_bridge" / "data"
NOW = datetime.now(UTC)


def make_decoder(name: str, rec: dict[str, Any]) -> Callable[[], object]:
    if name.startswith("goe_"):
        return lambda: decode_status(rec["response"], rec["api"], "goe-1", NOW, "bench")
    info = parse_info(rec["info"], "bench")
    fn = decode_gen1 if rec["gen"] == 1 else decode_gen2
    return lambda: fn(rec["response"], info, NOW, "bench")


def decode_rows(rounds: int = 2000) -> list[tuple[str, float]]:
    rows = []
    for path in sorted(DATA.glob("*.json")):
        rec = json.loads(path.read_text())
        if "response" not in rec:
            continue
        run = make_decoder(path.name, rec)
        start = time.perf_counter()
        for _ in range(rounds):
            run()
        rows.append((f"decode {path.stem}", (time.perf_counter() - start) / rounds * 1e6))
    return rows


async def http_rows(rounds: int = 200) -> list[tuple[str, float]]:
    rows = []
    firmware = GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="777")
    apps = {"go-e v2": goe_app(firmware, "v2"), "go-e v1": goe_app(GoeFirmware(SimCharger(), serial="778"), "v1"),
            "shelly gen1 1PM": shelly_app(ShellyState("SHSW-PM")),
            "shelly gen2 Pro3EM digest": shelly_app(ShellyState("Pro3EM"), "pw")}
    for label, app in apps.items():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        http = HttpDevice(f"http://127.0.0.1:{port}", password="pw")
        adapter = await detect(http)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await adapter.read()
            times.append(time.perf_counter() - start)
        rows.append((f"poll {label} (median)", statistics.median(times) * 1e6))
        if isinstance(adapter, GoeCharger) and adapter.api == "v2":
            times = []
            for n in range(rounds // 4):
                start = time.perf_counter()
                await adapter.set_current_a(6 + n % 10)
                assert (await adapter.read_charger()).set_current_a == 6 + n % 10
                times.append(time.perf_counter() - start)
            rows.append(("set amp + read back go-e v2 (median)", statistics.median(times) * 1e6))
        await http.close()
        await runner.cleanup()
    return rows


def main() -> str:
    rows = decode_rows() + asyncio.run(http_rows())
    width = max(len(label) for label, _ in rows)
    lines = [f"{'goe-shelly-bridge':<{width}}  {'µs':>9}", "-" * (width + 11)]
    lines += [f"{label:<{width}}  {us:9.1f}" for label, us in rows]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
