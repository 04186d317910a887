"""README, compose.yaml and the shipped config files claim no file that a user would not have,
their compose steps come in an order that works, and Grafana's data source needs no manual step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from wattbus.config import load
from wattbus.multi import load_service
from wattbus.settings import installed_services

from tests.deploy.support import (
    NOT_BROKER_USERS,
    ROOT,
    broker_users,
    compose_services,
    prepare_demo,
    wattbus_environments,
)

DOCUMENTS = ("README.md", "compose.yaml", "config/embedded.toml", "config/wattbus.example.toml",
             "mosquitto/make-passwords.sh")
TOP = r"\.run|config|mosquitto|grafana|influxdb|services|docs|shared|simulators|secrets|bench|reliability|deploy"
REPO_PATH = re.compile(rf"(?<![\w/.$-])(?:\./)?((?:{TOP})/[\w.*<>-]+(?:/[\w.*<>-]+)*|compose(?:\.[\w-]+)?\.yaml)")
CP_CONFIG = re.compile(r"\bcp (\S+) config/wattbus\.toml")


def claimed_paths(text: str) -> set[str]:
    """Repository paths in a text; an image name (`grafana/grafana-oss:11`) is none."""
    return {m.group(1).rstrip(".").rstrip(">") if "<" not in m.group(1) else m.group(1)
            for m in REPO_PATH.finditer(text) if not text.startswith(":", m.end())}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make run` writes into .run/ (prepared only, nothing started)."""
    run_dir = tmp_path_factory.mktemp("run")
    prepare_demo(run_dir, 1883)
    return run_dir


def made_by_a_step(path: str, readme: str, demo_files: Path) -> bool:
    """Files a documented step creates: make run, make-passwords.sh, README's cp commands."""
    if path.startswith(".run/"):
        return (demo_files / path.removeprefix(".run/")).exists()
    if path.startswith("secrets/"):
        return path.removeprefix("secrets/") in (*broker_users(), *NOT_BROKER_USERS)
    if path == "mosquitto/passwd":
        return 'passwd=${WATTBUS_PASSWD_FILE:-$here/passwd}' in (ROOT / "mosquitto" / "make-passwords.sh").read_text()
    copied = {m.group(2) for m in re.finditer(r"\bcp (\S+) (\S+)", readme) if (ROOT / m.group(1)).exists()}
    return path in copied


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_file_a_document_names_exists_or_a_step_makes_it(document: str, demo_files: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    missing = []
    for path in sorted(claimed_paths((ROOT / document).read_text())):
        if "<" in path or (path.startswith("secrets/") and "{" in path):
            continue  # a placeholder: secrets/<user>
        exists = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
        if not exists and not made_by_a_step(path, readme, demo_files):
            missing.append(path)
    assert not missing, f"{document} names files nobody has: {missing}"


def test_the_path_finder_sees_what_it_must() -> None:
    text = ("run `mosquitto/make-passwords.sh`, see ./influxdb/dbrp.sh and docs/fleet.md. Not /etc/wattbus/x.toml "
            "nor grafana/grafana-oss:11.3.0; <the content of secrets/influxdb-token> and secrets/<user>")
    assert claimed_paths(text) == {"mosquitto/make-passwords.sh", "influxdb/dbrp.sh", "docs/fleet.md",
                                   "secrets/influxdb-token", "secrets/<user>"}


@pytest.mark.parametrize("document", ["README.md", "compose.yaml"])
def test_the_config_a_document_copies_runs_every_service(document: str) -> None:
    """The issue's first blocker: README copied a file holding only [bus]."""
    sources = CP_CONFIG.findall((ROOT / document).read_text())
    assert sources, f"{document} has no `cp ... config/wattbus.toml` step"
    for source in sources:
        for service, env in wattbus_environments().items():
            loaded = load(ROOT / source, environ=env)
            assert service in loaded.data, f"{source} has no [{service}] section"
            loaded.section(service, load_service(service).config_type)  # raises ConfigError if invalid
    assert set(wattbus_environments()) == set(installed_services())


def test_readme_compose_steps_come_in_an_order_that_works() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Docker Compose"):text.index("## Development")]
    steps = ["sudo mosquitto/make-passwords.sh", "cp config/wattbus.example.toml config/wattbus.toml",
             "docker compose up -d", "docker compose ps"]
    at = [section.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), dict(zip(steps, at, strict=True))
    assert "docker compose up -d --scale influx-writer=3" in section
    assert "cp compose.serial.yaml compose.override.yaml" in section
    assert (ROOT / "compose.serial.yaml").exists(), "README's serial step copies compose.serial.yaml"
    for secret in re.findall(r"sudo cat secrets/([\w-]+)", section):
        assert secret in (*broker_users(), *NOT_BROKER_USERS), secret


def test_grafana_reads_its_token_from_a_secret_compose_mounts_for_it() -> None:
    doc = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "wattbus.yaml").read_text())
    [source] = doc["datasources"]
    grafana = compose_services()["grafana"]
    text = json.dumps(source)
    files = re.findall(r"\$__file\{([^}]+)\}", text)
    assert files == ["/run/secrets/influxdb-token"]
    assert Path(files[0]).name in grafana["secrets"]
    environment = grafana.get("environment") or {}
    for variable in re.findall(r"\$\{?(\w+)", text.replace("$__file{", "")):
        assert variable in environment, f"the data source needs ${variable}: no manual .env step is allowed"
    # InfluxDB 2's 1.x query API with an API token: `Authorization: Token <token>`
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"].startswith("Token $__file{")
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()  # type: ignore[union-attr]
    assert host in compose_services() and f"{port}:{port}" in compose_services()[host]["ports"]
    dbrp = (ROOT / "influxdb" / "dbrp.sh").read_text()
    assert f"--db {source['jsonData']['dbName']} " in dbrp
    for dashboard in (ROOT / "grafana" / "dashboards").glob("*.json"):
        uids = set(re.findall(r'"datasource":\s*\{[^}]*"uid":\s*"([^"]+)"', dashboard.read_text()))
        assert uids <= {source["uid"]}, f"{dashboard.name} uses data sources {uids}"
