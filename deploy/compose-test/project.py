"""The compose test's project directory: a copy of the repository set up by README's steps.

The copy stands in for a fresh clone (tracked and new files, nothing git ignores: no secrets, no
config/wattbus.toml, no .venv), so the test never touches the developer's own secrets or config.
Then, as README says: `mosquitto/make-passwords.sh`, `cp config/wattbus.example.toml
config/wattbus.toml`, each device's address edited (here: to the simulated house of
compose.test.yaml) and the config directory given to the containers' group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Table

# Each device address of config/wattbus.example.toml -> the simulator of compose.test.yaml that
# plays it. An address missing here fails the test: every device of the example must be simulated.
SIMULATED = {
    "192.168.1.20:502": "sim-house:15512",     # PV inverter, SunSpec over Modbus TCP
    "192.168.1.21:80": "sim-house:18091",      # Shelly Pro 3EM grid meter
    "192.168.1.22:8899": "sim-house:18897",    # GivEnergy dongle, with the home battery
    "192.168.1.23:80": "sim-house:18090",      # go-e charger
    "192.168.1.24:80": "sim-house:18092",      # Shelly Plus 1PM, water heater
    "192.168.1.25:80": "sim-pool-pump:18081",  # Shelly 1PM, pool pump
}
SERVICE_GID = 10001  # the image's group (Dockerfile); README: chgrp 10001 config


class SetupError(Exception):
    """A step of the project's set-up failed; the message names the step and what it printed."""


def copy_repository(repo: Path, work: Path) -> int:
    """Copy what a clone would hold, plus files not committed yet (but never ignored ones)."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode()
    if work.exists():
        shutil.rmtree(work)
    count = 0
    for name in filter(None, listed.split("\0")):
        source = repo / name
        if not source.is_file():  # deleted in the working tree, not yet in git
            continue
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        count += 1
    return count


def make_secrets(work: Path) -> str:
    script = work / "mosquitto" / "make-passwords.sh"
    result = subprocess.run([str(script)], cwd=work, capture_output=True, text=True, timeout=120,
                            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
    if result.returncode != 0:
        raise SetupError(f"{script.relative_to(work)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _endpoint(table: Table | Container, where: str) -> tuple[str, str] | None:
    """("host:port" as written, the key that holds it) for a device table, None for other tables."""
    if isinstance(table.get("url"), str):
        url = urlsplit(str(table["url"]))
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.hostname}:{port}", "url"
    if isinstance(table.get("host"), str):
        if "port" not in table:
            raise SetupError(f"{where}: host {table['host']!r} without a port; the test maps host:port pairs")
        return f"{table['host']}:{table['port']}", "host"
    return None


def _rewrite(node: Table | Container, where: str, seen: set[str]) -> None:
    found = _endpoint(node, where)
    if found:
        address, key = found
        if address not in SIMULATED:
            raise SetupError(f"config/wattbus.example.toml {where}: device {address} has no simulator; add one to "
                             "deploy/compose-test/compose.test.yaml and SIMULATED in deploy/compose-test/project.py")
        host, port = SIMULATED[address].split(":")
        seen.add(address)
        if key == "url":
            node["url"] = f"http://{host}:{port}"
        else:
            node["host"] = host
            node["port"] = int(port)
    for name, value in node.items():
        if isinstance(value, Table):
            _rewrite(value, f"{where}.{name}" if where else f"[{name}]", seen)
        elif isinstance(value, AoT):
            for index, item in enumerate(value):
                _rewrite(item, f"{where}.{name}[{index}]", seen)


def write_config(work: Path) -> dict[str, Any]:
    """config/wattbus.toml from the example, each device's address the simulator's. Returns it parsed."""
    example = work / "config" / "wattbus.example.toml"
    if not example.exists():
        raise SetupError(f"{example.relative_to(work)} is missing: README's `cp` step has nothing to copy")
    doc = tomlkit.parse(example.read_text())
    seen: set[str] = set()
    _rewrite(doc, "", seen)
    unused = sorted(set(SIMULATED) - seen)
    if unused:
        raise SetupError(f"SIMULATED maps {unused}, which config/wattbus.example.toml no longer has: update "
                         "deploy/compose-test/project.py")
    config = work / "config" / "wattbus.toml"
    config.write_text(tomlkit.dumps(doc))
    # README: `sudo chgrp 10001 config && sudo chmod g+w config`: the setup page saves the file by
    # rename into this directory, as the containers' group
    os.chown(work / "config", -1, SERVICE_GID)
    (work / "config").chmod((work / "config").stat().st_mode | 0o020)
    return doc.unwrap()


def expected_devices(config: dict[str, Any]) -> set[str]:
    """Every device ("<bridge>/<device id>") the config names: each must publish readings."""
    names: set[str] = set()
    # [site], and the old places an older copy of the example may still use
    for site in (config.get("site", {}), config.get("http-api", {}).get("site", {})):
        for key in ("grid", "pv", "battery", "chargers"):
            value = site.get(key, [])
            names.update([value] if isinstance(value, str) else value)
    controller = config.get("surplus-controller", {})
    names.update(str(controller[k]) for k in ("grid_meter", "battery") if controller.get(k))
    for table in (config.get("site", {}), controller):
        names.update(str(lp["charger"]) for lp in table.get("loadpoints", []))
        names.update(str(relay["device"]) for relay in table.get("relays", []))
    return {n for n in names if n}


def prepare(repo: Path, work: Path) -> tuple[set[str], str]:
    """Set the project up; returns the devices expected on the bus and a summary of the steps."""
    files = copy_repository(repo, work)
    secrets_text = make_secrets(work)
    config = write_config(work)
    summary = (f"{files} files copied to {work}\n$ mosquitto/make-passwords.sh\n{secrets_text.rstrip()}\n"
               f"$ cp config/wattbus.example.toml config/wattbus.toml  (addresses -> {', '.join(SIMULATED.values())})\n"
               f"$ chgrp {SERVICE_GID} config && chmod g+w config")
    return expected_devices(config), summary
