"""Footprint of the whole embedded stack: RSS and CPU per program, against the Raspberry Pi budget.

The stack is the real `wattbus embedded` (supervisord, Mosquitto, every service, the simulators)
on a free broker port. Five scenarios, one stack start each:

  idle         every service running, no devices configured, simulators stopped
  typical house 1 Hz   the issue's house: an inverter, a meter, a battery, a charger, two relays
               and an ECU with 8 inverters, polled at 1 s (the ECU refreshes every 5 min: 30 s here)
  demo house 1 Hz   the whole demo (4 SunSpec units, 2 SDM630s, ECU, GivEnergy hybrid with 2
               batteries, 2 go-e chargers, 4 Shellys, the SML meter, the simulated house) at 1 s
  run-many     the typical and the demo house in the Raspberry Pi profile (WATTBUS_EMBEDDED_PROFILE=
               one-process: every service in one `wattbus run-many` program under supervisord)

Services run as `make run` (process per service) and `make run-pi` (one process) start them.

RSS counts each process with its children; PSS (shared pages split between processes) is what the
programs really cost together. The Raspberry Pi budget (300 MB RSS, 10 % of one core, services +
broker) is the one-process profile's: small devices run that. Process-per-service mode is
reported, not capped. Simulators and the embedded InfluxDB are listed apart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent
FIGURES = ROOT / "bench" / "figures"
BUDGET_RSS_MB = 300.0
BUDGET_CPU_PCT = 10.0
DATABASES = {"influxdb"}
BROKER = "mosquitto"
TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_S = float(os.environ.get("WATTBUS_BENCH_SETTLE_S", "20"))
MEASURE_S = float(os.environ.get("WATTBUS_BENCH_MEASURE_S", "30"))
RUN_MANY = "run-many"
ONE_PROCESS_ENV = {"WATTBUS_EMBEDDED_PROFILE": "one-process"}

# No devices: the floor every service pays (interpreter, imports, bus client, heartbeat).
IDLE_ENV = {"WATTBUS_SUNSPEC_BRIDGE_DEVICES": "[]", "WATTBUS_SML_READER_METERS": "[]",
            "WATTBUS_ECU_BRIDGE_ECUS": "[]", "WATTBUS_GIV_BRIDGE_INVERTERS": "[]",
            "WATTBUS_GOE_SHELLY_BRIDGE_DEVICES": "[]", "WATTBUS_SURPLUS_CONTROLLER_LOADPOINTS": "[]",
            "WATTBUS_SURPLUS_CONTROLLER_RELAYS": "[]"}
# Devices polled at 1 Hz (an ECU refreshes every 5 min: its demo poll stays at 30 s).
HOUSE_ENV = {"WATTBUS_SUNSPEC_BRIDGE_POLL_INTERVAL_S": "1", "WATTBUS_GOE_SHELLY_BRIDGE_POLL_INTERVAL_S": "1",
             "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S": "1"}
# The typical house, from the demo's devices: one PV inverter (the simulated house's SunSpec
# inverter), one grid meter (its Shelly Pro 3EM), a battery (GivEnergy hybrid), the charger (its
# go-e), two relays (its heater's Plus 1PM and the demo 1PM) and the ECU with 8 inverters; the SML
# meter, the SDM630s and the second go-e/Pro 3EM/SunSpec host are left out.


def _toml_list(tables: list[dict[str, object]]) -> str:
    """A WATTBUS_* value is TOML: a list of inline tables."""
    return "[" + ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) + "}"
                           for t in tables) + "]"


TYPICAL_ENV = {**HOUSE_ENV,
               "WATTBUS_SUNSPEC_BRIDGE_DEVICES": _toml_list([{"host": "127.0.0.1", "port": 15512, "unit_ids": [1]}]),
               "WATTBUS_SML_READER_METERS": "[]",
               "WATTBUS_GOE_SHELLY_BRIDGE_DEVICES": _toml_list([
                   {"url": "http://127.0.0.1:18090", "max_current_a": 16, "min_switch_interval_s": 60,
                    "min_phase_switch_interval_s": 240},
                   {"url": "http://127.0.0.1:18091", "password": "wattbus-demo"},
                   {"url": "http://127.0.0.1:18092", "min_switch_interval_s": 30},
                   {"url": "http://127.0.0.1:18081", "min_switch_interval_s": 30}]),
               # only these devices: the demo's other simulators are stopped, and nothing adopted
               "WATTBUS_SUNSPEC_BRIDGE_ADOPT": "false", "WATTBUS_GOE_SHELLY_BRIDGE_ADOPT": "false"}
TYPICAL_STOPPED = ("sim-sunspec", "sim-sdm630-tcp", "sim-sdm630-rtu", "sim-sml", "sim-goe", "sim-shelly-pro3em")


def service_programs() -> list[str]:
    names = []
    for conf in sorted(ROOT.glob("services/*/supervisor.conf")):
        names += re.findall(r"^\[program:([^\]]+)\]", conf.read_text(), re.M)
    return [n for n in names if n not in DATABASES]


def role(name: str, services: list[str]) -> str:
    if name == BROKER:
        return "broker"
    if name in services or name == RUN_MANY:
        return "service"
    return "database" if name in DATABASES else "simulator"


# --------------------------------------------------------------------------- /proc

def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


def tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += kids.get(p, [])
    return seen


def _kb(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass  # gone: it counts as nothing
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


@dataclass
class Usage:
    name: str
    role: str
    rss_mb: float = 0.0
    pss_mb: float = 0.0
    cpu_pct: float = 0.0  # of one core


@dataclass
class Scenario:
    name: str
    programs: list[Usage] = field(default_factory=list)
    online: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def total(self, roles: tuple[str, ...], key: str) -> float:
        return float(sum(getattr(u, key) for u in self.programs if u.role in roles))


def measure(pids: dict[str, int], services: list[str], seconds: float) -> list[Usage]:
    kids = children_map()
    trees = {name: tree(pid, kids) for name, pid in pids.items()}
    start = {name: sum(cpu_ticks(p) for p in procs) for name, procs in trees.items()}
    began = time.monotonic()
    peak: dict[str, tuple[float, float]] = {}
    while time.monotonic() - began < seconds:
        for name, procs in trees.items():
            rss = sum(_kb(Path(f"/proc/{p}/status"), "VmRSS:") for p in procs) / 1024
            pss = sum(_kb(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in procs) / 1024
            old = peak.get(name, (0.0, 0.0))
            peak[name] = (max(old[0], rss), max(old[1], pss))
        time.sleep(2)
    elapsed = time.monotonic() - began
    usage = []
    for name, procs in trees.items():
        ticks = sum(cpu_ticks(p) for p in procs) - start[name]
        rss, pss = peak[name]
        usage.append(Usage(name, role(name, services), round(rss, 1), round(pss, 1),
                           round(100 * ticks / TICKS / elapsed, 2)))
    return sorted(usage, key=lambda u: (u.role, -u.rss_mb))


# --------------------------------------------------------------------------- the stack

class Stack:
    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        from tests.support.servers import free_port

        self.run_dir = run_dir
        self.env = {**os.environ, **env, "WATTBUS_EMBEDDED_PORT": str(free_port())}
        self.log = (run_dir / "embedded.out").open("ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "wattbus"), "embedded", "--root", str(ROOT), "--run-dir",
                                      str(run_dir)], env=self.env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.failed: list[str] = []

    def ctl(self, *args: str) -> str:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=120).stdout

    def status(self) -> dict[str, tuple[str, int]]:
        out = {}
        for line in self.ctl("status").splitlines():
            match = re.match(r"(\S+)\s+(\S+)\s*(?:pid (\d+))?", line)
            if match:
                out[match.group(1).split(":")[-1]] = (match.group(2), int(match.group(3) or 0))
        return out

    def wait_running(self, timeout: float = 120) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.status() if (self.run_dir / "supervisor.sock").exists() else {}
            # FATAL: supervisord gave up (a fixed demo port taken by another stack on this machine);
            # the report names it instead of waiting forever.
            if states and all(s in ("RUNNING", "FATAL") for s, _ in states.values()):
                self.failed = sorted(name for name, (s, _) in states.items() if s == "FATAL")
                return {name: pid for name, (s, pid) in states.items() if s == "RUNNING"}
            time.sleep(1)
        raise TimeoutError(f"stack not all RUNNING after {timeout} s: {self.status()}")

    def services_online(self) -> list[str]:
        """Services whose retained availability says online (proof they run, whichever process)."""
        out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", self.broker_port(), "-u", "admin", "-P",
                              (self.run_dir / "secrets" / "admin").read_text().strip(), "-I", "admin-", "-v", "-W", "3",
                              "-t", "wattbus/v1/service/+/+/availability"], capture_output=True, text=True)
        return sorted(line.split("/")[3] for line in out.stdout.splitlines() if line.endswith(" online"))

    def broker_port(self) -> str:
        match = re.search(r"^listener (\d+)", (self.run_dir / "mosquitto" / "mosquitto.conf").read_text(), re.M)
        return match.group(1) if match else "1883"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def scenario(name: str, env: dict[str, str], services: list[str], tmp: Path, *,
             stop_sims: bool | tuple[str, ...] = False) -> Scenario:
    """stop_sims: True stops every simulator, a tuple those named (devices the house does not have)."""
    run_dir = tmp / name.replace(" ", "-")
    run_dir.mkdir()
    stack = Stack(run_dir, env)
    try:
        pids = stack.wait_running()
        if stop_sims:
            sims = [n for n in pids if role(n, services) == "simulator" and (stop_sims is True or n in stop_sims)]
            stack.ctl("stop", *sims)
            pids = {n: p for n, p in pids.items() if n not in sims}
        time.sleep(SETTLE_S)
        usage = measure(pids, services, MEASURE_S)
        return Scenario(name, usage, stack.services_online(), stack.failed)
    finally:
        stack.stop()


def import_costs(services: list[str]) -> list[tuple[str, float, float]]:
    """Per service: import time of its __main__ and the interpreter's RSS right after (MB).

    VmRSS of the child itself: ru_maxrss survives fork + exec on Linux, so it reported this
    benchmark's own peak (159 MB for every service) instead of the fresh interpreter's."""
    rows = []
    for name in services:
        module = "wattbus_" + name.replace("-", "_")
        code = (f"import time;t=time.perf_counter();import {module}.__main__;d=time.perf_counter()-t;"
                "print(d, next(int(v.split()[1]) for v in open('/proc/self/status') if v.startswith('VmRSS:'))/1024)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        if out.returncode == 0:
            seconds, rss = out.stdout.split()
            rows.append((name, float(seconds), float(rss)))
    return rows


def report(scenarios: list[Scenario], imports: list[tuple[str, float, float]]) -> str:
    lines = ["| scenario | services online | services + broker RSS | PSS | CPU (% of one core) | Pi budget | "
             "simulators RSS | simulators CPU | database RSS |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for s in scenarios:
        rss, pss = s.total(("service", "broker"), "rss_mb"), s.total(("service", "broker"), "pss_mb")
        cpu = s.total(("service", "broker"), "cpu_pct")
        if s.name.endswith(RUN_MANY):
            verdict = "within" if rss <= BUDGET_RSS_MB and cpu <= BUDGET_CPU_PCT else "OVER"
            verdict += f" ({BUDGET_RSS_MB:.0f} MB, {BUDGET_CPU_PCT:.0f} %)"
        else:
            verdict = "reported, not capped"
        lines.append(f"| {s.name} | {len(s.online)} | {rss:.0f} MB | {pss:.0f} MB | {cpu:.1f} % | {verdict} "
                     f"| {s.total(('simulator',), 'rss_mb'):.0f} MB | "
                     f"{s.total(('simulator',), 'cpu_pct'):.1f} % | {s.total(('database',), 'rss_mb'):.0f} MB |")
    for s in scenarios:
        if s.failed:
            lines.append(f"\n{s.name}: not running (supervisord FATAL): {', '.join(s.failed)}")
    lines += ["", "Per program (RSS peak / PSS peak / CPU over the interval):", "",
              "| program | role | " + " | ".join(s.name for s in scenarios) + " |",
              "|---|---|" + "---:|" * len(scenarios)]
    names = sorted({u.name for s in scenarios for u in s.programs},
                   key=lambda n: (next(u.role for s in scenarios for u in s.programs if u.name == n), n))
    for n in names:
        cells = []
        for s in scenarios:
            u = next((u for u in s.programs if u.name == n), None)
            cells.append(f"{u.rss_mb:.0f} / {u.pss_mb:.0f} MB, {u.cpu_pct:.1f} %" if u else "-")
        who = next(u.role for s in scenarios for u in s.programs if u.name == n)
        lines.append(f"| {n} | {who} | " + " | ".join(cells) + " |")
    lines += ["", "Import cost of each service's entry point (fresh interpreter):", "",
              "| service | import time | RSS after import |", "|---|---:|---:|"]
    lines += [f"| {n} | {t * 1000:.0f} ms | {r:.0f} MB |" for n, t, r in imports]
    return "\n".join(lines)


def main() -> str:
    from bench import footprint_bus, footprint_floor  # per-message CPU, per-process RSS floor

    services = service_programs()
    imports = import_costs(services)
    trickle = footprint_bus.main()
    floor = footprint_floor.main()
    with tempfile.TemporaryDirectory(prefix="wattbus-footprint-") as tmpdir:
        tmp = Path(tmpdir)
        scenarios = [scenario("idle", IDLE_ENV, services, tmp, stop_sims=True),
                     scenario("typical house 1 Hz", TYPICAL_ENV, services, tmp, stop_sims=TYPICAL_STOPPED),
                     scenario("typical house 1 Hz, run-many", {**TYPICAL_ENV, **ONE_PROCESS_ENV}, services, tmp,
                              stop_sims=TYPICAL_STOPPED),
                     scenario("demo house 1 Hz", HOUSE_ENV, services, tmp),
                     scenario("demo house 1 Hz, run-many", {**HOUSE_ENV, **ONE_PROCESS_ENV}, services, tmp)]
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "footprint.json").write_text(json.dumps(
        {"budget_rss_mb": BUDGET_RSS_MB, "budget_cpu_pct": BUDGET_CPU_PCT,
         "scenarios": [{"name": s.name, "online": s.online, "failed": s.failed,
                        "programs": [asdict(u) for u in s.programs]}
                       for s in scenarios],
         "imports": imports}, indent=1))
    text = (f"Real `wattbus embedded` stack, settle {SETTLE_S:.0f} s then {MEASURE_S:.0f} s measured; RSS/PSS "
            "are peaks per program (with children), CPU is the mean over the interval.\n\n"
            + report(scenarios, imports) + "\n\nBus cost per message at a service's trickle (bench/footprint_bus.py): "
            + trickle + "\n\nWhat one service process is made of (fresh interpreter, imports in order; "
            "bench/footprint_floor.py):\n\n" + floor)
    print(text)
    return text


if __name__ == "__main__":
    main()
