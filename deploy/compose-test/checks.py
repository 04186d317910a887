"""The compose smoke test's checks, each printed with its result and time; run.sh starts this.

It types what README says (`docker compose up -d` ...) in a fresh copy of the repository (project.py),
with COMPOSE_FILE = compose.yaml + compose.test.yaml, against the engine run.sh started
(DOCKER_HOST). A check that fails stops those that need it; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import replicas
from compose_cli import CheckFailed, Compose, error_report, wait_healthy
from project import SetupError, prepare

PROJECT = "wattbus"  # compose.yaml's name:
READING = "wattbus/v1/device/+/+/reading"
WRITER_STATUS = "wattbus/v1/service/influx-writer/+/status"


def http_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


class Checks:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dc = Compose(args.work)
        self.expected: set[str] = set()
        self.results: list[tuple[str, bool, float, str]] = []
        self.database = f"http://{args.namespace_ip}:8086"

    def check(self, name: str, action: Callable[[], str]) -> bool:
        print(f"[compose-test] {name} ...", flush=True)
        start = time.monotonic()
        try:
            detail, ok = action(), True
        except (CheckFailed, SetupError, subprocess.CalledProcessError, OSError, json.JSONDecodeError) as exc:
            detail, ok = str(exc), False
        took = time.monotonic() - start
        self.results.append((name, ok, took, detail))
        print(f"[compose-test] {'PASS' if ok else 'FAIL'}  {name}  ({took:.1f} s)", flush=True)
        for line in detail.splitlines():
            print(f"    {line}", flush=True)
        return ok

    # ---------------------------------------------------------------- the checks

    def setup(self) -> str:
        self.expected, summary = prepare(self.args.repo, self.args.work)
        self.dc.run("down", "--volumes", "--remove-orphans", quiet=True)  # a killed run's volumes
        return summary

    def build(self) -> str:
        self.dc.run("build", timeout=1800)
        out = subprocess.run(["docker", "image", "inspect", "wattbus:latest", "--format", "{{.Size}}"],
                             capture_output=True, text=True, check=True).stdout
        return f"wattbus:latest, {int(out) / 1e6:.0f} MB"

    def up(self) -> str:
        self.dc.run("up", "-d", timeout=600)
        return f"{len(self.dc.containers(all_=True))} containers created"

    def healthy(self) -> str:
        result = wait_healthy(self.dc, {s: 1 for s in self.dc.services()})
        self.dc.run("ps", quiet=True)
        return result

    def readings_on_broker(self) -> str:
        want = {f"wattbus/v1/device/{d}/reading" for d in self.expected}
        lines = self.dc.subscribe(READING, 60, until=lambda ls: want <= {line.split("\t")[0] for line in ls})
        seen = {line.split("\t")[0] for line in lines}
        missing = sorted(t.split("/")[3] + "/" + t.split("/")[4] for t in want - seen)
        if missing:
            raise CheckFailed(f"no reading within 60 s from {missing}; seen from {sorted(seen)}")
        return f"{len(lines)} readings, every device the config names: {', '.join(sorted(self.expected))}"

    def readings_stored(self) -> str:
        deadline = time.monotonic() + 90
        while True:
            stored = set()
            for device in self.expected:
                source, device_id = device.split("/")
                query = urllib.parse.urlencode({"match[]": f'{{source="{source}",device_id="{device_id}"}}',
                                                "start": f"{time.time() - 3600:.0f}"})
                series = http_json(f"{self.database}/api/v1/series?{query}")
                if isinstance(series, dict) and series.get("data"):
                    stored.add(device)
            if stored == self.expected:
                count = http_json(f"{self.database}/api/v1/series/count")
                series = count.get("data", ["?"])[0] if isinstance(count, dict) else "?"
                return f"every device's readings in the database ({series} series)"
            if time.monotonic() > deadline:
                raise CheckFailed(f"not in the database after 90 s: {sorted(self.expected - stored)}")
            time.sleep(3)

    def writer_id_not_taken(self) -> str:
        """Issue 21: another account (admin, from the broker's own container) connecting with the
        writer's client id, as read from the broker's log, is refused; the writer stays connected."""
        log = self.dc.run("logs", "--no-color", "--no-log-prefix", "mosquitto", quiet=True)
        ids = re.findall(r"New client connected from \S+ as (influx-writer-\S+) \(p\d, c0, k\d+, u'influx-writer'\)",
                         log)
        if not ids:
            raise CheckFailed("no persistent influx-writer session in the broker's log")
        victim, before = ids[-1], len(log.splitlines())
        for flag in ("", "-c "):  # a clean session, then a persistent one
            command = f'mosquitto_sub -h 127.0.0.1 -u admin -P "$(cat /run/secrets/admin)" -i {victim} {flag}-t x -W 5'
            print(f"    $ docker compose exec mosquitto mosquitto_sub -u admin -i {victim} {flag}...", flush=True)
            result = subprocess.run(["docker", "compose", "exec", "-T", "mosquitto", "sh", "-c", command],
                                    cwd=self.dc.work, env=self.dc.env, capture_output=True, text=True, timeout=60)
            if result.returncode == 0 or "not authorised" not in result.stderr:
                raise CheckFailed(f"admin with the writer's id {victim} {flag}was not refused (exit "
                                  f"{result.returncode}): {(result.stdout + result.stderr).strip()[:300]}")
        since = self.dc.run("logs", "--no-color", "--no-log-prefix", "mosquitto", quiet=True).splitlines()[before:]
        logged = [line for line in since if f"refused client id '{victim}' for user 'admin'" in line]
        kicked = [line for line in since if f"Client {victim} " in line]  # "already connected", "disconnected"
        if len(logged) != 2 or kicked:
            raise CheckFailed(f"refusals logged {len(logged)} times (expected 2); the writer's session: {kicked}")
        return f"admin refused the id {victim} (clean and persistent session), logged once each; writer kept it"

    def web_ui_and_setup_save(self) -> str:
        """The UI's files come from the installed package; the setup page saves into ./config (README's
        chgrp step) as the containers' user, and the bridge is told to reload."""
        api = f"http://{self.args.namespace_ip}:8008"
        with urllib.request.urlopen(f"{api}/ui/", timeout=10) as resp:
            page = resp.read().decode()
        if "<html" not in page.lower():
            raise CheckFailed(f"GET /ui/ answered no HTML page: {page[:200]!r}")
        token = (self.args.work / "secrets" / "http-api-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        section = "giv-bridge"
        with urllib.request.urlopen(urllib.request.Request(f"{api}/api/v1/setup/sections/{section}", headers=auth),
                                    timeout=10) as resp:
            values = json.load(resp).get("values")
        if not isinstance(values, dict):
            raise CheckFailed(f"GET /api/v1/setup/sections/{section} has no values: {values!r}")
        values["poll_interval_s"] = float(values.get("poll_interval_s", 10)) + 1
        put = urllib.request.Request(f"{api}/api/v1/setup/sections/{section}", data=json.dumps(values).encode(),
                                     headers=auth, method="PUT")
        try:
            with urllib.request.urlopen(put, timeout=30) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise CheckFailed(f"PUT {section} answered {exc.code}: {exc.read().decode()[:300]}") from exc
        saved = tomllib.loads((self.args.work / "config" / "wattbus.toml").read_text())[section]
        if saved.get("poll_interval_s") != values["poll_interval_s"]:
            raise CheckFailed(f"config/wattbus.toml [{section}] not saved: {saved} (answer {answer})")
        return (f"GET /ui/ {len(page)} bytes; [{section}] poll_interval_s = {values['poll_interval_s']:g} saved to "
                f"config/wattbus.toml, applied: {answer.get('applied')}")

    def scale(self) -> str:
        self.dc.run("up", "-d", "--scale", "influx-writer=3", timeout=600)
        replicas = {s: 1 for s in self.dc.services()} | {"influx-writer": 3}
        wait_healthy(self.dc, replicas)
        writers = {str(r["ID"])[:12] for r in self.dc.containers() if r["Service"] == "influx-writer"}
        received: dict[str, list[int]] = {w: [] for w in writers}
        for line in self.dc.subscribe(WRITER_STATUS, 16):
            topic, payload = line.split("\t", 1)
            instance = topic.split("/")[4]
            if instance in received:
                received[instance].append(int(json.loads(payload).get("counters", {}).get("received", 0)))
        idle = sorted(w for w, counts in received.items() if len(counts) < 2 or counts[-1] <= counts[0])
        if idle:
            raise CheckFailed(f"writers that received nothing in 16 s: {idle} ({received})")
        return "3 writers, each receiving: " + ", ".join(f"{w} +{c[-1] - c[0]}" for w, c in sorted(received.items()))

    def restart(self) -> str:
        service = "goe-shelly-bridge"
        (row,) = [r for r in self.dc.containers() if r["Service"] == service]
        cid = str(row["ID"])
        info = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout)
        before, pid = info[0]["RestartCount"], info[0]["State"]["Pid"]
        # A crash: the service's process dies by SIGKILL (as the kernel's OOM killer does). `docker kill`
        # would not do: the engine counts it as a deliberate stop and no restart policy applies to that.
        os.kill(pid, 9)
        print(f"    $ kill -KILL {pid}   # {service}'s process, from the host", flush=True)
        deadline = time.monotonic() + 60
        while True:
            state = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True,
                                              check=True).stdout)[0]
            if state["RestartCount"] > before and state["State"]["Running"]:
                break
            if time.monotonic() > deadline:
                raise CheckFailed(f"{service} not restarted 60 s after its process was killed: {state['State']}")
            time.sleep(1)
        result = wait_healthy(self.dc, {s: 1 for s in self.dc.services()} | {"influx-writer": 3})
        return f"{service} restarted by its restart policy (restarts {before} -> {state['RestartCount']}); {result}"

    def scaled_bridge(self) -> str:
        others = {s: 1 for s in self.dc.services()} | {"influx-writer": 3}
        return replicas.check(self.dc, self.args.work, self.expected, others,
                              lambda want: wait_healthy(self.dc, want), CheckFailed)

    def stop(self) -> str:
        start = time.monotonic()
        self.dc.run("stop", timeout=300)
        took = time.monotonic() - start
        rows = self.dc.containers(all_=True)
        # SIGTERM's own exit code (143) is clean for the simulators, which install no handler for it
        unclean = [f"{r['Name']} exit {r['ExitCode']}" for r in rows if r["State"] != "exited"
                   or r["ExitCode"] not in ((0, 143) if str(r["Service"]).startswith("sim-") else (0,))]
        logs = self.dc.run("logs", "--no-color", "--no-log-prefix", quiet=True, timeout=120)
        closed = [line for line in logs.splitlines() if "writer closed" in line]
        if unclean:
            raise CheckFailed(f"stopped in {took:.0f} s, not cleanly: {unclean}")
        return f"{len(rows)} containers stopped in {took:.0f} s, every exit code 0; " + \
            f"{len(closed)} writers closed their spool"

    def logs_clean(self) -> str:
        logs = self.dc.run("logs", "--no-color", quiet=True, timeout=120)
        lines = logs.splitlines()
        findings = error_report(lines)
        if findings:
            raise CheckFailed(findings)
        return f"{len(lines)} log lines, none an error or a traceback"

    def down(self) -> str:
        self.dc.run("down", "--volumes", timeout=300)
        label = f"label=com.docker.compose.project={PROJECT}"
        left = {kind: subprocess.run(["docker", kind, "ls", "-q", "--filter", label], capture_output=True, text=True,
                                     check=True).stdout.split() for kind in ("container", "network", "volume")}
        left = {k: v for k, v in left.items() if v}
        if left:
            raise CheckFailed(f"left behind after down: {left}")
        return "no container, network or volume of the project left"

    def diagnose(self) -> None:
        """What the containers did, before the failed run's `down` removes them."""
        print(self.dc.run("ps", "--all", check=False, quiet=True), flush=True)
        for row in self.dc.containers(all_=True):
            if row["State"] != "running" or row.get("Health") not in ("healthy", ""):
                print(f"--- {row['Name']} ({row['State']}/{row.get('Health') or '-'}), its last log lines:")
                print(self.dc.run("logs", "--no-color", "--tail", "20", str(row["Service"]), check=False, quiet=True))

    def run(self) -> int:
        plan: list[tuple[str, Callable[[], str], bool]] = [
            ("set-up as README says", self.setup, True),
            ("docker compose build", self.build, True),
            ("docker compose up -d", self.up, True),
            ("every service healthy", self.healthy, True),
            ("readings on the broker", self.readings_on_broker, False),
            ("readings stored in the database", self.readings_stored, False),
            ("a second account cannot take the writer's client id", self.writer_id_not_taken, False),
            ("web UI served, setup page saves the config", self.web_ui_and_setup_save, False),
            ("--scale influx-writer=3: every writer consumes", self.scale, False),
            ("a killed service restarts", self.restart, False),
            (f"--scale {replicas.BRIDGE}=2: devices shared, taken over", self.scaled_bridge, False),
            ("docker compose stop: clean", self.stop, False),
            ("no errors in the services' logs", self.logs_clean, False),
            ("docker compose down", self.down, False),
        ]
        not_run = []
        for index, (name, action, needed) in enumerate(plan):
            if not self.check(name, action) and self.args.keep:
                not_run = [n for n, _, _ in plan[index + 1:]]
                break
            if not self.results[-1][1] and needed:
                not_run = [n for n, _, _ in plan[index + 1:]]
                self.diagnose()
                self.dc.run("down", "--volumes", "--remove-orphans", check=False, quiet=True)
                break
        # the wattbus image of an earlier run, and build cache beyond 1 GB: the cache stays bounded
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)
        subprocess.run(["docker", "builder", "prune", "-f", "--keep-storage", "1gb"], capture_output=True, check=False)
        passed = sum(ok for _, ok, _, _ in self.results)
        failed = len(self.results) - passed + len(not_run)
        print("\n[compose-test] summary")
        for name, ok, took, _ in self.results:
            print(f"  {'PASS' if ok else 'FAIL'}  {took:6.1f} s  {name}")
        for name in not_run:
            print(f"  FAIL       -    {name} (not run: an earlier step failed)")
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="the project copy (replaced)")
    parser.add_argument("--namespace-ip", required=True, help="where the engine publishes ports")
    parser.add_argument("--keep", action="store_true", help="stop at the first failure, leave the project up")
    return Checks(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
