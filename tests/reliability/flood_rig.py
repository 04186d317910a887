"""Every service on a broker that logs each SUBSCRIBE, so a test learns what a service really
subscribes to from the broker (not from a hand-kept list), and configs that start each service
against nothing but closed loopback ports (no simulator needed: subscriptions do not depend on a
device answering)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.reliability.brokers import Broker
from tests.support.servers import free_port

# `1732547000: goe-shelly-bridge-main 1 wattbus/v1/device/goe-shelly-bridge/+/command`
_SUBSCRIBE = re.compile(r"^\d+: (?P<client>\S+) (?P<qos>[012]) (?P<filter>\S+)$")


def subscribing_broker(run_dir: Path) -> Broker:
    broker = Broker(run_dir, anonymous=False)
    # A log file of its own: mosquitto's stdout is block-buffered when it is not a terminal.
    broker.subscribe_log = run_dir / "subscribe.log"
    with broker.files.conf.open("a") as conf:
        conf.write(f"\nlog_dest file {broker.subscribe_log}\nlog_type subscribe\n")
    return broker


def subscriptions(broker: Broker, client_id: str, helpers: bool = False) -> set[str]:
    """The topic filters `client_id` subscribed to, as the broker logged them; with helpers, those
    of its helper connections (`<client_id>-...`, e.g. the influx-writer's ingest) instead."""
    found: set[str] = set()
    path = broker.subscribe_log
    if path is None or not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        match = _SUBSCRIBE.match(line.strip())
        if match and (match["client"].startswith(client_id + "-") if helpers else match["client"] == client_id):
            found.add(match["filter"])
    return found


def concrete(subscription: str) -> str:
    """A topic the filter matches: `+` and `#` filled in; `$share/<group>/` dropped."""
    parts = subscription.split("/")
    if parts[0] == "$share":
        parts = parts[2:]
    return "/".join("flood" if p == "+" else "flood/x" if p == "#" else p for p in parts)


def matches(subscription: str, topic: str) -> bool:
    """MQTT filter matching (`+` one level, `#` the rest), `$share/<group>/` dropped."""
    levels = subscription.split("/")
    if levels[0] == "$share":
        levels = levels[2:]
    parts = topic.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            return True
        if index >= len(parts) or level not in ("+", parts[index]):
            return False
    return len(parts) == len(levels)


def _closed() -> int:
    return free_port()  # nothing listens there: every poll fails fast with connection refused


CONFIGS: dict[str, Callable[[Path], str]] = {
    "discovery": lambda tmp: f"""[discovery]
networks = ["127.0.0.1/32"]
modbus_ports = [{_closed()}]
aps_giv_ports = [{_closed()}]
mdns = false
sweep_interval_s = 600
""",
    "ecu-bridge": lambda tmp: f"""[ecu-bridge]
[[ecu-bridge.ecus]]
host = "127.0.0.1"
port = {_closed()}
poll_interval_s = 30
""",
    "giv-bridge": lambda tmp: f"""[giv-bridge]
inverters = [{{ host = "127.0.0.1", port = {_closed()} }}]
""",
    # One polled device (nothing answers) and one MQTT device, so its tele/ subscription is flooded too.
    "generic-bridge": lambda tmp: f"""[generic-bridge]
[[generic-bridge.devices]]
id = "water"
template = "ai-on-the-edge"
host = "127.0.0.1"
port = {_closed()}
[[generic-bridge.devices]]
id = "head"
template = "tasmota-sml-mqtt"
vars = {{ topic = "flood-head", meter = "SML" }}
""",
    "goe-shelly-bridge": lambda tmp: f"""[goe-shelly-bridge]
[[goe-shelly-bridge.devices]]
url = "http://127.0.0.1:{_closed()}"
""",
    "http-api": lambda tmp: f"""[http-api]
host = "127.0.0.1"
ports = [{free_port()}]
""",
    "influx-writer": lambda tmp: f"""[influx-writer]
url = "http://127.0.0.1:{_closed()}"
api = "v1"
database = "flood"
spool_dir = "{tmp}/spool"
dead_letter_file = "{tmp}/dead-letter.jsonl"
""",
    "integrations": lambda tmp: "[integrations]\n",
    "sml-reader": lambda tmp: f"""[sml-reader]
[[sml-reader.meters]]
key = "grid"
port = "socket://127.0.0.1:{_closed()}"
""",
    "sunspec-bridge": lambda tmp: f"""[sunspec-bridge]
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {_closed()}
unit_ids = [1]
""",
    "surplus-controller": lambda tmp: f"""[site]
grid = "flood/flood"
[[site.loadpoints]]
id = "flood"
charger = "flood/flood"
[surplus-controller]
state_file = "{tmp}/state.json"
""",
}


def module(service: str) -> str:
    return "wattbus_" + service.replace("-", "_")
