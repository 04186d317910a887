"""integrations: template rendering and discovery build cost, HTTP push rate to a local server.

Prints a short table; numbers are per core of this machine (the Pi is roughly 3-5x slower).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from wattbus import codec
from wattbus import messages as m
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_integrations import hass_discovery, model
from wattbus_integrations.http_push import HttpPusher
from wattbus_integrations.render import HttpOut, render
from wattbus_integrations.rules import HttpTarget, load_rules

ROOT = Path(__file__).resolve().parents[1]
READINGS = [codec.decode_reading(line) for line in
            (ROOT / "tests/integrations/data/readings.jsonl").read_text().splitlines() if line.strip()]
EXAMPLES = sorted(str(p) for p in (ROOT / "services/integrations/examples").glob("*.toml"))


def _rate(action: object, seconds: float = 1.0) -> tuple[float, int]:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        action()  # type: ignore[operator]
        count += 1
    return count / (time.perf_counter() - start), count


def _render_all() -> int:
    produced = 0
    for reading in READINGS:
        base = model.flatten(reading, "bench", None)
        for rule in RULES:
            if rule.matches(model.kind_of(reading), reading.device_id):
                produced += len(render(rule, base)[0])
    return produced


RULES = load_rules(EXAMPLES, ["integrations/"])
SETTINGS = hass_discovery.HassDiscoverySettings()


def _discovery_all() -> None:
    for reading in READINGS:
        meta = m.DeviceMeta(device_id=reading.device_id, kind=model.kind_of(reading),  # type: ignore[arg-type]
                            source="bench", protocol="simulated", capabilities=["set_charge_current", "set_relay"])
        present = {k for k, v in model.values_of(reading).items() if v is not None}
        codec.encode(hass_discovery.device_config(SETTINGS, meta, model.kind_of(reading), present))


async def _http_rate(count: int = 300) -> float:
    port_holder: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_holder.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    counters = Counters()
    async with aiohttp.ClientSession() as session:
        pusher = HttpPusher("bench", HttpTarget(url="http://x"), 0.0, session, counters, get_logger("bench"))
        start = time.perf_counter()
        for n in range(count):
            await pusher.send(HttpOut("bench", "POST", f"http://127.0.0.1:{port_holder[0]}/p", '{"w":1}', {}, str(n)))
        elapsed = time.perf_counter() - start
    await runner.cleanup()
    return count / elapsed


def main() -> str:
    messages_per_pass = _render_all()
    render_rate, _ = _rate(_render_all)
    discovery_rate, _ = _rate(_discovery_all)
    http_rate = asyncio.run(_http_rate())
    rows = [
        ("readings through all example rules", f"{render_rate * len(READINGS):,.0f} readings/s",
         f"{messages_per_pass} messages per {len(READINGS)} readings, {len(RULES)} rules"),
        ("HA discovery config build + encode", f"{discovery_rate * len(READINGS):,.0f} devices/s",
         "one device config with all its components"),
        ("HTTP push, sequential, loopback", f"{http_rate:,.0f} requests/s", "one request in flight per rule"),
    ]
    width = max(len(r[0]) for r in rows)
    text = "\n".join([f"{'integrations':<{width}}  rate                 note",
                      *(f"{a:<{width}}  {b:<20} {c}" for a, b, c in rows)])
    print(text)
    return text


if __name__ == "__main__":
    main()
