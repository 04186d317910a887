"""mosquitto/make-passwords.sh: every secret compose.yaml mounts, readable by the services only,
and a passwd file that the shipped broker config (run by real Mosquitto) accepts."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wattbus.embedded import broker_plugin

from tests.deploy.support import (
    NOT_BROKER_USERS,
    ROOT,
    SERVICE_GID,
    broker_users,
    compose_secret_files,
    compose_services,
    wattbus_environments,
)
from tests.reliability.mqtt_probe import Probe
from tests.support.servers import free_port, require, wait_port

SCRIPT = ROOT / "mosquitto" / "make-passwords.sh"
IMAGE_PLUGIN = "/usr/lib/mosquitto/wattbus_client_ids.so"  # where mosquitto/Dockerfile puts the client-id plugin
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@dataclass
class Made:
    base: Path  # world-traversable, like the paths Docker bind-mounts into containers
    secrets: Path
    passwd: Path
    output: str

    def run(self) -> subprocess.CompletedProcess[str]:
        return run_script(self.secrets, self.passwd)


def run_script(secrets: Path, passwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"WATTBUS_SECRETS_DIR": str(secrets), "WATTBUS_PASSWD_FILE": str(passwd), "PATH": PATH}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def made() -> Iterator[Made]:
    if os.geteuid() != 0:
        pytest.skip("make-passwords.sh gives its files to root and group 10001: run the suite as root")
    require("mosquitto_passwd", "mosquitto")
    base = Path(tempfile.mkdtemp(prefix="wattbus-secrets-"))
    base.chmod(0o755)  # the broker below drops to user mosquitto, which must reach config/passwd
    (base / "config").mkdir(mode=0o755)
    done = run_script(base / "secrets", base / "config" / "passwd")
    assert done.returncode == 0, done.stderr
    yield Made(base, base / "secrets", base / "config" / "passwd", done.stdout)
    shutil.rmtree(base)


def secret_text(made: Made, name: str) -> str:
    return (made.secrets / name).read_text()


def test_every_secret_compose_mounts_is_made_for_the_services_group_only(made: Made) -> None:
    folder = made.secrets.stat()
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (0, 0o700)
    wanted = {path.name for path in compose_secret_files().values()}
    assert all(path.parent.name == "secrets" for path in compose_secret_files().values())
    made_names = {p.name for p in made.secrets.iterdir()}
    assert wanted <= made_names, f"compose mounts secrets the script does not make: {wanted - made_names}"
    assert made_names == set(broker_users()) | set(NOT_BROKER_USERS)
    for name in made_names:
        info = (made.secrets / name).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, SERVICE_GID, 0o440), name
        assert len(secret_text(made, name)) >= 24, name
    assert len({secret_text(made, name) for name in made_names}) == len(made_names)  # all different


def test_the_summary_names_the_files_and_never_a_secret(made: Made) -> None:
    for name in sorted(p.name for p in made.secrets.iterdir()):
        assert name in made.output
        assert secret_text(made, name) not in made.output
    assert f"sudo cat {made.secrets}/http-api-token" in made.output
    assert f"sudo cat {made.secrets}/homeassistant" in made.output
    assert f"({len(broker_users())} users)" in made.output


def test_passwd_holds_a_hash_for_every_broker_user(made: Made) -> None:
    text = made.passwd.read_text()
    assert [line.split(":", 1)[0] for line in text.splitlines()] == broker_users()
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())  # PBKDF2-SHA512
    assert not any(secret_text(made, user) in text for user in broker_users())
    assert stat.S_IMODE(made.passwd.stat().st_mode) == 0o644  # only hashes: the broker's own user reads it


def test_running_again_keeps_the_secrets_and_repairs_owner_and_mode(made: Made) -> None:
    before = {p.name: p.read_text() for p in made.secrets.iterdir()}
    loosened, emptied = made.secrets / "influx-writer", made.secrets / "grafana-password"
    os.chown(loosened, 0, 0)
    loosened.chmod(0o644)  # what the script wrote before the services ran as uid 10001
    emptied.chmod(0o600)
    emptied.write_text("")
    done = made.run()
    assert done.returncode == 0, done.stderr
    after = {p.name: p.read_text() for p in made.secrets.iterdir()}
    assert after["grafana-password"] and after["grafana-password"] != before["grafana-password"]
    del before["grafana-password"], after["grafana-password"]
    assert after == before
    info = loosened.stat()
    assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (SERVICE_GID, 0o440)
    assert "created: grafana-password" in done.stdout and "influx-writer" in done.stdout.split("kept:")[1]


def mosquitto_conf(made: Made, port: int) -> Path:
    """The shipped mosquitto.conf with the container's paths moved into the test's folder."""
    shipped = (ROOT / "mosquitto" / "mosquitto.conf").read_text()
    for needed in ("/mosquitto/config/passwd", "/mosquitto/config/acl", "/mosquitto/data/", "listener 1883\n",
                   IMAGE_PLUGIN):
        assert needed in shipped, f"mosquitto.conf no longer has {needed!r}: update this test"
    data = made.base / "data"
    data.mkdir(exist_ok=True)
    broker_user = pwd.getpwnam("mosquitto")
    os.chown(data, broker_user.pw_uid, broker_user.pw_gid)
    (made.base / "config" / "conf.d").mkdir(exist_ok=True)
    shutil.copy(ROOT / "mosquitto" / "acl", made.base / "config" / "acl")
    shutil.copy(ROOT / "mosquitto" / "users.txt", made.base / "config" / "users.txt")  # the id plugin's accounts
    conf = made.base / "config" / "mosquitto.conf"
    conf.write_text(shipped.replace("/mosquitto/config/", f"{made.base}/config/")
                    .replace(IMAGE_PLUGIN, str(broker_plugin(ROOT)))
                    .replace("/mosquitto/data/", f"{data}/")
                    .replace("listener 1883\n", f"listener {port} 127.0.0.1\n"))
    return conf


@pytest.fixture(scope="module")
def compose_broker(made: Made) -> Iterator[int]:
    """Real Mosquitto with the shipped config, ACL and the generated passwd; as in the official
    image it starts as root and drops to its own user `mosquitto`."""
    port = free_port()
    conf = mosquitto_conf(made, port)
    with (made.base / "mosquitto.log").open("ab") as log:
        proc = subprocess.Popen([require("mosquitto", "mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def connack(port: int, user: str | None, password: str | None) -> int | None:
    probe = Probe(port, user, password)
    try:
        reason = probe.connect(timeout=10)
        return None if reason is None else reason.value
    finally:
        probe.close()


def test_the_shipped_broker_accepts_each_generated_login(made: Made, compose_broker: int) -> None:
    users = [*wattbus_environments(), "admin", "homeassistant"]
    for user in users:
        assert connack(compose_broker, user, secret_text(made, user)) == 0, f"{user} refused with its secret"
    assert connack(compose_broker, "admin", secret_text(made, "sml-reader")) not in (0, None)  # another's
    assert connack(compose_broker, None, None) not in (0, None)  # anonymous: refused in compose


def test_admin_sees_readings_that_a_service_publishes(made: Made, compose_broker: int) -> None:
    """The README's first look, `mosquitto_sub -u admin`, against the generated users and the ACL."""
    admin = Probe(compose_broker, "admin", secret_text(made, "admin"))
    bridge = Probe(compose_broker, "sml-reader", secret_text(made, "sml-reader"))
    try:
        assert admin.connect() is not None and bridge.connect() is not None
        admin.subscribe("wattbus/v1/device/+/+/reading")
        assert bridge.publish_reason("wattbus/v1/device/sml-reader/meter-grid/reading", b"{}") == 0
        assert bridge.publish_reason("wattbus/v1/device/giv-bridge/x/reading", b"{}") != 0  # not its space
        deadline = time.monotonic() + 5
        while "wattbus/v1/device/sml-reader/meter-grid/reading" not in admin.topics_received():
            assert time.monotonic() < deadline, "admin did not receive the reading"
            time.sleep(0.02)
        assert admin.topics_received() == {"wattbus/v1/device/sml-reader/meter-grid/reading"}
    finally:
        admin.close()
        bridge.close()


def read_as(path: Path, uid: int, gid: int, groups: str) -> subprocess.CompletedProcess[str]:
    setpriv = require("setpriv", "util-linux")
    return subprocess.run([setpriv, f"--reuid={uid}", f"--regid={gid}", f"--groups={groups}" if groups
                           else "--clear-groups", "cat", str(path)], capture_output=True, text=True, timeout=10)


def test_a_secret_opens_for_the_services_group_and_no_one_else(made: Made) -> None:
    """Compose bind-mounts the file itself: only its owner, group and mode count, as checked here
    through a hard link (same inode) in a folder everyone may enter."""
    link = made.base / "mounted-admin"
    os.link(made.secrets / "admin", link)
    try:
        assert read_as(link, SERVICE_GID, SERVICE_GID, "").stdout == secret_text(made, "admin")  # image user
        broker_user = pwd.getpwnam("mosquitto")
        assert read_as(link, broker_user.pw_uid, broker_user.pw_gid, "").returncode != 0
        with_group = read_as(link, broker_user.pw_uid, broker_user.pw_gid, str(SERVICE_GID))  # group_add
        assert with_group.stdout == secret_text(made, "admin")
        nobody = read_as(link, 65534, 65534, "")
        assert nobody.returncode != 0 and "Permission denied" in nobody.stderr
    finally:
        link.unlink()


def test_a_passwd_directory_left_by_docker_is_replaced(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("make-passwords.sh needs root")
    (tmp_path / "passwd").mkdir()  # `docker compose up` before the script creates the missing mount source
    done = run_script(tmp_path / "secrets", tmp_path / "passwd")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "passwd").is_file() and "removed the empty directory" in done.stderr


def test_without_root_or_sudo_it_stops_and_says_why() -> None:
    """A machine without sudo: the script must not half-run as another user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    with tempfile.TemporaryDirectory(prefix="wattbus-nobody-") as folder:
        check_refused_without_root(Path(folder))


def check_refused_without_root(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "basename", "id"):
        found = shutil.which(tool, path=PATH)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    tmp_path.chmod(0o755)
    setpriv = require("setpriv", "util-linux")
    done = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", str(SCRIPT)],
                          env={"PATH": str(tools), "WATTBUS_SECRETS_DIR": str(tmp_path / "secrets"),
                               "WATTBUS_PASSWD_FILE": str(tmp_path / "passwd")},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "must run as root" in done.stderr and "sudo is not installed" in done.stderr
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "passwd").exists()


def test_compose_healthcheck_of_the_broker_passes_with_the_generated_admin(made: Made, compose_broker: int) -> None:
    """compose.yaml's mosquitto healthcheck, run as written against the shipped config and ACL."""
    kind, command = compose_services()["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and "-h 127.0.0.1 " in command
    command = (command.replace("$$", "$").replace("/run/secrets/", f"{made.secrets}/")
               .replace("-h 127.0.0.1 ", f"-h 127.0.0.1 -p {compose_broker} "))
    require("mosquitto_sub", "mosquitto-clients")
    deadline = time.monotonic() + 20  # $SYS topics appear at the broker's first sys_interval (10 s)
    while (done := subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)).returncode:
        assert time.monotonic() < deadline, f"healthcheck failed: {done.stderr}"
