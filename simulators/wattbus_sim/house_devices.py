"""The simulated house behind real device protocols: `wattbus-sim house_devices ...`.

One House (wattbus_sim.house) runs in real time or N× faster, and its devices answer on loopback
the way the real hardware does, so bridges and the controller close the loop through the wire:
- the wallbox as a go-e Charger (HTTP API v2 via goe.GoeFirmware over `HouseCharger`);
- the grid meter as a Shelly Pro 3EM (Gen2 RPC `Shelly.GetStatus`, `EM.GetStatus`, digest auth);
- the water heater as a Shelly Plus 1PM relay (`Switch.Set` switches the house's heater);
- optionally the grid meter again as an SML meter on a pty (`--sml-link`, an IR head's view);
- optionally the PV as a Fronius-like SunSpec inverter on Modbus TCP (`--sunspec-port`);
- optionally PV, grid, load and battery as a GivEnergy hybrid behind its dongle (`--giv-port`).
The battery stays off unless `--battery` or `--giv-port`: without the GivEnergy face no bridge
publishes it, and a self-consumption battery hides the surplus from a controller that cannot see
its charge power.

    wattbus-sim house_devices --goe-port 18090 --meter-port 18091 --heater-port 18092 --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .giv import Dongle as GivDongle
from .goe import GoeFirmware
from .goe import build_app as goe_app
from .house import House
from .house_charger import HouseCharger
from .house_ev import VOLTAGE_V
from .house_giv import HouseGiv
from .house_profiles import ProfileError, clock_s
from .lifecycle import stop_event
from .shelly import ShellyState
from .shelly import build_app as shelly_app
from .sunspec_devices import Plant

# A meter's registers start from a lifetime total, not from zero (as on a real installation).
METER_BASE_IMPORT_WH = 5_432_100.0
METER_BASE_EXPORT_WH = 1_234_500.0
HEATER_BASE_WH = 12_345.0
PV_BASE_WH = 12_345_678.0
FORCE = {"neutral": 0, "off": 1, "on": 2}  # go-e API v2 `frc`


class HousePlant(Plant):
    """The SunSpec simulator's plant with the house's PV. Model 123 curtailment lowers what the
    inverter reports, but the house's energy balance does not see it (no hook in House)."""

    def __init__(self, house: House) -> None:
        super().__init__(peak_w=house.profile.pv_peak_w)
        self.house = house

    def pv_w(self) -> float:
        if not self.connected:
            return 0.0
        return round(min(self.house.pv_power_w(), self.peak_w * self.limit_pct / 100), 1)

    def advance(self) -> None:
        self.energy_wh = PV_BASE_WH + self.house.pv_energy_wh
        self.house_w = self.house.load_power_w()


def grid_phases_w(house: House) -> tuple[float, float, float]:
    """The house's grid power split over L1-L3 so that the phases add up to the total.

    The car draws on L1 (1p) or on all three; the heater sits on L2; household load, PV and the
    battery (three-phase inverters) spread evenly. A 1p car at noon thus imports on L1 while L2/L3
    export, as balancing (saldierende) meters see it.
    """
    c = house.charger
    per_phase_ev = c.current_a() * VOLTAGE_V
    ev = [per_phase_ev if n < c.effective_phases() else 0.0 for n in range(3)] if c.power_w() > 0 else [0.0] * 3
    heater = [0.0, house.relay_power_w(), 0.0]
    rest = (house.grid_power_w() - sum(ev) - sum(heater)) / 3.0
    a, b, cc = (round(rest + e + h, 1) for e, h in zip(ev, heater, strict=True))
    return a, b, cc


class HouseGridMeter(ShellyState):
    """A Shelly Pro 3EM that measures the house's grid connection."""

    def __init__(self, house: House, mac: str) -> None:
        super().__init__("Pro3EM", mac=mac)
        self.house = house
        self.step()

    def step(self) -> None:
        self.grid_w = grid_phases_w(self.house)
        self.grid_import_wh = METER_BASE_IMPORT_WH + self.house.grid_import_wh
        self.grid_export_wh = METER_BASE_EXPORT_WH + self.house.grid_export_wh


class HouseHeaterRelay(ShellyState):
    """A Shelly Plus 1PM switching the house's water heater (its thermostat may draw nothing)."""

    def __init__(self, house: House, mac: str, relay: str = "heater") -> None:
        super().__init__("Plus1PM", mac=mac)
        self.house = house
        self.relay = house.relays[relay]
        self.step()

    def power_w(self, channel: int) -> float:
        return round(self.relay.power_w(), 2)

    def step(self) -> None:
        self.relays[0] = self.relay.on
        self.energy_wh[0] = HEATER_BASE_WH + self.relay.energy_wh

    def switch(self, channel: int, on: bool) -> bool:
        was = self.relay.on
        self.relay.set_on(on)
        if was != on:
            self.switches += 1
        self.step()
        return was


class HouseDevices:
    """One house, its device servers, and the clock that advances it."""

    def __init__(self, house: House, *, goe_serial: str = "204571", meter_mac: str = "08F9E0E5A001",
                 heater_mac: str = "B8D61A8BA002", meter_password: str | None = None,
                 goe_max_current_a: int = 16, goe_force: int = 0, host: str = "127.0.0.1") -> None:
        self.house = house
        self.host = host  # the address every device listens on (0.0.0.0 in a container)
        self.charger = HouseCharger(house)
        self.goe = GoeFirmware(self.charger, serial=goe_serial, max_current_a=goe_max_current_a)
        # frc as the charger was left: 0 neutral charges a plugged-in car at once (the go-e's own
        # default), 1 off is how a controller leaves a stopped wallbox (the demo starts there)
        self.goe.frc = goe_force
        self.charger.set_enabled(self.goe.allowed())
        self.meter = HouseGridMeter(house, meter_mac)
        self.heater = HouseHeaterRelay(house, heater_mac) if "heater" in house.relays else None
        self.meter_password = meter_password
        self._runners: list[web.AppRunner] = []
        self._stoppers: list[Callable[[], Any]] = []
        self.ports: dict[str, int] = {}
        self.giv: HouseGiv | None = None  # the GivEnergy face, once started

    async def _serve(self, name: str, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port)
        await site.start()
        self._runners.append(runner)
        server = site._server  # the bound port when 0 was asked for (tests)
        sockets = getattr(server, "sockets", None) or []
        self.ports[name] = int(sockets[0].getsockname()[1]) if sockets else port
        return self.ports[name]

    async def start(self, goe_port: int, meter_port: int, heater_port: int | None) -> None:
        await self._serve("goe", goe_app(self.goe, "v2"), goe_port)
        await self._serve("meter", shelly_app(self.meter, self.meter_password), meter_port)
        if self.heater is not None and heater_port is not None:
            await self._serve("heater", shelly_app(self.heater), heater_port)

    async def start_sunspec(self, port: int, serial: str = "34119777") -> None:
        """The PV as a Fronius-like SunSpec inverter (unit 1) on Modbus TCP (pymodbus only when asked for)."""
        from .modbus_units import tcp_server
        from .sunspec import SunSpecUnit

        server = tcp_server([SunSpecUnit("fronius", serial, HousePlant(self.house)).device(1)], self.host, port)
        task = asyncio.create_task(server.serve_forever())

        async def stop() -> None:
            await server.shutdown()  # type: ignore[no-untyped-call]
            task.cancel()
        self._stoppers.append(stop)
        self.ports["sunspec"] = port

    async def start_giv(self, port: int, batteries: int = 1, heartbeat_s: float = 180.0,
                        heartbeat_timeout_s: float = 5.0) -> int:
        """PV, grid, load and battery as a GivEnergy hybrid behind its dongle (framing as giv.py)."""
        self.giv = HouseGiv(self.house)
        dongle = GivDongle(self.giv.inverter(batteries), heartbeat_s, heartbeat_timeout_s, split=True)
        clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None  # a connection handler always runs in a task
            clients[task] = writer
            try:
                await dongle.handle(reader, writer)
            finally:
                clients.pop(task, None)

        server = await asyncio.start_server(handle, self.host, port)

        async def stop() -> None:
            # Python 3.11's Server.close() leaves open connections running: close them, so no
            # handler outlives the devices
            server.close()
            for writer in list(clients.values()):
                writer.close()
            await asyncio.wait(list(clients), timeout=5.0) if clients else None
            await server.wait_closed()
        self._stoppers.append(stop)
        self.ports["giv"] = int(server.sockets[0].getsockname()[1])
        return self.ports["giv"]

    async def stop(self) -> None:
        for stop in self._stoppers:
            await stop()
        for runner in self._runners:
            await runner.cleanup()

    async def run(self, speed: float, until_s: float, wrap_to_s: float | None = None,
                  tick_s: float = 0.1) -> None:
        """Advance the house `speed` simulated seconds per wall second until its clock reaches until_s."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        owed = 0.0  # simulated seconds due but not stepped yet (the house steps whole seconds)
        while True:
            await asyncio.sleep(tick_s)
            now = loop.time()
            owed += (now - last) * speed
            last = now
            while owed >= 1.0:
                if self.house.time_s >= until_s:
                    if wrap_to_s is None:
                        return
                    self.house.time_s = wrap_to_s  # a new day: the sky and load curves restart
                self.house.step(1.0)
                owed -= 1.0
            self.meter.step()
            if self.heater is not None:
                self.heater.step()


async def feed_sml(house: House, link: Path, interval_s: float, serial: int, stop: asyncio.Event) -> None:
    """The grid meter as an SML meter on an IR head: a telegram every interval_s into a pty."""
    from .sml import MeterState, PtyLine, sml_frame

    line = PtyLine(link)
    state = MeterState(serial=serial)
    rng = random.Random(serial)
    try:
        while not stop.is_set():
            state.power_w = round(house.grid_power_w(), 1)
            state.phases_w = list(grid_phases_w(house))
            state.import_wh = METER_BASE_IMPORT_WH + house.grid_import_wh
            state.export_wh = METER_BASE_EXPORT_WH + house.grid_export_wh
            # 9600 baud pacing sleeps per chunk: in a thread, so the HTTP devices keep answering
            await asyncio.to_thread(line.write_paced, sml_frame(state), rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
    finally:
        line.close()


def build_house(args: argparse.Namespace) -> House:
    house = House.from_profile(args.profile, args.start, with_heater=args.heater_port is not None)
    if not args.battery and args.giv_port is None:  # the giv face publishes the battery
        house.battery = None
    return house


async def _amain(args: argparse.Namespace) -> int:
    stop = stop_event()  # first: a signal during start-up stops the devices once they are up
    house = build_house(args)
    devices = HouseDevices(house, goe_serial=args.goe_serial, meter_mac=args.meter_mac, heater_mac=args.heater_mac,
                           meter_password=args.meter_password, goe_max_current_a=args.goe_max_current_a,
                           goe_force=FORCE[args.goe_force], host=args.host)
    await devices.start(args.goe_port, args.meter_port, args.heater_port)
    if args.sunspec_port:
        await devices.start_sunspec(args.sunspec_port)
    if args.giv_port is not None:
        await devices.start_giv(args.giv_port, args.giv_batteries, args.giv_heartbeat_s)
    tasks = [asyncio.create_task(devices.run(args.speed, clock_s(args.end),
                                             clock_s(args.start) if args.loop else None))]
    if args.sml_link:
        sml = feed_sml(house, Path(args.sml_link), args.sml_interval, args.sml_serial, stop)
        tasks.append(asyncio.create_task(sml))
    print(f"house devices ({args.profile} day from {args.start}, speed {args.speed:g}): "
          + ", ".join(f"{k} on {args.host}:{v}" for k, v in devices.ports.items())
          + (f", SML meter -> {args.sml_link}" if args.sml_link else ""), flush=True)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([tasks[0], waiter], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    await devices.stop()
    c = house.charger
    print(f"house devices stopped at {time.strftime('%H:%M:%S', time.gmtime(house.time_s))}: "
          f"EV {c.energy_total_wh / 1000:.2f} kWh, import {house.grid_import_wh / 1000:.2f} kWh, "
          f"export {house.grid_export_wh / 1000:.2f} kWh, go-e sets {devices.goe.sets}", flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wattbus-sim house_devices", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="broken", help="day profile: clear, broken, overcast or a file")
    parser.add_argument("--start", default="10:00", help="simulated time of day to start at, HH:MM")
    parser.add_argument("--end", default="19:00", help="simulated time of day to stop (or wrap) at, HH:MM")
    parser.add_argument("--loop", action="store_true", help="restart the day at --start when --end is reached")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (1 real time)")
    parser.add_argument("--host", default="127.0.0.1", help="the address the devices listen on (0.0.0.0: all)")
    parser.add_argument("--battery", action="store_true", help="keep the profile's home battery in the house")
    parser.add_argument("--goe-port", type=int, default=18090, help="go-e Charger HTTP API v2")
    parser.add_argument("--goe-serial", default="204571")
    parser.add_argument("--goe-max-current-a", type=int, default=16, help="the charger's ama (cable/fuse limit)")
    parser.add_argument("--goe-force", choices=sorted(FORCE), default="neutral",
                        help="the go-e's frc at start: neutral (charges at once), off or on")
    parser.add_argument("--meter-port", type=int, default=18091, help="Shelly Pro 3EM grid meter (Gen2 RPC)")
    parser.add_argument("--meter-mac", default="08F9E0E5A001")
    parser.add_argument("--meter-password", help="Gen2 digest auth for the meter (user admin)")
    parser.add_argument("--heater-port", type=int, help="Shelly Plus 1PM heater relay (omit: no heater)")
    parser.add_argument("--heater-mac", default="B8D61A8BA002")
    parser.add_argument("--sml-link", help="also write the grid meter as SML into a pty linked here")
    parser.add_argument("--sml-interval", type=float, default=1.0)
    parser.add_argument("--sml-serial", type=int, default=60694612)
    parser.add_argument("--sunspec-port", type=int, help="also serve the PV as a SunSpec inverter (Modbus TCP)")
    parser.add_argument("--giv-port", type=int, help="also serve PV, grid and battery as a GivEnergy dongle (TCP)")
    parser.add_argument("--giv-batteries", type=int, default=1, choices=range(1, 7),
                        help="packs the house battery appears as on the GivEnergy face")
    parser.add_argument("--giv-heartbeat-s", type=float, default=180.0, help="the dongle's heartbeat period")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive (1 = real time)")
    for name in ("goe_port", "meter_port", "heater_port", "sunspec_port", "giv_port"):
        port = getattr(args, name)
        if port is not None and not 0 <= port <= 65535:
            parser.error(f"--{name.replace('_', '-')} {port} is not a TCP port")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(_amain(args))
    except (ProfileError, ValueError, OSError) as exc:
        print(f"wattbus-sim house_devices: {exc}", flush=True)
        return 2
