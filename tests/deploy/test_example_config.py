"""config/wattbus.example.toml: every section valid as compose runs it, and a house that adds up.

Each section is decoded by its service's own Config Struct, found by name the way `wattbus
run-many` and the setup page find it (wattbus.multi.load_service), with the environment
compose.yaml gives that service's container (the environment wins over the file).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

import pytest
from wattbus.config import LoadedConfig, load
from wattbus.multi import load_service
from wattbus.settings import installed_services
from wattbus.site import site_config

from tests.deploy.support import EXAMPLE, ROOT, device_lines, listed_addresses, wattbus_environments

BRIDGES = ("sunspec-bridge", "sml-reader", "giv-bridge", "goe-shelly-bridge", "ecu-bridge")


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def as_compose_runs(service: str) -> tuple[LoadedConfig, Any]:
    loaded = load(EXAMPLE, environ=wattbus_environments()[service])
    return loaded, load_service(service).config_of(loaded)  # with [site] resolved, as the service runs


def test_every_installed_service_has_a_section_that_compose_runs() -> None:
    sections = set(tomllib.loads(EXAMPLE.read_text())) - {"bus", "site"}  # read by several services
    assert sections == set(installed_services()), "a service without a section, or a section of no service"
    assert set(wattbus_environments()) == sections, "compose.yaml runs other services than the example configures"


# The services compose.yaml runs as instance = "auto" (`--scale`: one name per replica).
SCALED = {"influx-writer", "sunspec-bridge", "ecu-bridge", "giv-bridge", "goe-shelly-bridge", "generic-bridge",
          "discovery"}


@pytest.mark.parametrize("service", sorted(installed_services()))
def test_section_is_valid_with_the_compose_environment(service: str) -> None:
    loaded, config = as_compose_runs(service)
    bus = loaded.bus()
    assert bus.host == "mosquitto" or service == "discovery"  # discovery runs on the host's network
    assert bus.password is None and bus.password_file == f"/run/secrets/{service}"
    assert config.instance == ("auto" if service in SCALED else "main")


def test_the_http_api_addresses_the_scaled_services_as_they_run() -> None:
    """The http-api reads the same WATTBUS_<SERVICE>_INSTANCE = auto as the scaled services, so a
    section saved on the setup page goes to service/<name>/all/command, which every replica hears."""
    envs = wattbus_environments()
    own = {k: v for name, env in envs.items() if name != "http-api" for k, v in env.items() if k.endswith("_INSTANCE")}
    assert own == {f"WATTBUS_{s.upper().replace('-', '_')}_INSTANCE": "auto" for s in SCALED}
    assert {k: v for k, v in envs["http-api"].items() if k.endswith("_INSTANCE")} == own


def test_wattbus_config_check_accepts_the_file() -> None:
    """The command README and the file's header name: every section, each by its service's rules."""
    done = subprocess.run([sys.executable, "-m", "wattbus.cli", "config", "--config", str(EXAMPLE), "check"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "all valid" in done.stdout


def test_the_house_is_the_one_the_header_describes(data: dict[str, Any]) -> None:
    assert [d["unit_ids"] for d in data["sunspec-bridge"]["devices"]] == [[1]]  # one PV inverter
    assert [i["batteries"] for i in data["giv-bridge"]["inverters"]] == [1]  # one battery
    assert len(data["goe-shelly-bridge"]["devices"]) == 4  # grid meter, charger, two relays
    assert data["sml-reader"].get("meters", []) == [] and data["ecu-bridge"].get("ecus", []) == []
    controller = as_compose_runs("surplus-controller")[1]
    assert [lp.id for lp in controller.loadpoints] == ["garage"]
    assert [r.id for r in controller.relays] == ["water-heater", "pool-pump"]
    assert controller.state_file.startswith("/var/lib/wattbus/")  # compose's controller-state volume


def test_every_device_the_controller_and_the_ui_name_comes_from_a_configured_bridge(data: dict[str, Any]) -> None:
    controller = as_compose_runs("surplus-controller")[1]
    site = as_compose_runs("http-api")[1].site
    refs = {controller.grid_meter, controller.battery, *(lp.charger for lp in controller.loadpoints),
            *(r.device for r in controller.relays)}
    for ref in refs | {site.grid, *site.pv, *site.battery, *site.charger_refs()}:
        source, _, device_id = ref.partition("/")
        assert source in BRIDGES, f"{ref}: {source} is not a device bridge"
        devices = data[source].get("devices") or data[source].get("inverters") or []
        assert devices, f"{ref}: [{source}] configures no device it could come from"
        assert device_id, ref
    # the power flow and the controller see the same house
    assert site.grid == controller.grid_meter
    assert site.battery == [controller.battery]
    assert site.charger_refs() == [lp.charger for lp in controller.loadpoints]
    assert site.pv and all(ref.startswith("sunspec-bridge/") for ref in site.pv)
    assert site_config(as_compose_runs("influx-writer")[0]) == site  # and its role tags too
    for lp in controller.loadpoints:
        assert lp.breaker_a is not None and lp.breaker_a >= lp.max_current_a, f"loadpoint {lp.id}: no breaker"


def test_device_addresses_are_listed_and_each_on_its_own_line() -> None:
    """The compose smoke test (and a person) replaces addresses line by line."""
    text = EXAMPLE.read_text()
    listed = listed_addresses(text)
    on_lines = device_lines(text)
    assert len(listed) == 6 and sorted(on_lines) == sorted(listed), (listed, on_lines)
    assert len(set(on_lines)) == len(on_lines), "one device per address"
    for address, table in listed.items():
        section = table.strip("[]").split(".")[0]
        assert text.index(table) < text.index(f'{address}"'), f"{address} is not in {table}"
        assert f"[{section}]" in text


def test_no_broker_password_or_token_in_the_file(data: dict[str, Any]) -> None:
    def keys(node: Any, path: str = "") -> list[str]:
        if isinstance(node, dict):
            return [k for key, value in node.items() for k in [f"{path}{key}", *keys(value, f"{path}{key}.")]]
        if isinstance(node, list):
            return [k for item in node for k in keys(item, path)]
        return []

    secrets = [k for k in keys(data) if k.rsplit(".", 1)[-1] in ("password", "token", "password_file", "token_file")]
    assert secrets == [], f"secrets belong in secrets/ and compose.yaml: {secrets}"
    assert data["bus"] == {}  # host, port and password file come from compose.yaml
