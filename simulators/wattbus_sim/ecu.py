"""APsystems ECU simulator: the ECU's TCP protocol on (loopback) port 8899, and its restart URL.

    wattbus-sim ecu --port 18899 --model ECU-R --fleet 01:2,02:1,03:1,04:1,05:1 --refresh-s 300

Answers the info (0001), real-time (0002) and signal (0030) queries with the byte layouts of the
real ECU-R/ECU-B (info layout "01", ending in the two 6-byte MAC addresses a real ECU-R sends after
its time zone) and ECU-C (layout "02"), for every inverter type. The ECU's clock runs in the time
zone it declares (`timezone`, Europe/Berlin by default), whatever the host's zone is, and power
follows the simulated house's PV day profile at that local time of day. Like the real ECU it serves
one client at a time, refreshes its data (power, energy counters, timestamp) every `refresh_s`,
reports inverters offline with zero values at night, and can be told to misbehave (`faults`):
timeout, truncate, garbage, bad_length, wrong_command, maintenance (connection closed without
answer), night, busy (the next connection turned away, as while another client holds the ECU).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from .house_profiles import Sky, load_profile
from .lifecycle import run

FAULTS = ("timeout", "truncate", "garbage", "bad_length", "wrong_command", "maintenance", "night", "busy")
# Per type: the values after the 13-byte record head, in order ("p" panel power, "v" AC voltage).
LAYOUTS: dict[str, str] = {"00": "", "01": "pvpv", "04": "pvpv", "05": "pvpv", "02": "pvpvpvp", "03": "pvppp"}
DEFAULT_IDS = {"ECU-R": "216200123456", "ECU-B": "216300123456", "ECU-C": "215000123456"}
PANELS = {code: layout.count("p") for code, layout in LAYOUTS.items()}


@dataclass
class SimInverter:
    uid: str  # 12 hex digits
    type_code: str
    signal: int = 200  # raw 0-255 as the ECU reports it
    lost: bool = False  # the ECU lost contact with it: a full record with the online flag 0, all zeros


@dataclass
class Stats:
    connections: int = 0
    refused: int = 0  # connections turned away because another client was connected
    queries: dict[str, int] = field(default_factory=dict)
    bad_queries: int = 0
    restarts: int = 0
    restart_forms: list[dict[str, str]] = field(default_factory=list)


def _u16(v: float) -> bytes:
    return max(0, min(0xFFFF, round(v))).to_bytes(2, "big")


def _u32(v: float) -> bytes:
    return max(0, min(0xFFFFFFFF, round(v))).to_bytes(4, "big")


def frame(command: str, body: bytes) -> bytes:
    """APS + version + length (total - 1) + command + body + END\\n."""
    total = 3 + 2 + 4 + 4 + len(body) + 4
    return b"APS11" + f"{total - 1:04d}".encode() + command.encode() + body + b"END\n"


def fleet_from_text(text: str, prefix: str = "4090") -> list[SimInverter]:
    """'01:2,02:1' -> two type-01 and one type-02 inverter with stable UIDs."""
    fleet: list[SimInverter] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, _, count = part.partition(":")
        if code not in LAYOUTS:
            raise ValueError(f"fleet entry {part!r}: unknown inverter type {code!r} (known: {', '.join(LAYOUTS)})")
        for _ in range(int(count or "1")):
            n = len(fleet) + 1
            fleet.append(SimInverter(f"{prefix}{code}{n:06d}", code, signal=150 + (n * 17) % 100))
    return fleet


class EcuSimulator:
    def __init__(self, ecu_id: str | None = None, model: str = "ECU-R", fleet: list[SimInverter] | None = None,
                 *, refresh_s: float = 300.0, panel_peak_w: float = 300.0, profile: str = "clear",
                 timezone: str = "Europe/Berlin", firmware: str = "ECU_R_1.2.22",
                 answer_latency_s: float = 0.0, pv_fraction: float | None = None) -> None:
        self.ecu_id, self.model = ecu_id or DEFAULT_IDS[model], model
        self.layout = "02" if model == "ECU-C" else "01"
        self.fleet = fleet if fleet is not None else fleet_from_text("01:2,02:1,03:1,04:1,05:1")
        self.refresh_s, self.panel_peak_w = refresh_s, panel_peak_w
        self.timezone, self.firmware, self.answer_latency_s = timezone, firmware, answer_latency_s
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"ECU simulator timezone {timezone!r}: not an IANA time zone name") from exc
        # Two interface MACs (6 bytes each), stable per ECU id, locally administered (no vendor's OUI).
        digest = hashlib.sha256(self.ecu_id.encode()).digest()
        self.macs = (bytes([0x02]) + digest[:5], bytes([0x02]) + digest[5:10])
        self.sky = Sky(load_profile(profile))
        self.peak_w = load_profile(profile).pv_peak_w or 1.0
        self.pv_fraction = pv_fraction  # fixed fraction of peak; None = follow the day profile
        self.faults: set[str] = set()
        self.stats = Stats()
        self.lifetime_wh = 1_234_567.0
        self.today_wh = 0.0
        self._busy = False
        self._refreshed = -1e9
        self._last_energy = time.monotonic()
        self._snapshot: tuple[datetime, list[tuple[SimInverter, bool, list[float]]]] | None = None
        self.port: int | None = None
        self.http_port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._http: web.AppRunner | None = None

    # ------------------------------------------------------------------ the model

    def fraction(self, now: datetime) -> float:
        if "night" in self.faults:
            return 0.0
        if self.pv_fraction is not None:
            return self.pv_fraction
        t = now.hour * 3600 + now.minute * 60 + now.second
        return max(0.0, min(1.0, self.sky.pv_w(t) / self.peak_w))

    def snapshot(self) -> tuple[datetime, list[tuple[SimInverter, bool, list[float]]]]:
        """The data of the last refresh; the ECU only collects from its inverters every refresh_s."""
        mono = time.monotonic()
        if self._snapshot is None or mono - self._refreshed >= self.refresh_s:
            # The ECU's clock: local time of the zone it declares, not of the host running the simulator.
            now = datetime.now(self.zone).replace(tzinfo=None, microsecond=0)
            if self._snapshot is not None and now <= self._snapshot[0]:
                now = self._snapshot[0] + timedelta(seconds=1)  # every refresh gets a new stamp
            frac = self.fraction(now)
            rows = []
            for inv in self.fleet:
                online = frac > 0 and inv.type_code != "00" and not inv.lost
                seed = hashlib.sha256(inv.uid.encode()).digest()
                powers = [round(frac * self.panel_peak_w * (0.85 + seed[i] / 1700)) if online else 0.0
                          for i in range(PANELS[inv.type_code])]
                rows.append((inv, online, powers))
            self._account_energy(mono)
            self._snapshot, self._refreshed = (now, rows), mono
        return self._snapshot

    def power_w(self) -> float:
        return float(sum(sum(p) for _, _, p in self.snapshot()[1]))

    def _account_energy(self, mono: float) -> None:
        """Add the energy of the interval that ends with this refresh, at the power it had: like the
        real ECU, the counters only change when it collects from its inverters."""
        if self._snapshot is not None:
            wh = sum(sum(p) for _, _, p in self._snapshot[1]) * (mono - self._last_energy) / 3600
            self.lifetime_wh += wh
            self.today_wh += wh
        self._last_energy = mono

    # ------------------------------------------------------------------ answers

    def info_answer(self) -> bytes:
        rows = self.snapshot()[1]
        online = sum(1 for _, on, _ in rows if on)
        head = (self.ecu_id.encode() + self.layout.encode() + _u32(self.lifetime_wh / 100)
                + _u32(self.power_w()) + _u32(self.today_wh / 10))
        fw = f"{len(self.firmware):03d}".encode() + self.firmware.encode()
        if self.layout == "01":
            tz = f"{len(self.timezone):03d}".encode() + self.timezone.encode()
            body = head + b"\x00" * 7 + _u16(len(rows)) + _u16(online) + b"00" + fw + tz + b"".join(self.macs)
        else:
            body = head + _u16(len(rows)) + _u16(online) + b"\x00" * 6 + fw
        return frame("0001", body)

    def realtime_answer(self) -> bytes:
        stamp, rows = self.snapshot()
        body = b"0001" + _u16(len(rows)) + bytes.fromhex(stamp.strftime("%Y%m%d%H%M%S"))
        for inv, online, powers in rows:
            body += bytes.fromhex(inv.uid) + bytes([1 if online else 0]) + inv.type_code.encode()
            if inv.type_code == "00":
                continue
            seed = hashlib.sha256(inv.uid.encode()).digest()
            body += _u16(500 + seed[0] % 3 if online else 0) + _u16(100 + (25 + seed[1] % 20 if online else 0))
            volts = iter([229 + seed[2] % 8, 230 + seed[3] % 8, 231 + seed[4] % 8])
            power = iter(powers)
            for kind in LAYOUTS[inv.type_code]:
                body += _u16(next(power) if kind == "p" else (next(volts) if online else 0))
        return frame("0002", body)

    def signal_answer(self) -> bytes:
        return frame("0030", b"00" + b"".join(bytes.fromhex(i.uid) + bytes([i.signal]) for i in self.fleet))

    def answer(self, query: bytes) -> bytes | None:
        """The answer to one query, or None for a query the ECU would ignore."""
        if not (query.startswith(b"APS11") and query.endswith(b"END\n") and len(query) >= 17):
            return None
        command = query[9:13].decode("ascii", "replace")
        self.stats.queries[command] = self.stats.queries.get(command, 0) + 1
        if command == "0001":
            return self.info_answer()
        if query[13:25].decode("ascii", "replace") != self.ecu_id:
            return None
        if command == "0002":
            return self.realtime_answer()
        if command == "0030":
            return self.signal_answer()
        return None

    def misbehave(self, answer: bytes) -> bytes:
        if "garbage" in self.faults:
            return bytes(range(7, 47)) + b"END\n"
        if "bad_length" in self.faults:
            return answer[:5] + f"{len(answer):04d}".encode() + answer[9:]
        if "wrong_command" in self.faults:
            return answer[:9] + (b"0030" if answer[9:13] != b"0030" else b"0002") + answer[13:]
        return answer

    # ------------------------------------------------------------------ network

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._busy or "busy" in self.faults:
            # The real ECU serves one client; others are cut off. `busy` plays that other client
            # once: it turns the next connection away, then clears itself.
            self.faults.discard("busy")
            self.stats.refused += 1
            writer.close()
            return
        self._busy = True
        self.stats.connections += 1
        try:
            while True:
                try:
                    query = await reader.readuntil(b"END\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if "maintenance" in self.faults:
                    return
                answer = self.answer(query)
                if answer is None:
                    self.stats.bad_queries += 1
                    return
                if "timeout" in self.faults:
                    await reader.read()  # say nothing until the client gives up
                    return
                if self.answer_latency_s:
                    await asyncio.sleep(self.answer_latency_s)
                if "truncate" in self.faults:
                    writer.write(answer[: len(answer) // 2])
                    await writer.drain()
                    return
                writer.write(self.misbehave(answer))
                await writer.drain()
        finally:
            self._busy = False
            writer.close()

    async def _restart(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.stats.restarts += 1
        self.stats.restart_forms.append({k: str(v) for k, v in form.items()})
        self.faults.clear()  # a restart is what cures a stuck ECU
        return web.json_response({"value": 0})

    async def start(self, port: int = 0, http_port: int | None = None, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._client, host, port)
        if http_port is not None:
            app = web.Application()
            app.router.add_post("/index.php/management/set_wlan_ap", self._restart)
            self._http = web.AppRunner(app)
            await self._http.setup()
            await web.TCPSite(self._http, host, http_port).start()
            self.http_port = http_port
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.cleanup()


async def _serve(args: argparse.Namespace) -> None:
    sim = EcuSimulator(args.ecu_id, args.model, args.inverters, refresh_s=args.refresh_s,
                       profile=args.profile, answer_latency_s=args.latency_s, pv_fraction=args.pv_fraction,
                       timezone=args.timezone)
    sim.faults.update(args.fault)
    port = await sim.start(args.port, args.http_port, host=args.host)
    print(f"ECU simulator {args.model} {sim.ecu_id} ({len(sim.fleet)} inverters) on {args.host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until cancelled by a stop signal
    finally:
        await sim.stop()


def _zone_name(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IANA time zone name (e.g. Europe/Berlin)") from exc
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim ecu", description="APsystems ECU simulator (TCP 8899)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (any 127.x.y.z works on Linux)")
    parser.add_argument("--port", type=int, default=18899)
    parser.add_argument("--http-port", type=int, default=None, help="serve the restart URL here")
    parser.add_argument("--ecu-id", default=None, help="12 digits (default by model: 2162..., 2163..., 215...)")
    parser.add_argument("--model", choices=["ECU-R", "ECU-B", "ECU-C"], default="ECU-R")
    parser.add_argument("--fleet", default="01:2,02:1,03:1,04:1,05:1", help="type:count,... (00 01 02 03 04 05)")
    parser.add_argument("--refresh-s", type=float, default=300.0)
    parser.add_argument("--profile", default="clear", help="house day profile driving the PV")
    parser.add_argument("--pv-fraction", type=float, default=None, help="fixed share of peak instead of the profile")
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--timezone", type=_zone_name, default="Europe/Berlin",
                        help="the zone the ECU declares and keeps its clock in (IANA name)")
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS)
    parser.add_argument("--lost", action="append", default=[], metavar="UID",
                        help="an inverter the ECU has lost contact with (reported offline)")
    args: Any = parser.parse_args(argv)
    try:
        args.inverters = fleet_from_text(args.fleet)
    except ValueError as exc:
        parser.error(f"--fleet: {exc}")
    for uid in args.lost:
        found = next((inv for inv in args.inverters if inv.uid == uid), None)
        if found is None:
            parser.error(f"--lost {uid}: no such inverter in the fleet "
                         f"({', '.join(inv.uid for inv in args.inverters)})")
        found.lost = True
    run(_serve(args))
    return 0
