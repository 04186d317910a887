"""Setup figures: the cost of validating and saving the config file with every service's own Struct,
how long a change takes to reach a running service over the bus (`reload_config`), and how long a
bridge takes to read a device added by hand once (`probe_device`).

Real parts: the demo config built from every services/*/embedded.toml, Mosquitto with the project's
ACL, a real service process (tests.support.echo_service through the real runner), the real
goe-shelly-bridge and sunspec-bridge against their simulators on loopback.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.settings import ConfigFile, ServiceTypes

from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import ROOT, Mosquitto, SimulatorProcess


def demo_config(path: Path) -> None:
    parts = [(p.read_text()) for p in sorted(ROOT.glob("services/*/embedded.toml"))]
    path.write_text("[bus]\nhost = \"127.0.0.1\"\n\n" + "\n".join(parts).replace("${WATTBUS_RUN}", "/tmp/run"))


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.2f} ms"


def file_figures(path: Path) -> list[tuple[str, str]]:
    start = time.perf_counter()
    types = ServiceTypes()
    problems = ConfigFile(path, types).check()
    first = time.perf_counter() - start  # imports every service's config Struct once
    warm, change = [], []
    for i in range(20):
        t0 = time.perf_counter()
        ConfigFile(path, types).check()
        warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        settings = ConfigFile(path, types)
        settings.set_value("surplus-controller", "loadpoints.0.max_current_a", 10 + i % 6)
        settings.save()
        change.append(time.perf_counter() - t0)
    sections = len(ConfigFile(path, types).sections())
    return [(f"check {sections} sections, first (imports Structs)", f"{first * 1000:8.2f} ms"),
            (f"check {sections} sections, warm", ms(warm)), ("one key: read, validate, save", ms(change)),
            ("problems in the demo config", str(len(problems)))]


async def reload_figures(tmp: Path) -> list[tuple[str, str]]:
    broker = Mosquitto(tmp / "broker")
    broker.start()
    config = tmp / "echo.toml"
    config.write_text('[sml-reader]\ndevice_serial = "E-0001"\n')
    admin = await started_bus(broker, "test-admin")
    answers: dict[str, float] = {}
    online: list[float] = []

    def answered(msg: Message[m.CommandResult]) -> None:
        answers.setdefault(msg.payload.request_id or "", time.perf_counter())

    admin.subscribe(topics.service_result("sml-reader", "main"), m.CommandResult, answered)

    def availability(msg: Message[bytes]) -> None:
        if msg.payload == b"online":
            online.append(time.perf_counter())

    admin.subscribe(topics.service_availability("sml-reader", "main"), bytes, availability)
    env = {**__import__("os").environ, **broker.env("sml-reader")}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "tests.support.echo_service", "--config", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

    proc = start()
    unchanged, applied = [], []
    try:
        for i in range(5):
            await until(lambda: len(online) > i, 30, "service online")  # noqa: B023
            t0 = time.perf_counter()
            admin.publish(topics.service_command("sml-reader", "main"), m.ReloadConfig(request_id=f"same-{i}"))
            await until(lambda: f"same-{i}" in answers, 30, "answer")  # noqa: B023
            unchanged.append(answers[f"same-{i}"] - t0)
            config.write_text(f'[sml-reader]\ndevice_serial = "E-{i + 2:04d}"\n')
            t0 = time.perf_counter()
            admin.publish(topics.service_command("sml-reader", "main"), m.ReloadConfig(request_id=f"new-{i}"))
            await until(lambda: proc.poll() is not None, 30, "service exit")  # noqa: B023  (the loop carries the bus)
            proc = start()  # what supervisord's autorestart does
            await until(lambda: len(online) > i + 1, 30, "service back online")  # noqa: B023
            applied.append(online[-1] - t0)
    finally:
        proc.terminate()
        proc.wait(10)
        await admin.stop()
        broker.stop()
    return [("reload_config answer, section unchanged", ms(unchanged)),
            ("changed section: command -> service online again", ms(applied))]


async def probe_figures(tmp: Path) -> list[tuple[str, str]]:
    """probe_device round trips (request -> the bridge reads the device once -> answer) for two
    bridges against their simulators, as the setup page's "add by hand" check does."""
    broker = Mosquitto(tmp / "probe-broker")
    broker.start()
    config = tmp / "probe.toml"
    config.write_text("[goe-shelly-bridge]\nadopt = false\n[sunspec-bridge]\nadopt = false\n")
    sims = [SimulatorProcess(tmp / "goe.log", "goe"), SimulatorProcess(tmp / "sunspec.log", "sunspec", "--static")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bridges = [subprocess.Popen([sys.executable, "-m", f"wattbus_{name.replace('-', '_')}", "--config", str(config)],
                                env={**env, **broker.env(name)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for name in ("goe-shelly-bridge", "sunspec-bridge")]
    admin = await started_bus(broker, "test-admin", instance="bench-probe")
    rows = []
    try:
        await subscriptions_active(admin)
        asks: list[tuple[str, dict[str, m.ExtraValue | list[m.ExtraValue]]]] = [
            ("goe-shelly-bridge", {"url": f"http://127.0.0.1:{sims[0].port}"}),
            ("sunspec-bridge", {"host": "127.0.0.1", "port": sims[1].port, "unit_ids": [1]})]
        for name, entry in asks:
            times: list[float] = []
            for _ in range(10):
                t0 = time.perf_counter()
                result = await admin.request(topics.service_command(name, "main"), m.ProbeDevice(entry=entry), 30)
                if result.status == "timeout" and not times:
                    continue  # the bridge was still starting
                assert result.status == "ok", result
                times.append(time.perf_counter() - t0)
            rows.append((f"probe_device round trip, {name} ({len(times)} reads)", ms(times)))
    finally:
        await admin.stop()
        for proc in bridges:
            proc.terminate()
            proc.wait(10)
        for sim in sims:
            sim.stop()
        broker.stop()
    return rows


def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wattbus.toml"
        demo_config(path)
        rows = file_figures(path) + asyncio.run(reload_figures(Path(tmp))) + asyncio.run(probe_figures(Path(tmp)))
    width = max(len(name) for name, _ in rows)
    text = "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
