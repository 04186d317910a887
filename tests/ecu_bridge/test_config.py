"""aps2mqtt's configuration as input, local sunrise/sunset, the maintenance window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from wattbus.config import ConfigError, load
from wattbus_ecu_bridge import aps2mqtt, sun
from wattbus_ecu_bridge.config import Config

README_YAML = """\
ecu:
  APS_ECU_IP: '192.0.2.42'
  APS_ECU_STOP_AT_NIGHT: True
  APS_ECU_POSITION_LAT: 47.206
  APS_ECU_POSITION_LNG: -1.5645

mqtt:
  MQTT_BROKER_HOST: '192.0.2.12'
  MQTT_BROKER_PORT: 1883
  MQTT_BROKER_USER: 'johndoe'
  MQTT_BROKER_PASSWD: 'itsasecret'
"""


def config_from(environ: dict[str, str]) -> Config:
    env = {**environ, **aps2mqtt.overrides(environ)}
    return load("/dev/null", env).section("ecu-bridge", Config)


def test_aps2mqtt_readme_yaml_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(README_YAML)
    env = {"CONFIG_FILE": str(path)}
    merged = {**env, **aps2mqtt.overrides(env)}
    cfg = load("/dev/null", merged).section("ecu-bridge", Config)
    bus = load("/dev/null", merged).bus()
    (ecu,) = cfg.ecus
    assert (ecu.host, ecu.port, ecu.stop_at_night, ecu.latitude, ecu.longitude) == (
        "192.0.2.42", 8899, True, 47.206, -1.5645)
    assert (bus.host, bus.port, bus.username, bus.password) == ("192.0.2.12", 1883, "johndoe", "itsasecret")
    assert cfg.aps2mqtt_topics


def test_several_ecus_from_one_variable() -> None:
    cfg = config_from({"APS_ECU_IP": "192.0.2.1, 192.0.2.2", "APS_ECU_AUTO_RESTART": "yes",
                       "APS_ECU_WIFI_SSID": "home net", "MQTT_TOPIC_PREFIX": "solar"})
    assert [e.host for e in cfg.ecus] == ["192.0.2.1", "192.0.2.2"]
    assert all(e.auto_restart and e.wifi_ssid == "home net" for e in cfg.ecus) and cfg.aps2mqtt_prefix == "solar"


def test_discovery_and_client_id_variables_are_kept() -> None:
    """MQTT_DISCOVERY_ENABLED/PREFIX switch on aps2mqtt's Home Assistant entities; MQTT_CLIENT_ID names
    the instance, whose client id the bus binds to the password (wattbus.client_id)."""
    cfg = config_from({"APS_ECU_IP": "192.0.2.1", "MQTT_DISCOVERY_ENABLED": "True", "MQTT_DISCOVERY_PREFIX": "ha",
                       "MQTT_CLIENT_ID": "MyAwesomeClient"})
    assert (cfg.aps2mqtt_discovery, cfg.aps2mqtt_discovery_prefix, cfg.instance) == (True, "ha", "MyAwesomeClient")
    default = config_from({"APS_ECU_IP": "192.0.2.1"})
    assert (default.aps2mqtt_discovery, default.aps2mqtt_discovery_prefix, default.instance) == (
        False, "homeassistant", "main")


def test_explicit_wattbus_variables_win() -> None:
    env = {"MQTT_BROKER_HOST": "192.0.2.12", "WATTBUS_BUS_HOST": "127.0.0.1"}
    assert "WATTBUS_BUS_HOST" not in aps2mqtt.overrides(env)


@pytest.mark.parametrize(("environ", "message"), [
    ({"APS_ECU_IP": "192.0.2.1", "APS_ECU_STOP_AT_NIGHT": "maybe"}, "APS_ECU_STOP_AT_NIGHT = 'maybe'"),
    ({"APS_ECU_IP": "192.0.2.1", "APS_ECU_PORT": "eighty"}, "APS_ECU_PORT = 'eighty'"),
    ({"APS_ECU_STOP_AT_NIGHT": "True"}, "APS_ECU_IP (from environment) is required"),
    ({"APS_ECU_IP": "192.0.2.1,,"}, "empty address"),
    ({"APS_ECU_IP": "192.0.2.1", "MQTT_CLIENT_ID": "my/client"}, "MQTT_CLIENT_ID = 'my/client' (from environment)"),
    ({"APS_ECU_IP": "192.0.2.1", "MQTT_DISCOVERY_ENABLED": "sure"}, "MQTT_DISCOVERY_ENABLED = 'sure'"),
    ({"APS_ECU_IP": "192.0.2.1", "MQTT_DISCOVERY_PREFIX": "ha #1"}, "MQTT_DISCOVERY_PREFIX = 'ha #1'"),
])
def test_bad_aps2mqtt_values_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        aps2mqtt.overrides(environ)


def test_out_of_range_value_is_reported_by_the_normal_validation() -> None:
    with pytest.raises(ConfigError, match="latitude"):
        config_from({"APS_ECU_IP": "192.0.2.1", "APS_ECU_POSITION_LAT": "123"})


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ecu: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        aps2mqtt.overrides({"CONFIG_FILE": str(bad)})
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("ecu:\n  APS_ECU_IP: 192.0.2.1\n  APS_ECU_COLOUR: red\n")
    with pytest.raises(ConfigError, match=r"APS_ECU_COLOUR.*unknown key"):
        aps2mqtt.overrides({"CONFIG_FILE": str(unknown)})


# Published almanac times (UTC) for the summer solstice; the NOAA approximation is within minutes.
@pytest.mark.parametrize(("lat", "lon", "rise", "set_"), [
    (48.8566, 2.3522, "03:47", "19:58"),  # Paris
    (52.52, 13.405, "02:43", "19:33"),  # Berlin
])
def test_sunrise_and_sunset(lat: float, lon: float, rise: str, set_: str) -> None:
    times = sun.sun_times(date(2026, 6, 21), lat, lon)
    assert times.sunrise and times.sunset
    for got, want in ((times.sunrise, rise), (times.sunset, set_)):
        h, m = map(int, want.split(":"))
        expected = datetime(2026, 6, 21, h, m, tzinfo=UTC)
        assert abs((got - expected).total_seconds()) < 5 * 60, (got, expected)


def test_night_far_west_evening_is_still_day() -> None:
    # 19:00 in Los Angeles (PDT) on the solstice is 02:00 UTC the next day; the sun sets ~20:08 local.
    evening = datetime(2026, 6, 22, 2, 0, tzinfo=UTC)
    assert not sun.is_night(evening, 34.05, -118.24, timedelta(0))
    assert sun.is_night(evening + timedelta(hours=2), 34.05, -118.24, timedelta(0))
    wake = sun.next_sunrise(evening + timedelta(hours=2), 34.05, -118.24, timedelta(0))
    assert wake is not None and wake.astimezone(ZoneInfo("America/Los_Angeles")).hour == 5


def test_polar_day_and_night() -> None:
    assert not sun.is_night(datetime(2026, 6, 21, 0, 0, tzinfo=UTC), 78.2, 15.6, timedelta(0))  # Svalbard
    assert sun.is_night(datetime(2026, 12, 21, 12, 0, tzinfo=UTC), 78.2, 15.6, timedelta(0))


def test_maintenance_window() -> None:
    zone = ZoneInfo("Europe/Berlin")
    inside = datetime(2026, 3, 1, 2, 50, tzinfo=zone)
    assert sun.in_window(inside, "02:45", "03:15", zone)
    assert not sun.in_window(inside + timedelta(minutes=30), "02:45", "03:15", zone)
    assert sun.in_window(inside, "23:00", "03:00", zone)  # wraps over midnight
    assert not sun.in_window(inside, "00:00", "00:00", zone)  # equal ends: switched off
    assert sun.window_end(inside, "03:15", zone) == datetime(2026, 3, 1, 3, 15, tzinfo=zone)


def test_demo_config_fragment_decodes() -> None:
    """services/ecu-bridge/embedded.toml is what `make run` appends to the demo config."""
    import tomllib

    from wattbus.config import LoadedConfig

    fragment = Path(__file__).resolve().parents[2] / "services" / "ecu-bridge" / "embedded.toml"
    cfg = LoadedConfig(tomllib.loads(fragment.read_text()), fragment, {}).section("ecu-bridge", Config)
    assert cfg.ecus and cfg.ecus[0].host == "127.0.0.1"
