"""Setup figures: the cost of validating and saving the config file with every service's own Struct,
and how long a change takes to reach a running service over the bus (`reload_config`).

Real parts: the demo config built from every services/*/embedded.toml, Mosquitto with the project's
ACL, a real service process (tests.support.echo_service through the real runner).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.settings import ServiceTypes, Settings

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, Mosquitto


def demo_config(path: Path) -> None:
    parts = [(p.read_text()) for p in sorted(ROOT.glob("services/*/embedded.toml"))]
    path.write_text("[bus]\nhost = \"127.0.0.1\"\n\n" + "\n".join(parts).replace("${WATTBUS_RUN}", "/tmp/run"))


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.2f} ms"


def file_figures(path: Path) -> list[tuple[str, str]]:
    start = time.perf_counter()
    types = ServiceTypes()
    problems = Settings(path, types).check()
    first = time.perf_counter() - start  # imports every service's config Struct once
    warm, change = [], []
    for i in range(20):
        t0 = time.perf_counter()
        Settings(path, types).check()
        warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        settings = Settings(path, types)
        settings.set_value("surplus-controller", "loadpoints.0.max_current_a", 10 + i % 6)
        settings.save()
        change.append(time.perf_counter() - t0)
    sections = len(Settings(path, types).sections())
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
            proc.wait(30)
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


def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wattbus.toml"
        demo_config(path)
        rows = file_figures(path) + asyncio.run(reload_figures(Path(tmp)))
    width = max(len(name) for name, _ in rows)
    text = "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
