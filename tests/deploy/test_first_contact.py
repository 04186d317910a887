"""What a person meets first: the logins that `make run`'s banner and README give them work.

The demo's own files (`wattbus embedded --prepare-only`: broker config with anonymous reading,
the project's ACL, generated passwords, the demo config) and real Mosquitto; the banner's lines
are used as printed. Home Assistant needs the `homeassistant` user (anonymous commands are
dropped); `wattbus config apply` needs admin in the demo, the http-api's user in compose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import ROOT, prepare_demo, wattbus_environments
from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.support.servers import Mosquitto, free_port, require, wait_port

HA_COMMAND = "homeassistant/switch/garage/mode/set"  # what an HA switch publishes


@dataclass
class Demo:
    run_dir: Path
    port: int
    banner: str

    def line(self, pattern: str) -> re.Match[str]:
        found = re.search(pattern, self.banner, re.M)
        assert found, f"the banner has no line matching {pattern!r}:\n{self.banner}"
        return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    run_dir = tmp_path_factory.mktemp("demo-run")
    port = free_port()
    banner = prepare_demo(run_dir, port)
    log = (run_dir / "broker.log").open("ab")
    broker = subprocess.Popen([require("mosquitto", "mosquitto"), "-c", str(run_dir / "mosquitto" / "mosquitto.conf")],
                              stdout=log, stderr=log)
    try:
        wait_port(port)
        yield Demo(run_dir, port, banner)
    finally:
        broker.terminate()
        broker.wait(10)
        log.close()


def probe(port: int, user: str | None, password: str | None) -> Probe:
    client = Probe(port, user, password)
    reason = client.connect()
    assert reason is not None and reason.value == 0, f"{user or 'anonymous'} could not connect: {reason}"
    return client


def test_home_assistant_with_the_banners_login_is_heard_and_anonymous_is_not(demo: Demo) -> None:
    found = demo.line(rf"broker 127\.0\.0\.1, port {demo.port}, user homeassistant,\s+password: cat (\S+)")
    password = Path(found.group(1)).read_text()
    integrations = probe(demo.port, "integrations", (demo.run_dir / "secrets" / "integrations").read_text())
    ha = probe(demo.port, "homeassistant", password)
    anonymous = probe(demo.port, None, None)
    try:
        integrations.subscribe("homeassistant/#")  # where the integrations service hears HA's commands
        anonymous.subscribe("homeassistant/#")
        config = "homeassistant/switch/garage/mode/config"
        assert integrations.publish_reason(config, b'{"name": "mode"}') == 0
        assert ha.publish_reason(HA_COMMAND, b"ON") == 0
        assert anonymous.publish_reason(HA_COMMAND, b"OFF") == NOT_AUTHORIZED  # dropped: v3 clients get no answer
        deadline = time.monotonic() + 5
        while HA_COMMAND not in integrations.topics_received() or config not in anonymous.topics_received():
            assert time.monotonic() < deadline, (integrations.received, anonymous.received)
            time.sleep(0.02)
        assert anonymous.topics_received() >= {config, HA_COMMAND}  # anonymous HA sees every entity...
        assert [p for t, p in integrations.received if t == HA_COMMAND] == [b"ON"]  # ...its commands vanish
    finally:
        for client in (integrations, ha, anonymous):
            client.close()


@pytest.fixture
def demo_integrations(demo: Demo, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real integrations service as the demo's supervisord starts it (from the repository)."""
    env = {**os.environ, "WATTBUS_CONFIG": str(demo.run_dir / "wattbus.toml"), "WATTBUS_BUS_HOST": "127.0.0.1",
           "WATTBUS_BUS_PORT": str(demo.port),
           "WATTBUS_BUS_PASSWORD_FILE": str(demo.run_dir / "secrets" / "integrations")}
    with (tmp_path / "integrations.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wattbus_integrations"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    proc.wait(15)


def shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=90, cwd=ROOT)


def test_config_apply_as_the_banner_prints_it(demo: Demo, demo_integrations: subprocess.Popen[bytes]) -> None:
    found = demo.line(r"apply it +(WATTBUS_BUS_PORT=.*\\\n\s+\S+ config --config \S+ apply) <section>$")
    command = found.group(1) + " integrations"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTBUS_")}  # a person's shell
    deadline = time.monotonic() + 40
    while "unchanged" not in (done := shell(command, env)).stdout:
        assert demo_integrations.poll() is None, "the integrations service ended"
        assert time.monotonic() < deadline, done.stderr  # the service may still be connecting
    assert done.returncode == 0
    anonymous = re.sub(r"WATTBUS_BUS_USERNAME=\S+ WATTBUS_BUS_PASSWORD_FILE=\S+ ", "", command)
    assert anonymous != command
    done = shell(anonymous + " --timeout 2", env)
    assert done.returncode == 1 and "did not answer" in done.stderr  # the broker dropped the request


def test_config_apply_in_compose_as_readme_gives_it(broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    """README: `docker compose exec -e WATTBUS_BUS_USERNAME=http-api http-api wattbus config apply ...`,
    with the http-api container's environment from compose.yaml and the shipped ACL."""
    readme = (ROOT / "README.md").read_text()
    assert "docker compose exec -e WATTBUS_BUS_USERNAME=http-api http-api wattbus config apply" in readme
    path = tmp_path / "wattbus.toml"
    path.write_text("[sml-reader]\nstatus_interval_s = 5\n")
    start_service("tests.support.echo_service", "--config", str(path), env=broker.env("sml-reader"))
    container = wattbus_environments()["http-api"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WATTBUS_")}, **container,
           "WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port),
           "WATTBUS_BUS_PASSWORD_FILE": str(broker.files.secrets_dir / "http-api")}
    apply = [sys.executable, "-m", "wattbus.cli", "config", "--config", str(path), "apply", "sml-reader"]
    deadline = time.monotonic() + 40
    while "unchanged" not in (done := subprocess.run([*apply, "--timeout", "5"], env={
            **env, "WATTBUS_BUS_USERNAME": "http-api"}, capture_output=True, text=True, timeout=60)).stdout:
        assert time.monotonic() < deadline, done.stderr
    without_user = subprocess.run([*apply, "--timeout", "2"], env=env, capture_output=True, text=True, timeout=60)
    # the password alone logs in as the command's own name (wattbus-config), which is no broker user
    assert without_user.returncode == 2 and "cannot reach the broker" in without_user.stderr, without_user.stderr
    assert "as wattbus-config" in without_user.stderr and "WATTBUS_BUS_USERNAME" in without_user.stderr
