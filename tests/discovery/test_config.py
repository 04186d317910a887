"""Config safety: only private networks, bounded size, clear messages naming key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from wattbus.config import ConfigError, load
from wattbus_discovery.config import Config, Scope, own_private_networks

from tests.discovery.lan import Lan


def section(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "w.toml"
    path.write_text(f"[discovery]\n{body}\n")
    return load(path, environ={}).section("discovery", Config)


@pytest.mark.parametrize(("body", "message"), [
    ('networks = ["8.8.8.0/24"]', "not a private network"),
    ('networks = ["192.168.1.0/24", "100.64.0.0/24"]', "not a private network"),
    ('networks = ["fd00::/64"]', "IPv6"),
    ('networks = ["192.168.1.300/24"]', "not an IPv4 address"),
    ('networks = ["10.0.0.0/8"]', "more than max_hosts"),
    ('deny = ["bogus"]', "deny: 'bogus'"),
    ("modbus_ports = [70000]", "modbus_ports"),
    ("concurrency = 0", "concurrency"),
    ('modbus_ports = []\naps_giv_ports = []\nmdns = false', "nothing to discover"),
    ("netwrks = []", "known keys"),
])
def test_bad_config_is_refused_with_a_clear_message(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        section(tmp_path, body)
    assert "[discovery]" in str(info.value)


def test_scope_defaults_and_deny(tmp_path: Path) -> None:
    config = section(tmp_path, 'networks = ["192.168.7.0/24", "127.0.3.0/30"]\ndeny = ["192.168.7.0/25"]')
    scope = Scope.from_config(config)
    hosts = list(scope.hosts())
    assert hosts[0] == "192.168.7.128" and "192.168.7.254" in hosts and "192.168.7.255" not in hosts
    assert hosts[-2:] == ["127.0.3.1", "127.0.3.2"] and len(hosts) == 127 + 2
    assert scope.allows("192.168.7.200") and not scope.allows("192.168.7.5") and not scope.allows("10.1.1.1")
    assert not scope.allows("not-an-ip")
    for net in own_private_networks():  # whatever this host has: private, never loopback, at most a /24
        assert net.is_private and not net.is_loopback and net.prefixlen >= 24


def test_sweep_subcommand_refuses_public_networks(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text("[discovery]\n")
    cmd = [sys.executable, "-m", "wattbus_discovery", "--config", str(tmp_path / "w.toml"), "sweep"]
    bad = subprocess.run([*cmd, "--network", "1.1.1.0/24"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a private network" in bad.stderr


async def test_sweep_subcommand_finds_a_device(lan: Lan, tmp_path: Path) -> None:
    import asyncio

    await lan.ecu(3, "ECU-C")
    (tmp_path / "w.toml").write_text("[discovery]\nmdns = false\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wattbus_discovery", "--config", str(tmp_path / "w.toml"), "sweep", "--json",
        "--network", f"{lan.ip(0)}/29", "--aps-giv-port", str(lan.aps_port), "--modbus-port", str(lan.modbus_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 1 and '"device_id":"apsystems-ecu-215000123456"' in lines[0]
    assert "12 candidates" in err.decode()
