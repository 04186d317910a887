"""Config: the demo fragment decodes, bad sections and mapping entries stop start-up with a clear message."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from wattbus.config import ConfigError, LoadedConfig, convert
from wattbus_http_api.config import Config, resolve
from wattbus_http_api.meterhub import check_source

from tests.support.servers import ROOT


def test_demo_fragment_decodes() -> None:
    data = tomllib.loads((ROOT / "services/http-api/embedded.toml").read_text())["http-api"]
    cfg = convert("http-api", data, Config, {})
    assert cfg.ports == [8008, 6345] and "site" not in data  # the demo's roles are [site] (config/embedded.toml)
    site = tomllib.loads((ROOT / "config/embedded.toml").read_text())["site"]
    resolved = resolve(LoadedConfig({"http-api": data, "site": site}, None, {}), cfg)
    assert resolved.site.grid == "goe-shelly-bridge/shelly-08f9e0e5a001-em"
    assert resolved.site.charger_refs() == ["goe-shelly-bridge/goe-204571"]  # the loadpoint's charger
    assert not [p for k, s in cfg.mapping().items() if (p := check_source(k, s))]


@pytest.mark.parametrize(("section", "fragment"), [
    ({"ports": [0]}, "ports"),
    ({"site": {"grid": "no-slash"}}, r"site\.grid"),
    ({"publish": {"bat_soc": -1}}, "publish = {.bat_soc.: -1}"),
    ({"meterhub": {"grid_p": {"field": "power_w"}}}, "grid_p.*missing required field .source."),
    ({"listen": "0.0.0.0"}, "known keys"),
])
def test_bad_sections_name_the_key(section: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        convert("http-api", section, Config, {})


def test_bad_network_and_token_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trusted_networks\[1\]"):
        Config(trusted_networks=["127.0.0.1/32", "10.0.0.300/8"]).networks()
    with pytest.raises(ConfigError, match="token_file"):
        Config(token_file=str(tmp_path / "missing")).resolved_token()
    (tmp_path / "token").write_text("abc\n")
    assert Config(token_file=str(tmp_path / "token")).resolved_token() == "abc"


def test_unknown_mapping_source_stops_the_service(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[http-api]\nports = [1]\n[http-api.meterhub]\nx_p = { source = "garden" }\n')
    done = subprocess.run([sys.executable, "-m", "wattbus_http_api", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env={"WATTBUS_BUS_PORT": "1", "PATH": "/usr/bin"})
    assert done.returncode != 0
    assert "x_p: source 'garden' is neither a role" in done.stdout + done.stderr
