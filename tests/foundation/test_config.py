"""Config: one file, a section per service, env overrides, errors that name key, value and rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from msgspec import Meta, Struct
from wattbus.config import ConfigError, ServiceCommon, load


class Device(Struct, kw_only=True, forbid_unknown_fields=True):
    host: str
    unit_id: Annotated[int, Meta(ge=1, le=247)] = 1


class ReaderConfig(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    port: str = "/dev/ttyUSB0"
    baudrate: Literal[300, 2400, 9600, 19200, 115200] = 9600
    poll_interval_s: Annotated[float, Meta(gt=0)] = 2.0
    devices: list[Device] = []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wattbus.toml"
    path.write_text(text)
    return path


def test_sections_decode_into_typed_structs(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nhost = "broker"\n[sml-reader]\nbaudrate = 115200\n'
                           '[[sml-reader.devices]]\nhost = "192.0.2.7"\nunit_id = 126\n')
    loaded = load(path, environ={})
    assert loaded.bus().host == "broker"
    cfg = loaded.section("sml-reader", ReaderConfig)
    assert cfg.baudrate == 115200 and cfg.devices == [Device(host="192.0.2.7", unit_id=126)]
    assert cfg.instance == "main"


def test_environment_overrides_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[sml-reader]\nbaudrate = 9600\n")
    env = {"WATTBUS_SML_READER_BAUDRATE": "115200", "WATTBUS_SML_READER_PORT": "/dev/ttyAMA0",
           "WATTBUS_SML_READER_POLL_INTERVAL_S": "0.5", "WATTBUS_BUS_PORT": "8883", "WATTBUS_BUS_TLS": "true",
           "WATTBUS_SML_READER_DEVICES": '[{host = "10.0.0.2"}]'}
    loaded = load(path, environ=env)
    cfg = loaded.section("sml-reader", ReaderConfig)
    assert (cfg.baudrate, cfg.port, cfg.poll_interval_s) == (115200, "/dev/ttyAMA0", 0.5)
    assert cfg.devices == [Device(host="10.0.0.2")]
    assert loaded.bus().port == 8883 and loaded.bus().tls is True


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("[sml-reader]\nbaudrate = 9601\n", {},
     r"\[sml-reader\] baudrate = 9601 .*wattbus.toml.*Invalid enum value 9601; allowed: 300, 2400, 9600"),
    ("[sml-reader]\npoll_interval_s = -1\n", {}, r"poll_interval_s = -1 .*Expected `float` > 0"),
    ("[sml-reader]\nbaud = 9600\n", {},
     r"unknown field `baud`; known keys: instance, status_interval_s, port, baudrate"),
    ("[sml-reader]\n[[sml-reader.devices]]\nunit_id = 300\nhost = 'x'\n", {}, r"devices\.0\.unit_id = 300 .*<= 247"),
    ("[sml-reader]\n[[sml-reader.devices]]\nunit_id = 3\n", {}, r"devices\.0.*missing required field `host`"),
    ("", {"WATTBUS_SML_READER_BAUDRATE": "fast"}, r"baudrate = 'fast' \(from environment variable "
                                                  r"WATTBUS_SML_READER_BAUDRATE\)"),
    ("", {"WATTBUS_BUS_PORT": "70000"}, r"\[bus\] port = 70000 .*<= 65535"),
])
def test_bad_values_name_key_value_source_and_rule(tmp_path: Path, text: str, env: dict[str, str],
                                                   expected: str) -> None:
    loaded = load(write(tmp_path, text), environ=env)
    with pytest.raises(ConfigError, match=expected):
        loaded.section("sml-reader", ReaderConfig)
        loaded.bus()


def test_unreadable_or_invalid_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[bus\nhost="), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml", environ={})


def test_a_service_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[bus]\nport = 'mqtt'\n")
    proc = subprocess.run([sys.executable, "-m", "tests.support.echo_service", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "[bus] port = 'mqtt'" in proc.stderr and "Expected `int`" in proc.stderr


def test_an_unreadable_password_file_stops_start_up_with_its_name(tmp_path: Path) -> None:
    # Found by the bus as it is built, inside the event loop: still a one-line error, no traceback.
    path = write(tmp_path, f"[bus]\npassword_file = '{tmp_path}/missing-secret'\n")
    proc = subprocess.run([sys.executable, "-m", "tests.support.echo_service", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"[bus] password_file = '{tmp_path}/missing-secret': cannot read it" in proc.stderr
    assert "Traceback" not in proc.stderr
