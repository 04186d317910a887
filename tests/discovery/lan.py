"""A simulated LAN on loopback: device simulators bound to several 127.x.y.z addresses.

Each test gets its own random 127.<a>.<b>.0/28 block, so other engineers' simulators on 127.0.0.1
(and their mDNS announcements) stay outside the swept networks. Every simulator speaks its real
wire protocol; the "impostors" are servers on the same ports that are not the device they claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from wattbus_sim import giv as giv_sim
from wattbus_sim.ecu import EcuSimulator
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf


def free_port_on(hosts: list[str]) -> int:
    """A port free on every given address (the same port everywhere, like 502 on a real LAN)."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for host in hosts:
                sock = socket.socket()
                socks.append(sock)
                sock.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no common free port")


async def wait_listening(host: str, port: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _r, w = await asyncio.open_connection(host, port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


@dataclass
class Lan:
    tmp: Path
    block: str = field(default_factory=lambda: f"127.{random.randint(100, 250)}.{random.randint(1, 250)}")
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)
    servers: list[asyncio.base_events.Server] = field(default_factory=list)
    ecus: list[EcuSimulator] = field(default_factory=list)
    zc: AsyncZeroconf | None = None
    modbus_port: int = 0
    aps_port: int = 0

    def ip(self, host: int) -> str:
        return f"{self.block}.{host}"

    @property
    def network(self) -> str:
        return f"{self.block}.0/28"

    def __post_init__(self) -> None:
        hosts = [self.ip(h) for h in range(1, 15)]
        self.modbus_port = free_port_on(hosts)
        self.aps_port = free_port_on(hosts)

    # ------------------------------------------------------------------ TCP devices

    async def sunspec(self, host: int, *profiles: str) -> None:
        args = [a for p in profiles for a in ("--profile", p)]
        log = (self.tmp / f"sunspec-{host}.log").open("ab")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "wattbus_sim", "sunspec", "--host", self.ip(host), "--port", str(self.modbus_port),
             "--static", *args], stdout=log, stderr=subprocess.STDOUT))
        await wait_listening(self.ip(host), self.modbus_port)

    async def ecu(self, host: int, model: str = "ECU-R", ecu_id: str | None = None,
                  latency_s: float = 0.0) -> EcuSimulator:
        sim = EcuSimulator(ecu_id, model, pv_fraction=0.5, answer_latency_s=latency_s)
        await sim.start(self.aps_port, host=self.ip(host))
        self.ecus.append(sim)
        return sim

    async def giv(self, host: int) -> tuple[asyncio.Task[None], giv_sim.Dongle]:
        ready = asyncio.Event()
        holder: list[giv_sim.Dongle] = []
        task = asyncio.create_task(giv_sim.serve(self.ip(host), self.aps_port, 1, 180.0, 5.0, True, ready, holder))
        self.tasks.append(task)
        await asyncio.wait_for(ready.wait(), 10)
        return task, holder[0]

    async def tcp(self, host: int, port: int, greeting: bytes | None, answer: bytes | None = None) -> None:
        """A TCP service that is no device we know: silent, greeting, or answering anything."""
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if greeting:
                writer.write(greeting)
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1024):
                    if answer is not None:
                        writer.write(answer if answer else data)
            writer.close()
        self.servers.append(await asyncio.start_server(client, self.ip(host), port))

    # ------------------------------------------------------------------ HTTP + mDNS devices

    async def http(self, host: int, app: web.Application) -> int:
        port = free_port_on([self.ip(host)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, self.ip(host), port).start()
        self.runners.append(runner)
        return port

    async def announce(self, service_type: str, name: str, host: int | str, port: int,
                       properties: dict[str, str] | None = None) -> ServiceInfo:
        """host: a host number in the test's block, or a full address (outside the block)."""
        if self.zc is None:
            self.zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        address = host if isinstance(host, str) else self.ip(host)
        info = ServiceInfo(service_type, f"{name}.{service_type}", addresses=[socket.inet_aton(address)],
                           port=port, properties=properties or {}, server=f"{name}.local.")
        await self.zc.async_register_service(info)
        return info

    async def unannounce(self, info: ServiceInfo) -> None:
        assert self.zc is not None
        await self.zc.async_unregister_service(info)

    async def goe(self, host: int, serial: str) -> int:
        port = await self.http(host, goe_app(GoeFirmware(SimCharger(), serial=serial), "v2"))
        return port

    async def shelly(self, host: int, model: str, mac: str) -> tuple[int, ShellyState]:
        state = ShellyState(model, mac=mac)
        return await self.http(host, shelly_app(state)), state

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        if self.zc is not None:
            await self.zc.async_close()
        for runner in self.runners:
            await runner.cleanup()
        for server in self.servers:
            server.close()
        for sim in self.ecus:
            await sim.stop()
        for task in self.tasks:
            task.cancel()
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
