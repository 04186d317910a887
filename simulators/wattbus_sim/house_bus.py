"""The simulated house on the bus, as device source `house-sim`: `wattbus-sim house_bus ...`.

It publishes the house's grid meter, PV inverter, battery, wallbox and heater relay readings
(meter last in each round, so a controller sees a consistent set) and executes charger and relay
commands from the bus. Three paces:
- real time (`--speed 1`, the `make run` demo): readings carry wall-clock timestamps;
- faster (`--speed N`): N simulated seconds per second, simulated timestamps;
- lockstep (`--speed 0`, tests and benchmark): after each meter reading it waits until the
  controller published a LoadpointState for that instant, so a day runs as fast as the broker and
  the controller allow and replays identically. Readings carry the simulated time.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections import Counter
from datetime import UTC, datetime

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message
from wattbus.config import ConfigError, load

from .house import House
from .house_metrics import DayMetrics
from .house_profiles import ProfileError, clock_s
from .lifecycle import run

SOURCE = "house-sim"
METER, PV, BATTERY, CHARGER, HEATER = "house-meter", "house-pv", "house-battery", "house-wallbox", "house-heater"


class HouseBus:
    def __init__(self, house: House, bus: Bus, *, meter_interval_s: float = 1.0, speed: float = 0.0,
                 lockstep_loadpoint: str | None = None, lockstep_timeout_s: float = 5.0,
                 reading_qos: int = 1) -> None:
        self.house = house
        self.bus = bus
        self.meter_interval_s = meter_interval_s
        self.speed = speed
        self.lockstep_loadpoint = lockstep_loadpoint if speed == 0 else None
        self.lockstep_timeout_s = lockstep_timeout_s
        # QoS 0 for lockstep benchmarks: with QoS 1 every round waits for PUBACKs that Nagle's
        # algorithm and delayed ACKs hold back ~40 ms each on loopback (see bench_surplus.py)
        self.reading_qos = reading_qos
        self.meter_dropout = False  # tests: the meter goes silent, the other devices keep reporting
        self.metrics = DayMetrics()
        self.commands: Counter[str] = Counter()
        self.rejected = 0
        self.lockstep_misses = 0
        self.last_state: m.LoadpointState | None = None
        self._state_seen = asyncio.Event()
        self._wanted: datetime | None = None

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        self._no_delay()
        devices: list[tuple[str, m.DeviceKind, str, list[str]]] = [
            (METER, "meter", "grid meter", []), (PV, "inverter", "PV inverter", []),
            (BATTERY, "battery", "home battery", []),
            (CHARGER, "charger", "wallbox", ["set_charge_current", "set_charging", "set_phases"]),
            (HEATER, "relay", "heater relay", ["set_relay"])]
        for device_id, kind, model, caps in devices:
            meta = m.DeviceMeta(device_id=device_id, kind=kind, source=SOURCE, protocol="simulated",
                                manufacturer="wattbus", model=model, serial=device_id, capabilities=caps)
            self.bus.publish(topics.device_meta(SOURCE, device_id), meta, retain=True)
            self.bus.publish(topics.device_availability(SOURCE, device_id), m.ONLINE, retain=True)
        self.bus.subscribe(topics.commands_for(SOURCE), m.Command, self.on_command)
        if self.lockstep_loadpoint:
            self.bus.subscribe(topics.loadpoint_state(self.lockstep_loadpoint), m.LoadpointState, self._on_state,
                               qos=self.reading_qos)

    def _no_delay(self) -> None:
        """Send each reading at once: with Nagle's algorithm a round of small publishes waits ~40 ms
        for the broker's delayed ACK, which made a lockstep day take minutes instead of seconds."""
        sock = self.bus._client.socket()  # the shared Bus does not set TCP_NODELAY (yet)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_state(self, msg: Message[m.LoadpointState]) -> None:
        self.last_state = msg.payload
        if self._wanted is not None and msg.payload.timestamp >= self._wanted:
            self._state_seen.set()

    # ------------------------------------------------------------------ commands

    def on_command(self, msg: Message[m.Command]) -> None:
        device_id = topics.parse(msg.topic).ident or ""
        command = msg.payload
        tag = str(command.__struct_config__.tag)
        status: m.CommandStatus = "ok"
        message = ""
        applied: dict[str, m.ExtraValue] = {}
        charger = self.house.charger
        try:
            if device_id == CHARGER and isinstance(command, m.SetChargeCurrent):
                charger.set_current_a(command.current_a)
                applied["current_a"] = charger.offered_a
            elif device_id == CHARGER and isinstance(command, m.SetCharging):
                charger.set_enabled(command.enabled)
                applied["enabled"] = charger.enabled
            elif device_id == CHARGER and isinstance(command, m.SetPhases) and not charger.can_switch_phases:
                status, message = "refused", f"{device_id} has no phase-switch contactor: it stays on {charger.phases}p"
            elif device_id == CHARGER and isinstance(command, m.SetPhases):
                charger.set_phases(command.phases)
                applied["phases"] = charger.phases
            elif device_id == HEATER and isinstance(command, m.SetRelay) and command.channel == 0:
                self.house.relays["heater"].set_on(command.on)
                applied["on"] = command.on
            else:
                status, message = "refused", f"{device_id} does not take {tag}"
        except ValueError as exc:
            status, message = "invalid", f"{tag} for {device_id}: {exc}"
        if status == "ok":
            self.commands[tag] += 1
        else:
            self.rejected += 1
        result = m.CommandResult(status=status, command=tag, target=device_id, request_id=command.request_id,
                                 message=message, applied=applied)
        self.bus.respond(msg, result, topics.device_result(SOURCE, device_id))

    # ------------------------------------------------------------------ readings

    def _stamp(self) -> datetime:
        return datetime.now(UTC) if self.speed == 1 else self.house.timestamp()

    def publish_readings(self) -> datetime:
        h, ts = self.house, self._stamp()
        c = h.charger
        qos = self.reading_qos

        def pub(topic: str, reading: m.ReadingBase) -> None:
            self.bus.publish(topic, reading, qos=qos)

        pub(topics.device_reading(SOURCE, PV), m.InverterReading(
            device_id=PV, timestamp=ts, power_w=round(h.pv_power_w(), 1), energy_today_wh=round(h.pv_energy_wh, 1),
            state="mppt" if h.pv_power_w() > 0 else "sleeping"))
        if h.battery:
            pub(topics.device_reading(SOURCE, BATTERY), m.BatteryReading(
                device_id=BATTERY, timestamp=ts, power_w=round(h.battery.power_w(), 1),
                soc_pct=round(h.battery.soc_pct(), 2), capacity_wh=h.battery.capacity_wh))
        pub(topics.device_reading(SOURCE, CHARGER), m.ChargerReading(
            device_id=CHARGER, timestamp=ts, state=c.state(), power_w=round(c.power_w(), 1),
            energy_total_wh=round(c.energy_total_wh, 1), session_energy_wh=round(c.session_energy_wh, 1),
            set_current_a=c.offered_a, phases_active=3 if c.phases == 3 else 1, enabled=c.enabled))
        for relay in h.relays.values():
            pub(topics.device_reading(SOURCE, HEATER), m.RelayReading(
                device_id=HEATER, timestamp=ts, on=relay.on, power_w=relay.power_w(),
                energy_wh=round(relay.energy_wh, 1), temperature_c=relay.temperature_c))
        if not self.meter_dropout:
            pub(topics.device_reading(SOURCE, METER), m.MeterReading(
                device_id=METER, timestamp=ts, power_w=round(h.grid_power_w(), 1),
                energy_import_wh=round(h.grid_import_wh, 1), energy_export_wh=round(h.grid_export_wh, 1)))
        return ts

    async def run(self, until_s: float, wrap_to_s: float | None = None) -> None:
        """Run until the house clock reaches until_s (or, with wrap_to_s, forever, restarting the day there)."""
        while True:
            if self.house.time_s >= until_s:
                if wrap_to_s is None:
                    return
                self.house.time_s = wrap_to_s
            ts = self.publish_readings()
            if self.lockstep_loadpoint and not self.meter_dropout:
                self._wanted = ts
                self._state_seen.clear()
                try:
                    await asyncio.wait_for(self._state_seen.wait(), self.lockstep_timeout_s)
                except TimeoutError:
                    self.lockstep_misses += 1
            elif self.speed > 0:
                await asyncio.sleep(self.meter_interval_s / self.speed)
            else:
                await asyncio.sleep(0.005)  # lockstep without a loadpoint to wait for: a short yield
            for _ in range(max(1, round(self.meter_interval_s))):
                self.house.step(1.0)
                self.metrics.record(self.house)


async def _amain(args: argparse.Namespace) -> int:
    house = House.from_profile(args.profile, args.start)
    end, wrap_to = clock_s(args.end), clock_s(args.start) if args.loop else None
    bus_cfg = load(args.config).bus()
    bus = Bus(bus_cfg, SOURCE, args.instance)
    await bus.start()
    adapter = HouseBus(house, bus, meter_interval_s=args.interval, speed=args.speed,
                       lockstep_loadpoint=args.lockstep_loadpoint)
    adapter.start()
    print(f"house on the bus as {SOURCE} ({args.profile} day from {args.start} to {args.end}, "
          f"speed {args.speed:g})", flush=True)
    try:
        await adapter.run(end, wrap_to_s=wrap_to)
    finally:  # the day's end or a stop signal: disconnect cleanly and report the day so far
        await bus.stop()
        row = adapter.metrics.table_row()
        print(" ".join(f"{k}={v:.2f}" for k, v in row.items()), dict(adapter.commands), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim house_bus", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="broken", help="day profile: clear, broken, overcast or a file")
    parser.add_argument("--start", default="10:00", help="simulated time of day to start at, HH:MM")
    parser.add_argument("--end", default="19:00", help="simulated time of day to stop (or wrap) at, HH:MM")
    parser.add_argument("--loop", action="store_true", help="restart the day at --start when --end is reached")
    parser.add_argument("--speed", type=float, default=1.0, help="1 real time, N faster, 0 lockstep")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between meter readings")
    parser.add_argument("--lockstep-loadpoint", help="lockstep: wait for this loadpoint's state each round")
    parser.add_argument("--instance", default="main")
    parser.add_argument("--config", help="wattbus config file for the [bus] section (env WATTBUS_BUS_* works)")
    args = parser.parse_args(argv)
    if args.speed < 0:
        parser.error("--speed must be 0 (lockstep) or positive")
    try:
        return run(_amain(args)) or 0  # None: stopped by a signal
    except (ConfigError, ProfileError, ValueError) as exc:
        print(f"wattbus-sim house_bus: {exc}")
        return 2


