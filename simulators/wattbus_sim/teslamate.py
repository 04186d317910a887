"""A car as TeslaMate reports it, charged by a go-e Charger: `wattbus-sim teslamate ...`.

The car's state of charge follows the energy the go-e delivers: it polls the charger's HTTP API v2
(`GET /api/status?filter=car,wh`: car state and the session's energy, the same wire the bridge
reads) and publishes TeslaMate's per-value topics on the broker, one plain-text value each,
retained, on change (TeslaMate's MQTT integration: teslamate/cars/<id>/battery_level in %,
est_battery_range_km, charge_limit_soc, plugged_in, charging_state). So the demo's generic-bridge
reads it with its `teslamate-mqtt` template, exactly as it would read a real TeslaMate.

SoC = the SoC at plug-in + session energy x efficiency / capacity. The defaults are the simulated
house's EV (64 kWh at 30 %, 92 % into the battery), so this car and the house's agree; a new
session (the session energy falls, e.g. the house's day starts again) is the car arriving again.
It logs in as the `house-sim` broker user, whose ACL allows teslamate/# (mosquitto/acl).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field

import aiohttp
from wattbus.bus import Bus
from wattbus.config import ConfigError, load
from wattbus.http_session import HttpError, request, session

from .lifecycle import run

SOURCE = "house-sim"  # the simulated house's broker account
# go-e `car`: 1 no car, 2 charging, 3 waiting for the car, 4 complete (go-e API v2 documentation)
CHARGING_STATE = {1: "Disconnected", 2: "Charging", 3: "Stopped", 4: "Complete"}


@dataclass
class Car:
    capacity_wh: float = 64_000.0
    arrival_soc_pct: float = 30.0
    efficiency: float = 0.92
    full_range_km: float = 400.0
    limit_soc_pct: int = 80
    soc_pct: float = field(init=False)

    def __post_init__(self) -> None:
        self.soc_pct = self.arrival_soc_pct

    def follow(self, session_wh: float) -> None:
        """The charger's session energy now (it starts from 0 with each new session, and so does the car)."""
        stored = session_wh * self.efficiency
        self.soc_pct = min(100.0, self.arrival_soc_pct + 100.0 * stored / self.capacity_wh)

    def values(self, car_state: int) -> dict[str, str]:
        """TeslaMate's payloads: battery_level is a whole percent, the range in km with one decimal."""
        return {"battery_level": str(int(self.soc_pct)),
                "est_battery_range_km": f"{self.full_range_km * self.soc_pct / 100:.1f}",
                "charge_limit_soc": str(self.limit_soc_pct),
                "plugged_in": "false" if car_state == 1 else "true",
                "charging_state": CHARGING_STATE.get(car_state, "NoPower")}


async def poll_goe(client: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    """(car state, session energy in Wh) from the charger; ValueError naming the URL if either is missing."""
    answer = await request(client, "GET", f"{url.rstrip('/')}/api/status", params={"filter": "car,wh"})
    doc = answer.json()
    if answer.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("car"), int):
        raise ValueError(f"GET {url}/api/status: HTTP {answer.status}, no `car` in {answer.body[:200]!r}")
    return doc["car"], float(doc.get("wh") or 0.0)


async def _amain(args: argparse.Namespace) -> int:
    car = Car(args.capacity_wh, args.soc_pct, args.efficiency, args.full_range_km, args.limit_soc_pct)
    bus = Bus(load(args.config).bus(), SOURCE, "car")
    await bus.start()
    client = session(timeout_s=5.0, limit_per_host=1)
    prefix = f"{args.prefix}/cars/{args.car}"
    sent: dict[str, str] = {}
    print(f"car {args.car} on teslamate topics ({prefix}/...), charged by the go-e at {args.goe}", flush=True)
    try:
        while True:
            try:
                state, wh = await poll_goe(client, args.goe)
            except (HttpError, ValueError) as exc:  # the charger not up yet, or restarting: try again
                print(f"charger not read: {exc}", flush=True)
            else:
                car.follow(wh)
                for key, value in car.values(state).items():
                    if sent.get(key) != value:
                        bus.publish(f"{prefix}/{key}", value, retain=True)
                        sent[key] = value
            await asyncio.sleep(args.interval)
    finally:
        await client.close()
        await bus.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim teslamate", description=__doc__.splitlines()[0])
    parser.add_argument("--goe", default="http://127.0.0.1:18090", help="the go-e Charger charging the car")
    parser.add_argument("--car", default="1", help="TeslaMate's car id")
    parser.add_argument("--prefix", default="teslamate", help="TeslaMate's topic prefix")
    parser.add_argument("--capacity-wh", type=float, default=64_000.0, help="usable battery, Wh")
    parser.add_argument("--soc-pct", type=float, default=30.0, help="SoC when plugged in, %%")
    parser.add_argument("--efficiency", type=float, default=0.92, help="share of AC energy stored")
    parser.add_argument("--full-range-km", type=float, default=400.0, help="estimated range at 100 %%")
    parser.add_argument("--limit-soc-pct", type=int, default=80, help="the car's charge limit, %%")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between charger polls")
    parser.add_argument("--config", help="wattbus config file for the [bus] section (env WATTBUS_BUS_* works)")
    args = parser.parse_args(argv)
    for name in ("capacity_wh", "efficiency", "interval", "full_range_km"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.soc_pct <= 100 or not 1 <= args.limit_soc_pct <= 100 or args.efficiency > 1:
        parser.error("--soc-pct is 0-100, --limit-soc-pct 1-100, --efficiency at most 1")
    try:
        return run(_amain(args)) or 0  # None: stopped by a signal
    except ConfigError as exc:
        print(f"wattbus-sim teslamate: {exc}")
        return 2
