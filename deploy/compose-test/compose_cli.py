"""`docker compose` as the compose test types it, and what it reads back: container health, the
broker's messages (mosquitto_sub as admin inside the broker's container) and errors in the logs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEALTHY_WITHIN_S = 240
# What no service may log while the test runs (wattbus' ERROR/CRITICAL, Python tracebacks, Go panics,
# Mosquitto's "Error:").
BAD_LOG = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b|Traceback \(most recent call last\)|\bpanic:|\bError: ")


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen instead."""


class Compose:
    """`docker compose ...` in the project directory, printed as it is typed."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "COMPOSE_FILE": f"compose.yaml{os.pathsep}{HERE / 'compose.test.yaml'}"}

    def run(self, *args: str, timeout: float = 300, check: bool = True, quiet: bool = False) -> str:
        if not quiet:
            print(f"    $ docker compose {' '.join(args)}", flush=True)
        try:
            result = subprocess.run(["docker", "compose", *args], cwd=self.work, env=self.env, capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(f"`docker compose {' '.join(args)}` still running after {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise CheckFailed(f"`docker compose {' '.join(args)}` exited {result.returncode}:\n{tail}")
        return result.stdout

    def containers(self, *, all_: bool = False) -> list[dict[str, object]]:
        out = self.run("ps", "--format", "json", *(["--all"] if all_ else []), quiet=True)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def services(self) -> list[str]:
        return self.run("config", "--services", quiet=True).split()

    def subscribe(self, topic: str, seconds: int, until: Callable[[list[str]], bool] | None = None) -> list[str]:
        """`topic TAB payload` lines from mosquitto_sub as admin, run in the broker's container."""
        command = (f'mosquitto_sub -h 127.0.0.1 -u admin -I admin-compose-test- -P "$(cat /run/secrets/admin)" '
                   f"-t '{topic}' -F '%t\t%p' -W {seconds}")
        proc = subprocess.Popen(["docker", "compose", "exec", "-T", "mosquitto", "sh", "-c", command], cwd=self.work,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if until and until(lines):
                proc.terminate()
                break
        _, err = proc.communicate(timeout=seconds + 30)
        if proc.returncode not in (0, 27, -15) and not lines:  # 27: mosquitto_sub's -W timeout
            raise CheckFailed(f"mosquitto_sub as admin exited {proc.returncode}: {err.strip()}")
        return lines


def wait_healthy(dc: Compose, replicas: dict[str, int], timeout: float = HEALTHY_WITHIN_S) -> str:
    """Every service's containers running and healthy; returns how long each took to get there."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    healthy_at: dict[str, float] = {}
    while True:
        rows = dc.containers()
        waiting = []
        for service, count in replicas.items():
            mine = [r for r in rows if r["Service"] == service]
            ok = [r for r in mine if r["State"] == "running" and r.get("Health") in ("healthy", "")]
            if len(ok) >= count:
                healthy_at.setdefault(service, time.monotonic() - start)
            else:
                states = ", ".join(f"{r['State']}/{r.get('Health') or '-'}" for r in mine) or "no container"
                waiting.append(f"{service} ({len(ok)}/{count}: {states})")
        if not waiting:
            slowest = max(healthy_at, key=lambda s: healthy_at[s])
            return f"{len(replicas)} services, slowest {slowest} at {healthy_at[slowest]:.0f} s"
        if time.monotonic() > deadline:
            raise CheckFailed(f"not healthy after {timeout:.0f} s: {'; '.join(waiting)}")
        time.sleep(2)


def error_report(lines: list[str]) -> str:
    """Each distinct error of `docker compose logs` once, with its traceback, and how often it came."""
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?\s*")
    found: dict[str, list[str]] = {}
    count: dict[str, int] = {}
    consumed: set[int] = set()
    for index, line in enumerate(lines):
        if index in consumed or not BAD_LOG.search(line):
            continue
        container, _, text = line.partition("|")
        block = [stamp.sub("", text.strip(), count=1)]
        for later in range(index + 1, min(index + 200, len(lines))):  # its traceback, to the next log line
            other, _, rest = lines[later].partition("|")
            if other != container:
                continue  # another container's line in between
            if stamp.match(rest.strip()) or len(block) >= 40:
                break
            block.append(rest.rstrip())
            consumed.add(later)
        key = container.strip().rsplit("-", 1)[0] + ": " + "\n".join(block)
        count[key] = count.get(key, 0) + 1
        found.setdefault(key, block)
    if not found:
        return ""
    report = [f"{sum(count.values())} errors in the services' logs, {len(found)} distinct:"]
    for key in found:
        report.append(f"({count[key]}x) {key}")
    return "\n".join(report)
