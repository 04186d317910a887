"""WATTBUS_OPENSSL: service processes without TLS run without OpenSSL, and TLS still works when asked.

Whether OpenSSL is in a process is read from /proc/<pid>/maps (libcrypto mapped or not), in fresh
interpreters and in a real service talking to the real broker.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wattbus.lean import config_wants_tls

from tests.support.bus_helpers import until

ROOT = Path(__file__).resolve().parents[2]
GATED = sorted(p.parent.parent.name for p in ROOT.glob("services/*/wattbus_*/__init__.py")
               if "keep_openssl_out(" in p.read_text())

PROBE = """
import sys
__import__(sys.argv[1] + ".__main__")  # first: the gate must run before anything loads hashlib
import hashlib
print("libcrypto" in open("/proc/self/maps").read(), hashlib.sha256(b"wattbus").hexdigest())
"""


def libcrypto_loaded(package: str, env: dict[str, str], *args: str) -> bool:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTBUS_")}
    out = subprocess.run([sys.executable, "-c", PROBE, package, *args], env={**base, **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded, digest = out.stdout.split()
    assert digest == hashlib.sha256(b"wattbus").hexdigest()  # hashlib works either way
    return loaded == "True"


def package_of(service_dir: str) -> str:
    return next((ROOT / "services" / service_dir).glob("wattbus_*/__init__.py")).parent.name


def test_every_service_but_the_pymodbus_one_keeps_openssl_out() -> None:
    assert "sunspec-bridge" not in GATED  # pymodbus imports ssl unconditionally
    assert len(GATED) == len(list(ROOT.glob("services/*/wattbus_*/__init__.py"))) - 1


@pytest.mark.parametrize("service", GATED)
def test_auto_without_tls_config_loads_no_openssl(service: str, tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text(f'[bus]\nhost = "127.0.0.1"\n\n[{service}]\nstatus_interval_s = 5\n')
    assert not libcrypto_loaded(package_of(service), {"WATTBUS_OPENSSL": "auto", "WATTBUS_CONFIG": str(config)})
    assert libcrypto_loaded(package_of(service), {"WATTBUS_OPENSSL": "on", "WATTBUS_CONFIG": str(config)})


@pytest.mark.parametrize(("text", "env", "wanted"), [
    ('[bus]\ntls = true\n', {}, True),
    ('[bus]\ntls = false\n', {}, False),
    ('[influx-writer]\nurl = "https://cloud.example/"\n', {}, True),
    ('[influx-writer]\nurl = "http://127.0.0.1:8086/"\n', {}, False),
    ('[integrations]\n[[integrations.http]]\nurl = "HTTPS://nas.local/push"\n', {}, False),  # not its section
    ('[goe-shelly-bridge]\n[[goe-shelly-bridge.devices]]\nurl = "https://charger.local"\n', {}, False),
    ('', {"WATTBUS_BUS_TLS": "true"}, True),
    ('', {"WATTBUS_INFLUX_WRITER_URL": "https://cloud.example/"}, True),
    ('[bus\nbroken', {}, True),  # unreadable: load OpenSSL, the service reports the error itself
])
def test_what_counts_as_asking_for_tls(tmp_path: Path, text: str, env: dict[str, str], wanted: bool) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text(text)
    assert config_wants_tls("influx-writer", ["wattbus-influx-writer", "--config", str(config)], env) is wanted


def test_https_in_the_services_own_section_keeps_openssl(tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text('[influx-writer]\nurl = "https://cloud.example:8086"\n')
    assert libcrypto_loaded("wattbus_influx_writer", {"WATTBUS_OPENSSL": "auto"}, "--config", str(config))


def test_off_with_tls_configured_fails_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text('[bus]\nhost = "127.0.0.1"\ntls = true\n\n[giv-bridge]\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTBUS_")}
    out = subprocess.run([sys.executable, "-m", "wattbus_giv_bridge", "--config", str(config)],
                         env={**base, "WATTBUS_OPENSSL": "off"}, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "[bus] tls asks for TLS" in out.stdout + out.stderr
    assert "WATTBUS_OPENSSL=on" in out.stdout + out.stderr


async def test_a_real_service_runs_on_the_bus_without_openssl(broker: object, start_service: object,
                                                         tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text('[giv-bridge]\nstatus_interval_s = 1\n')
    env = {**broker.env("giv-bridge"), "WATTBUS_OPENSSL": "auto"}  # type: ignore[attr-defined]
    service = start_service("wattbus_giv_bridge", "--config", str(config), env=env)  # type: ignore[operator]
    maps = Path(f"/proc/{service.proc.pid}/maps")
    await until(lambda: "connected to broker" in service.output(), timeout=30)
    assert service.proc.poll() is None, service.output()
    assert "libcrypto" not in maps.read_text()
