"""What the deploy tests share: compose.yaml as compose reads it, the example config, secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "wattbus.example.toml"
SERVICE_GID = 10001  # group `wattbus` in the image (Dockerfile); make-passwords.sh gives it the secrets
NOT_BROKER_USERS = ("http-api-token", "influxdb-password", "influxdb-token", "grafana-password")


def compose_services() -> dict[str, dict[str, Any]]:
    """compose.yaml's services, YAML anchors and merge keys resolved as Compose resolves them."""
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services: dict[str, dict[str, Any]] = doc["services"]
    return services


def compose_secret_files() -> dict[str, Path]:
    """Secret name -> the file compose.yaml mounts (relative to the repository)."""
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return {name: ROOT / spec["file"] for name, spec in doc["secrets"].items()}


def wattbus_environments() -> dict[str, dict[str, str]]:
    """Each wattbus service in compose.yaml -> the environment its container gets (as text)."""
    out: dict[str, dict[str, str]] = {}
    for name, service in compose_services().items():
        command = service.get("command") or [""]
        if str(command[0]) == f"wattbus-{name}":
            env = service.get("environment") or {}
            out[name] = {str(k): str(v) for k, v in env.items()}
    return out


def broker_users() -> list[str]:
    lines = (ROOT / "mosquitto" / "users.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


LAN_ADDRESS = re.compile(r"^#\s+(\d+\.\d+\.\d+\.\d+)\s+(.+?)\s{2,}(\[\[[\w.-]+\]\])$", re.M)
DEVICE_LINE = re.compile(r'^(host|url) = "(?:http://)?([\d.]+)"', re.M)


def listed_addresses(text: str) -> dict[str, str]:
    """The example's header list: address -> the table it belongs in."""
    return {m.group(1): m.group(3) for m in LAN_ADDRESS.finditer(text)}


def device_lines(text: str) -> list[str]:
    """Addresses on uncommented `host = "..."` / `url = "http://..."` lines, in file order."""
    return [m.group(2) for m in DEVICE_LINE.finditer(text)]


def prepare_demo(run_dir: Path, port: int) -> str:
    """`make run`'s files in run_dir (`wattbus embedded --prepare-only`: nothing started); its banner."""
    done = subprocess.run([sys.executable, "-m", "wattbus.cli", "embedded", "--root", str(ROOT), "--run-dir",
                           str(run_dir), "--prepare-only"], env={**os.environ, "WATTBUS_EMBEDDED_PORT": str(port)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
