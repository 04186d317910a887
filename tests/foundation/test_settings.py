"""wattbus.settings (the config file behind setup) and the runner's reload_config, with real services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomlkit
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.cli import main as cli_main
from wattbus.config import ConfigError
from wattbus.runner import RELOAD_EXIT_CODE
from wattbus.settings import ConfigFile, ServiceTypes, installed_services, parse_value

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

ROOT = Path(__file__).resolve().parents[2]

HOUSE = """\
# The house (a person wrote this)
[bus]
host = "127.0.0.1"   # local broker

[surplus-controller]
grid_meter = "house-sim/house-meter"  # the grid meter, never the wallbox
battery_priority_soc_pct = 20

[[surplus-controller.loadpoints]]
id = "garage"   # my garage
charger = "house-sim/house-wallbox"
max_current_a = 16

[http-api]
ports = [8008]

[http-api.site]
grid = "house-sim/house-meter"
"""


@pytest.fixture
def house(tmp_path: Path) -> Path:
    path = tmp_path / "wattbus.toml"
    path.write_text(HOUSE)
    return path


def test_the_registry_finds_the_services() -> None:
    assert {"surplus-controller", "http-api", "sml-reader", "discovery"} <= set(installed_services())
    assert "sim" not in installed_services()


@pytest.mark.parametrize("name", installed_services())
def test_every_installed_service_has_a_config_struct(name: str) -> None:
    """Each service's Struct is found by name and validates its own demo section."""
    config_type = ServiceTypes().config_type(name)
    assert issubclass(config_type, msgspec.Struct)
    demo = ROOT / "services" / name / "embedded.toml"
    if demo.exists():
        settings = ConfigFile(demo)
        settings.doc = tomlkit.parse(demo.read_text().replace("${WATTBUS_RUN}", "/tmp/run"))  # the launcher's job
        assert settings.check() == {}


def test_change_keeps_comments_and_layout(house: Path) -> None:
    settings = ConfigFile(house)
    assert settings.check() == {}
    section = settings.section("surplus-controller")
    section["loadpoints"][0]["max_current_a"] = 20
    section["battery"] = "house-sim/house-battery"
    settings.put_section("surplus-controller", section)
    settings.set_value("http-api", "site.pv", ["house-sim/house-pv"])
    settings.save()
    text = house.read_text()
    for kept in ("# The house (a person wrote this)", "# local broker", "# the grid meter, never the wallbox",
                 "# my garage", "[http-api.site]"):
        assert kept in text
    data = tomllib.loads(text)
    assert data["surplus-controller"]["loadpoints"][0]["max_current_a"] == 20
    assert data["surplus-controller"]["battery"] == "house-sim/house-battery"
    assert data["http-api"]["site"] == {"grid": "house-sim/house-meter", "pv": ["house-sim/house-pv"]}
    # Only the changed lines differ: a diff-friendly file.
    changed = set(text.splitlines()) ^ set(HOUSE.splitlines())
    assert changed == {"max_current_a = 16", "max_current_a = 20", 'battery = "house-sim/house-battery"',
                       'pv = ["house-sim/house-pv"]'}


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("surplus-controller", "loadpoints.0.min_current_a", 5, "loadpoints.0.min_current_a = 5"),
    ("surplus-controller", "grid_meter", "not a ref", "grid_meter = 'not a ref'"),
    ("surplus-controller", "loadpoints.0.phases", 2, "allowed: 1, 3, 'auto'"),
    ("http-api", "colour", "red", "known keys:"),
    ("bus", "port", 70000, "[bus] port = 70000"),
    ("surplus-controller", "loadpoints.3.mode", "pv", "'3' is not an index of a list with 1 items"),
])
def test_invalid_values_are_refused_and_the_file_is_untouched(house: Path, section: str, key: str, value: Any,
                                                              expected: str) -> None:
    settings = ConfigFile(house)
    with pytest.raises(ConfigError) as err:
        settings.set_value(section, key, value)
    assert expected in str(err.value)
    assert settings.check() == {}  # the document in memory did not change either
    settings.save()
    assert tomllib.loads(house.read_text()) == tomllib.loads(HOUSE)


def test_bad_files_and_unknown_sections(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[surplus-controller\ngrid_meter = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ConfigFile(bad)
    bad.write_bytes(b"[bus]\nhost = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        ConfigFile(bad)
    fresh = ConfigFile(tmp_path / "new" / "wattbus.toml")  # first run: no file yet
    assert fresh.sections() == []
    with pytest.raises(ConfigError, match="no service 'toaster' is installed"):
        fresh.put_section("toaster", {})
    fresh.put_section("surplus-controller", {"grid_meter": "sml-reader/emh-1"})
    fresh.save()
    assert tomllib.loads(fresh.path.read_text()) == {"surplus-controller": {"grid_meter": "sml-reader/emh-1"}}
    problems = tmp_path / "problems.toml"
    problems.write_text("[surplus-controller]\nmode = 1\n")
    assert "grid_meter" in ConfigFile(problems).check()["surplus-controller"]


def test_parse_value_reads_toml_or_text() -> None:
    assert parse_value("16") == 16
    assert parse_value("true") is True
    assert parse_value('["a/b"]') == ["a/b"]
    assert parse_value("house-sim/house-meter") == "house-sim/house-meter"


def test_cli_config_get_set_check(house: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["config", "--config", str(house), "get", "surplus-controller"]) == 0
    assert "grid_meter" in capsys.readouterr().out
    assert cli_main(["config", "--config", str(house), "set", "surplus-controller",
                     "loadpoints.0.max_current_a", "32"]) == 0
    assert tomllib.loads(house.read_text())["surplus-controller"]["loadpoints"][0]["max_current_a"] == 32
    assert cli_main(["config", "--config", str(house), "set", "surplus-controller",
                     "loadpoints.0.min_current_a", "5"]) == 2
    assert "min_current_a = 5" in capsys.readouterr().err
    assert cli_main(["config", "--config", str(house), "check"]) == 0
    house.write_text(HOUSE.replace("ports = [8008]", "ports = []"))
    assert cli_main(["config", "--config", str(house), "check"]) == 2
    assert "[http-api] ports" in capsys.readouterr().err


async def test_reload_config_restarts_only_on_a_valid_change(broker: Mosquitto, start_service: Any,
                                                             tmp_path: Path) -> None:
    """The real runner in a real subprocess (tests.support.echo_service, broker user sml-reader)."""
    path = tmp_path / "wattbus.toml"
    path.write_text('[sml-reader]\ndevice_serial = "E-0001"\n')
    admin = await started_bus(broker, "test-admin")
    results: list[m.CommandResult] = []
    admin.subscribe(topics.service_result("sml-reader", "main"), m.CommandResult,
                    lambda msg: results.append(msg.payload))
    online: list[str] = []

    def availability(msg: Message[bytes]) -> None:
        online.append(msg.payload.decode())

    admin.subscribe(topics.service_availability("sml-reader", "main"), bytes, availability)
    proc = start_service("tests.support.echo_service", "--config", str(path), env=broker.env("sml-reader"))
    try:
        await until(lambda: online[-1:] == ["online"], 20, "echo service online")

        async def ask(request_id: str) -> m.CommandResult:
            admin.publish(topics.service_command("sml-reader", "main"), m.ReloadConfig(request_id=request_id))
            await until(lambda: any(r.request_id == request_id for r in results), 20, f"answer to {request_id}")
            return next(r for r in results if r.request_id == request_id)

        same = await ask("r1")
        assert (same.status, same.command) == ("ok", "reload_config") and "unchanged" in same.message
        path.write_text('[sml-reader]\ndevice_serial = 5\n')
        bad = await ask("r2")
        assert bad.status == "invalid" and "device_serial = 5" in bad.message
        assert proc.proc.poll() is None  # an invalid section never stops the service
        admin.publish(topics.service_command("sml-reader", "main"), m.SetRelay(on=True, request_id="r3"))
        assert (await ask_wait(results, "r3")).status == "refused"
        path.write_text('[sml-reader]\ndevice_serial = "E-0002"\n')
        changed = await ask("r4")
        assert changed.status == "ok" and "restarting" in changed.message
        await until(lambda: proc.proc.poll() is not None, 20, "service exit after a changed section")
        assert proc.proc.returncode == RELOAD_EXIT_CODE
        assert "config_reloads_refused" in proc.output() or "reload refused" in proc.output()
    finally:
        await admin.stop()


async def ask_wait(results: list[m.CommandResult], request_id: str) -> m.CommandResult:
    await until(lambda: any(r.request_id == request_id for r in results), 20, f"answer to {request_id}")
    return next(r for r in results if r.request_id == request_id)


def test_cli_config_apply_over_the_bus(broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    """`wattbus config set` then `wattbus config apply`: the person's way without the web UI."""
    path = tmp_path / "wattbus.toml"
    path.write_text("[sml-reader]\nstatus_interval_s = 5\n")  # valid for the echo service and sml-reader
    proc = start_service("tests.support.echo_service", "--config", str(path), env=broker.env("sml-reader"))
    env = {**os.environ, **broker.env("test-admin")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wattbus.cli", "config", "--config", str(path), *args],
                              env=env, capture_output=True, text=True, timeout=60)

    deadline = time.monotonic() + 30
    while "unchanged" not in (done := cli("apply", "sml-reader", "--timeout", "5")).stdout:
        assert time.monotonic() < deadline, done.stderr  # the service may still be connecting
    assert cli("set", "sml-reader", "status_interval_s", "7").returncode == 0  # valid for both Structs
    done = cli("apply", "sml-reader")
    assert done.returncode == 0 and "changed: restarting" in done.stdout
    assert proc.proc.wait(30) == RELOAD_EXIT_CODE
    done = cli("apply", "sml-reader", "--timeout", "1")
    assert done.returncode == 1 and "did not answer" in done.stderr  # nobody restarted it in this test


def test_cli_config_apply_reaches_auto_replicas(broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    """compose runs scaled services with WATTBUS_<SERVICE>_INSTANCE=auto (each replica named after its
    container) and passes the same variables to the http-api container, where README runs
    `wattbus config apply`: it must ask every replica, not an instance `main` nobody is."""
    path = tmp_path / "wattbus.toml"
    path.write_text("[sml-reader]\nstatus_interval_s = 5\n")
    scaled = {"WATTBUS_SML_READER_INSTANCE": "auto"}
    start_service("tests.support.echo_service", "--config", str(path), env={**broker.env("sml-reader"), **scaled})
    env = {**os.environ, **broker.env("test-admin"), **scaled}
    apply = [sys.executable, "-m", "wattbus.cli", "config", "--config", str(path), "apply", "sml-reader"]
    deadline = time.monotonic() + 30
    while "unchanged" not in (done := subprocess.run([*apply, "--timeout", "5"], env=env, capture_output=True,
                                                     text=True, timeout=60)).stdout:
        assert time.monotonic() < deadline, done.stderr  # the service may still be connecting
    assert done.stdout.startswith("sml-reader/auto: ok"), done.stdout
