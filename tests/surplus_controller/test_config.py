"""The controller's config section as old files still write it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from wattbus.config import ConfigError, load
from wattbus.settings import ConfigFile
from wattbus_surplus_controller.config import SECTION, Config


def test_a_file_that_still_sets_state_interval_s_loads_and_says_the_key_is_unused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text(f"[{SECTION}]\nstate_interval_s = 5.0\nstale_after_s = 20.0\n")
    caplog.set_level(logging.WARNING)
    cfg = load(path, environ={}).section(SECTION, Config)
    assert cfg.stale_after_s == 20.0 and "state_interval_s" not in Config.__struct_fields__
    (record,) = [r for r in caplog.records if "no longer used" in r.getMessage()]
    assert record.__dict__["fields"]["key"] == "state_interval_s"
    assert record.__dict__["fields"]["source"] == str(path)
    assert ConfigFile(path).check() == {}  # `wattbus config check` and the setup page accept the file too


def test_other_unknown_keys_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text(f"[{SECTION}]\nstate_interval = 5.0\n")
    with pytest.raises(ConfigError, match="unknown field `state_interval`"):
        load(path, environ={}).section(SECTION, Config)
