"""A go-e Charger on loopback: API v2 (`/api/status`, `/api/set`) and/or API v1 (`/status`, `/mqtt`).

The charging physics sit behind `ChargerModel` so the simulated house (wattbus_sim.house) can
drive the charger with its own car and grid voltages; `SimCharger` is the standalone default.
The HTTP layer only holds what the firmware stores (amp, frc, psm, alw) and maps it onto the model.

    wattbus-sim goe --port 18080 --api v2 [--serial 012345] [--mdns]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
import zlib
from typing import Any, Protocol

from aiohttp import web

from .goe_v2 import GoeV2, SetRefused
from .lifecycle import run

VOLTAGE_V = 230.0
MIN_CURRENT_A = 6


class ChargerModel(Protocol):
    """What a charger does electrically; the go-e firmware layer calls only these methods."""

    def set_current_a(self, amps: float) -> None: ...
    def set_phases(self, phases: int) -> None: ...
    def set_enabled(self, enabled: bool) -> None: ...
    def plug(self, connected: bool) -> None: ...
    def step(self, now_s: float) -> None: ...
    def power_w(self) -> float: ...
    def phase_currents_a(self) -> tuple[float, float, float]: ...
    def voltages_v(self) -> tuple[float, float, float]: ...
    def energy_total_wh(self) -> float: ...
    def session_energy_wh(self) -> float: ...
    def car_connected(self) -> bool: ...
    def car_full(self) -> bool: ...
    def phases(self) -> int: ...


class SimCharger:
    """Standalone physics: the car follows the offered current after a ramp delay, >= 6 A, 1 or 3 phases."""

    def __init__(self, *, ramp_delay_s: float = 2.0, ramp_a_per_s: float = 4.0, car_phases: int = 3,
                 car_max_current_a: float = 32.0, car_energy_wh: float | None = None,
                 energy_total_wh: float = 1_234_500.0, clock: Any = time.monotonic) -> None:
        self.ramp_delay_s = ramp_delay_s
        self.ramp_a_per_s = ramp_a_per_s
        self.car_phases = car_phases
        self.car_max_current_a = car_max_current_a
        self.car_energy_wh = car_energy_wh  # None: the car never gets full
        self._clock = clock
        self._offered_a = 16.0
        self._phases = 3
        self._enabled = False
        self._connected = True
        self._actual_a = 0.0
        self._changed_at = clock()
        self._last_step = clock()
        self._total_wh = energy_total_wh
        self._session_wh = 0.0
        self._voltages = (VOLTAGE_V, VOLTAGE_V, VOLTAGE_V)

    # ---- commands (the firmware layer)
    def set_current_a(self, amps: float) -> None:
        self.step(self._clock())
        self._offered_a = max(float(MIN_CURRENT_A), amps)
        self._changed_at = self._clock()

    def set_phases(self, phases: int) -> None:
        self.step(self._clock())
        if phases != self._phases:
            # A real charger opens the contactor, switches, and the car ramps up again.
            self._phases = phases
            self._actual_a = 0.0
            self._changed_at = self._clock()

    def set_enabled(self, enabled: bool) -> None:
        self.step(self._clock())
        if enabled != self._enabled:
            self._enabled = enabled
            self._changed_at = self._clock()

    def plug(self, connected: bool) -> None:
        self.step(self._clock())
        self._connected = connected
        if connected:
            self._session_wh = 0.0
        self._changed_at = self._clock()

    def set_voltages_v(self, voltages: tuple[float, float, float]) -> None:
        """The house model feeds its grid voltages in here."""
        self._voltages = voltages

    # ---- physics
    def _target_a(self) -> float:
        if not (self._enabled and self._connected) or self.car_full():
            return 0.0
        return min(self._offered_a, self.car_max_current_a)

    def step(self, now_s: float) -> None:
        dt = max(0.0, now_s - self._last_step)
        if dt == 0.0:
            return
        power_before = self.power_w()
        target = self._target_a()
        if target == 0.0:
            self._actual_a = 0.0  # the contactor opens at once
        elif now_s - self._changed_at >= self.ramp_delay_s:
            delta = target - self._actual_a
            stepped = math.copysign(min(abs(delta), self.ramp_a_per_s * dt), delta)
            self._actual_a += stepped
            if 0 < self._actual_a < MIN_CURRENT_A and delta > 0:
                self._actual_a = float(MIN_CURRENT_A)  # IEC 61851: a car never draws below 6 A
        energy = (power_before + self.power_w()) / 2 * dt / 3600.0
        self._total_wh += energy
        self._session_wh += energy
        self._last_step = now_s

    def active_phases(self) -> int:
        return min(self._phases, self.car_phases)

    def phase_currents_a(self) -> tuple[float, float, float]:
        n = self.active_phases() if self._actual_a > 0 else 0
        return tuple(round(self._actual_a, 2) if i < n else 0.0 for i in range(3))  # type: ignore[return-value]

    def power_w(self) -> float:
        return sum(i * u for i, u in zip(self.phase_currents_a(), self._voltages, strict=True))

    def voltages_v(self) -> tuple[float, float, float]:
        return self._voltages

    def energy_total_wh(self) -> float:
        return self._total_wh

    def session_energy_wh(self) -> float:
        return self._session_wh

    def car_connected(self) -> bool:
        return self._connected

    def car_full(self) -> bool:
        return self.car_energy_wh is not None and self._session_wh >= self.car_energy_wh

    def phases(self) -> int:
        return self._phases


class GoeFirmware:
    """The settings a go-e stores and the status documents it serves, over a ChargerModel."""

    def __init__(self, model: ChargerModel, *, serial: str = "012345", max_current_a: int = 32,
                 firmware_v2: str = "60.4", firmware_v1: str = "041.0", variant_kw: int | None = None) -> None:
        self.model = model
        self.serial = serial
        self.max_current_a = max_current_a  # `ama`, at most what the hardware variant carries
        self.firmware_v2 = firmware_v2
        self.firmware_v1 = firmware_v1
        self.variant_kw = variant_kw or (11 if max_current_a <= 16 else 22)  # `var`: 11 kW/16 A or 22 kW/32 A
        low = zlib.crc32(serial.encode()) & 0xFFFFFF  # a stable, serial-specific station MAC (`wcb`)
        self.mac = "A8:03:2A:" + ":".join(f"{low:06X}"[i:i + 2] for i in (0, 2, 4))
        self.amp = min(16, max_current_a)
        self.frc = 0  # 0 neutral, 1 off, 2 on
        self.psm = 2  # 0 auto, 1 one phase, 2 three phases
        self.alw_v1 = True  # API v1 start/stop
        self.err = 0
        self.sets = 0  # how many set requests were honoured (for tests and benchmarks)
        self.v2 = GoeV2(self)
        self._stopped_by_limit = False
        model.set_current_a(self.amp)
        self.apply()

    def apply(self) -> None:
        self.model.set_current_a(self.amp)
        self.model.set_phases(1 if self.psm == 1 else 3)
        self._stopped_by_limit = self.v2.energy_limit_reached()
        self.model.set_enabled(self.allowed() and not self._stopped_by_limit)

    def enforce_energy_limit(self) -> None:
        """`dwo`: the charger stops by itself once the session reaches the energy limit."""
        reached = self.v2.energy_limit_reached()
        if reached != self._stopped_by_limit:
            self._stopped_by_limit = reached
            self.model.set_enabled(self.allowed() and not reached)

    def allowed(self) -> bool:
        return self.frc == 2 or (self.frc == 0 and self.alw_v1)

    def car(self) -> int:
        if self.err:
            return 5
        if not self.model.car_connected():
            return 1
        if self.model.car_full() or self._stopped_by_limit:
            return 4
        return 2 if self.model.power_w() > 0 else 3

    def nrg(self) -> list[float]:
        u = self.model.voltages_v()
        i = self.model.phase_currents_a()
        p = [round(a * v, 1) for a, v in zip(i, u, strict=True)]
        pf = [99.0 if a > 0 else 0.0 for a in i]
        return [*[round(v, 1) for v in u], 0.0, *i, *p, 0.0, round(sum(p), 1), *pf, 0.0]

    # ---- API v2 (goe_v2.GoeV2 holds every other key)
    def status_v2(self, keys: list[str] | None) -> dict[str, Any]:
        return self.v2.status(keys)

    def set_v2(self, key: str, raw: str) -> str | None:
        """Apply one /api/set key; returns the error text the firmware would answer, or None."""
        try:
            self.v2.set(key, raw)
        except SetRefused as exc:
            return str(exc)
        return None

    # ---- API v1: every value a string except nrg; scaled (0.1 A, 0.1 kW, 0.01 kW, 0.1 kWh, 10 Ws)
    def status_v1(self) -> dict[str, Any]:
        self.model.step(time.monotonic())
        u = self.model.voltages_v()
        i = self.model.phase_currents_a()
        p = [a * v for a, v in zip(i, u, strict=True)]
        nrg = [*(round(v) for v in u), 0, *(round(a * 10) for a in i), *(round(w / 100) for w in p), 0,
               round(sum(p) / 10), *(99 if a > 0 else 0 for a in i), 0]
        pha = sum(1 << (3 + n) for n in range(3) if i[n] > 0) | 0b111
        return {
            "version": "B", "tme": time.strftime("%d%m%y%H%M"), "rbc": "12", "rbt": str(int(time.monotonic() * 1000)),
            "car": str(self.car()), "amp": str(self.amp), "err": str(self.err), "ast": "0",
            "alw": "1" if self.alw_v1 else "0", "stp": "0", "cbl": "32", "pha": str(pha), "tmp": "25",
            "dws": str(round(self.model.session_energy_wh() * 360)), "dwo": "0", "adi": "0", "uby": "0",
            "eto": str(round(self.model.energy_total_wh() / 100)), "wst": "3", "nrg": nrg, "fwv": self.firmware_v1,
            "sse": self.serial, "wss": "wattbus", "wke": "********", "wen": "1", "tof": "101", "tds": "1",
            "lbr": "255", "aho": "2", "afi": "8", "ama": str(self.max_current_a), "al1": "6", "al2": "10",
            "al3": "16", "al4": "20", "al5": "32", "cid": "255", "cch": "65535", "cfi": "65280", "lse": "0",
            "ust": "0", "wak": "********", "r1x": "2", "dto": "0", "nmo": "0",
        }

    def set_v1(self, payload: str) -> str | None:
        key, sep, raw = payload.partition("=")
        if not sep or not raw.isdigit():
            return f"payload {payload!r} is not key=value"
        value = int(raw)
        if key in ("amp", "amx") and MIN_CURRENT_A <= value <= self.max_current_a:
            self.amp = value  # amx: same without an EEPROM write (firmware >= 033)
        elif key == "alw" and value in (0, 1):
            self.alw_v1 = bool(value)
        else:
            return f"invalid {key}={raw}"
        self.sets += 1
        self.apply()
        return None


def build_app(firmware: GoeFirmware, api: str = "v2") -> web.Application:
    """api: "v2" (new firmware, no v1), "v1" (old firmware) or "both" (v2 firmware with API v1 enabled)."""
    app = web.Application()

    async def status_v2(request: web.Request) -> web.Response:
        keys = [k for k in request.query.get("filter", "").split(",") if k]
        return web.json_response(firmware.status_v2(keys or None))

    async def set_v2(request: web.Request) -> web.Response:
        answer: dict[str, Any] = {}
        for key, raw in request.query.items():
            error = firmware.set_v2(key, raw)
            answer[key] = True if error is None else error
        ok = all(v is True for v in answer.values())
        return web.json_response(answer, status=200 if ok else 400)

    async def status_v1(_request: web.Request) -> web.Response:
        return web.json_response(firmware.status_v1())

    async def mqtt_v1(request: web.Request) -> web.Response:
        error = firmware.set_v1(request.query.get("payload", ""))
        if error:
            return web.Response(status=400, text=error)
        return web.json_response(firmware.status_v1())

    firmware.v2.conf["hla"] = api == "both"  # httpLegacyApiEnabled: v2 firmware with API v1 switched on
    if api in ("v2", "both"):
        app.router.add_get("/api/status", status_v2)
        app.router.add_get("/api/set", set_v2)
    if api in ("v1", "both"):
        app.router.add_get("/status", status_v1)
        app.router.add_get("/mqtt", mqtt_v1)
    return app


async def announce_mdns(service_type: str, name: str, port: int, properties: dict[str, str]) -> Any:
    """Announce the device like the real one does, on the loopback interface only."""
    from zeroconf import IPVersion, ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = ServiceInfo(service_type, f"{name}.{service_type}", addresses=[bytes([127, 0, 0, 1])], port=port,
                       properties=properties, server=f"{name}.local.")
    await zc.async_register_service(info)
    return zc


async def serve_http(app: web.Application, port: int, banner: str,
                     mdns: tuple[str, str, dict[str, str]] | None = None, host: str = "127.0.0.1") -> None:
    """Serve an HTTP simulator on host until cancelled; mdns = (service type, name, TXT)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"{banner} on http://{host}:{port}", flush=True)
    zc = await announce_mdns(mdns[0], mdns[1], port, mdns[2]) if mdns else None
    try:
        await asyncio.Event().wait()
    finally:
        if zc is not None:
            await zc.async_close()
        await runner.cleanup()


async def serve(args: argparse.Namespace) -> None:
    model = SimCharger(ramp_delay_s=args.ramp_delay_s, car_phases=args.car_phases)
    firmware = GoeFirmware(model, serial=args.serial, max_current_a=args.max_current_a)
    mdns = ("_http._tcp.local.", f"go-echarger_{args.serial}", {"devicetype": "go-eCharger", "serial": args.serial})
    await serve_http(build_app(firmware, args.api), args.port,
                     f"go-e simulator (API {args.api}, serial {args.serial})", mdns if args.mdns else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim goe", description="go-e Charger simulator (HTTP API v1/v2)")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--api", choices=["v1", "v2", "both"], default="v2")
    parser.add_argument("--serial", default="012345")
    parser.add_argument("--max-current-a", type=int, default=32)
    parser.add_argument("--car-phases", type=int, choices=[1, 3], default=3)
    parser.add_argument("--ramp-delay-s", type=float, default=2.0)
    parser.add_argument("--mdns", action="store_true", help="announce over mDNS on 127.0.0.1")
    args = parser.parse_args(argv)
    run(serve(args))
    return 0
