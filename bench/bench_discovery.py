"""Discovery sweep speed on a /24 whose absent hosts drop packets like a real LAN.

The benchmark re-runs itself in a private network namespace (`unshare -n`, root only): its own
loopback, an nftables rule that silently drops TCP to every address of 127.0.9.0/24 except the
simulated devices, so an absent host costs a full connect timeout as on a LAN (loopback would
refuse at once and measure nothing). Nothing outside the namespace is touched. Simulators (SunSpec
x3 units, a float-model inverter, an SDM630 that is not SunSpec, an ECU-R, a GivEnergy dongle)
listen on ports 502 and 8899 of their own addresses. Figures: a sequential baseline (one
candidate at a time, port 502), the same sweep 64-way, and the default full discovery (128-way,
502 + 8899 with ECU/GivEnergy identification); each must find exactly the simulated set.

Run: .venv/bin/python bench/bench_discovery.py [--quick]   (--quick: sequential over 32 hosts, scaled)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wattbus_discovery.found import Found

ROOT = Path(__file__).resolve().parents[1]
NET = "127.0.9"
SUNSPEC_HOSTS = {10: ["fronius", "sma"], 11: ["float"], 12: ["sdm630"]}
ECU_HOST, GIV_HOST = 20, 21
EXPECTED = {("sunspec", "34119102"), ("sunspec", "18420047"), ("sunspec", "3004512345"), ("sunspec", "FL-000771"),
            ("aps-ecu", "216200123456"), ("givenergy", "SA2345G678")}
CONNECT_TIMEOUT_S = 0.5


def netns_possible() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("unshare")) and bool(shutil.which("nft"))


def main(argv: list[str] | None = None) -> str:
    args = argv or []
    if "--in-netns" not in args and netns_possible():
        proc = subprocess.run(["unshare", "-n", sys.executable, __file__, "--in-netns", *args],
                              capture_output=True, text=True, timeout=900, cwd=ROOT)
        if proc.returncode == 0:
            print(proc.stdout, end="")
            return proc.stdout
        print(f"network namespace run failed ({proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
    text = asyncio.run(measure(in_netns="--in-netns" in args, quick="--quick" in args))
    print(text)
    return text


def setup_netns() -> None:
    alive = ", ".join(f"{NET}.{h}" for h in [*SUNSPEC_HOSTS, ECU_HOST, GIV_HOST])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rules = f"""table inet wattbus_bench {{
  chain out {{
    type filter hook output priority 0; policy accept;
    ip daddr {NET}.0/24 ip daddr != {{ {alive} }} tcp flags syn drop
  }}
}}"""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)


def start_simulators(tmp: Path) -> tuple[list[subprocess.Popen[bytes]], asyncio.AbstractEventLoop]:
    procs = []
    for host, profiles in SUNSPEC_HOSTS.items():
        args = [a for p in profiles for a in ("--profile", p)]
        with (tmp / f"sunspec-{host}.log").open("ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "wattbus_sim", "sunspec", "--host", f"{NET}.{host}",
                                           "--port", "502", "--static", *args], stdout=log, stderr=log))
    loop = asyncio.new_event_loop()  # ECU and dongle in a thread of their own, off the sweep's loop
    ready = threading.Event()
    tasks: list[asyncio.Future[None]] = []

    async def serve() -> None:
        from wattbus_sim import giv
        from wattbus_sim.ecu import EcuSimulator

        await EcuSimulator(None, "ECU-R", pv_fraction=0.5).start(8899, host=f"{NET}.{ECU_HOST}")
        up = asyncio.Event()
        dongle = asyncio.ensure_future(giv.serve(f"{NET}.{GIV_HOST}", 8899, 1, 180.0, 5.0, True, up))
        await up.wait()
        tasks.append(dongle)  # keep a reference: the loop holds tasks only weakly
        ready.set()

    threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True).start()
    ready.wait(20)
    deadline = time.monotonic() + 30
    import socket
    for host in SUNSPEC_HOSTS:
        while True:
            try:
                socket.create_connection((f"{NET}.{host}", 502), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return procs, loop


async def measure(in_netns: bool, quick: bool) -> str:
    import tempfile

    from wattbus.counters import Counters
    from wattbus.log import get_logger, setup_logging
    from wattbus_discovery.config import Config, Scope
    from wattbus_discovery.sweep import Candidate, probe_candidate, sweep

    setup_logging("WARNING")
    if in_netns:
        setup_netns()
    log = get_logger("bench")
    procs, loop = start_simulators(Path(tempfile.mkdtemp(prefix="bench-discovery-")))
    rows: list[tuple[str, str, float, int, str]] = []
    try:
        base = {"networks": [f"{NET}.0/24"], "mdns": False, "connect_timeout_s": CONNECT_TIMEOUT_S,
                "answer_timeout_s": 1.0, "ecu_answer_timeout_s": 1.0}
        only502 = Config(**base, modbus_ports=[502], aps_giv_ports=[])  # type: ignore[arg-type]
        scope = Scope.from_config(only502)
        hosts = list(scope.hosts())
        sample = hosts[:32] if quick else hosts
        counters = Counters()
        started = time.monotonic()
        found_seq = []
        for host in sample:
            found_seq += await probe_candidate(Candidate(host, 502, "sunspec"), only502, counters, log)
        seq_s = (time.monotonic() - started) * (len(hosts) / len(sample))
        label = "sequential, 1 at a time" + (f" (32 hosts, x{len(hosts) / 32:.1f})" if quick else "")
        rows.append((label, "502", seq_s, len(found_seq), "-" if quick else verdict(found_seq, sunspec_only=True)))
        for concurrency, ports8899, name in ((64, [], "64-way"), (128, [8899], "128-way, default config")):
            config = Config(**base, modbus_ports=[502], aps_giv_ports=ports8899,  # type: ignore[arg-type]
                            concurrency=concurrency)
            if ports8899:  # the shipped defaults: ECU answer wait 1.5 s, other answers 1 s
                config = Config(networks=[f"{NET}.0/24"], mdns=False)
            result = await sweep(config, scope, Counters(), log)
            rows.append((name, "502" + (" + 8899" if ports8899 else ""), result.duration_s, len(result.found),
                         verdict(result.found, sunspec_only=not ports8899)))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        loop.call_soon_threadsafe(loop.stop)
    where = ("private netns, nftables drops SYNs to absent hosts" if in_netns
             else "plain loopback (no root/nft: absent hosts REFUSE at once, so these figures flatter the sweep)")
    lines = [f"Sweep of {NET}.0/24 (254 hosts; {where}); connect timeout {CONNECT_TIMEOUT_S} s, rate limit 1000/s.",
             "", "| run | ports | time s | devices | set |", "|---|---|---:|---:|---|"]
    lines += [f"| {name} | {ports} | {secs:.2f} | {n} | {ok} |" for name, ports, secs, n, ok in rows]
    return "\n".join(lines) + "\n"


def verdict(found: list[Found], sunspec_only: bool) -> str:
    got = {(f.protocol, f.serial) for f in found}
    want = {e for e in EXPECTED if e[0] == "sunspec"} if sunspec_only else EXPECTED
    return "exact" if got == want else f"MISMATCH missing {sorted(want - got)} extra {sorted(got - want)}"


if __name__ == "__main__":
    main(sys.argv[1:])
