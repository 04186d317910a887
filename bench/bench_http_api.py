"""http-api: request latency of its faces and reading-to-browser (SSE) latency, against a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "services" / "http-api")]

import aiohttp  # noqa: E402
from wattbus import topics  # noqa: E402
from wattbus.bus import Bus  # noqa: E402

from tests.http_api.conftest import load_readings  # noqa: E402
from tests.support.servers import Mosquitto, free_port, wait_port  # noqa: E402


async def requests(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        out.append((time.perf_counter() - start) * 1e3)
    return out


async def sse_latency(session: aiohttp.ClientSession, url: str, bus: Bus, rounds: int) -> list[float]:
    meter = json.loads(next(p for t, p in load_readings("house_site.jsonl") if t.endswith("house-meter/reading")))
    out = []
    async with session.get(url + "/api/v1/events") as resp:
        for i in range(rounds):
            watts = -1000.0 - i
            meter["power_w"] = watts
            start = time.perf_counter()
            bus.publish(topics.device_reading("house-sim", "house-meter"), json.dumps(meter).encode())
            async for raw in resp.content:
                line = raw.decode()
                if line.startswith("data: ") and json.loads(line[6:])["flow"]["grid_w"] == watts:
                    out.append((time.perf_counter() - start) * 1e3)
                    break
    return out


async def measure(broker: Mosquitto, port: int) -> list[tuple[str, list[float]]]:
    bus = Bus(broker.bus_config("house-sim"), "house-sim", "bench")
    await bus.start()
    await bus.wait_connected(10)
    for topic, payload in load_readings("house_site.jsonl"):
        retained = topic.endswith(("/meta", "/availability"))
        bus.publish(topic, payload.decode() if topic.endswith("/availability") else payload, retain=retained)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(url + "/") as resp:
                if (await resp.json()).get("grid_p") is not None:
                    break
            await asyncio.sleep(0.1)
        rows = [("GET / (MeterHub)", await requests(session, url + "/", 300)),
                ("GET /api/v1/site", await requests(session, url + "/api/v1/site", 300)),
                ("GET /api/v1/devices", await requests(session, url + "/api/v1/devices", 300)),
                ("reading -> SSE event", await sse_latency(session, url, bus, 50))]
    await bus.stop()
    return rows


def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker")
        (Path(tmp) / "broker").mkdir(exist_ok=True)
        broker.start()
        port = free_port()
        config = Path(tmp) / "http-api.toml"
        config.write_text(f"[http-api]\nports = [{port}]\npush_interval_s = 0.05\n")
        env = {**os.environ, **broker.env("http-api")}
        proc = subprocess.Popen([sys.executable, "-m", "wattbus_http_api", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, 30)
            rows = asyncio.run(measure(broker, port))
        finally:
            proc.terminate()
            proc.wait(10)
            broker.stop()
    lines = ["what                      n   median ms   p95 ms",
             *[f"{name:24} {len(v):3}   {statistics.median(v):9.2f}   {sorted(v)[int(len(v) * 0.95) - 1]:6.2f}"
               for name, v in rows]]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
