"""`instance = "auto"`: each container gets a name of its own, also on the host's network (issue 26).

Two "containers" here are two real processes, each in a mount namespace of its own where
/etc/hostname is bind-mounted from `<dir>/containers/<id>/hostname`, exactly as Docker does it;
both share the host's hostname, as discovery's replicas do under `network_mode: host`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from wattbus.instance import auto_instance, container_id, resolve_instance

DOCKER_ID = "4f1d2c" + "a" * 58
PODMAN_ID = "9e8b7c" + "b" * 58
DOCKER_LINE = (f"622 600 259:2 /var/lib/docker/containers/{DOCKER_ID}/hostname /etc/hostname rw,relatime - "
               "ext4 /dev/nvme0n1p2 rw\n")
PODMAN_LINE = (f"77 61 0:44 /containers/storage/overlay-containers/{PODMAN_ID}/userdata/hostname /etc/hostname "
               "rw,nosuid,nodev - tmpfs tmpfs rw\n")


def test_the_container_id_comes_from_the_engines_bind_mounts(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("21 1 0:20 / / rw - overlay overlay rw\n" + DOCKER_LINE)
    assert container_id(info) == DOCKER_ID
    info.write_text(PODMAN_LINE)
    assert container_id(info) == PODMAN_ID
    info.write_text("21 1 0:20 / / rw - ext4 /dev/sda1 rw\n")  # a process outside any container
    assert container_id(info) is None
    assert container_id(tmp_path / "missing") is None


def test_auto_names_apart_only_where_the_hostname_does_not(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(DOCKER_LINE)
    # A compose network: the hostname is the short container id already, nothing changes.
    assert auto_instance(DOCKER_ID[:12], info) == DOCKER_ID[:12]
    # The host's network: the host's name plus the short container id.
    assert auto_instance("Pi-House", info) == f"pi-house-{DOCKER_ID[:12]}"
    info.write_text("21 1 0:20 / / rw - ext4 /dev/sda1 rw\n")
    assert auto_instance("Pi-House", info) == "pi-house"
    assert resolve_instance("main") == "main"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a mount namespace per process")
def test_two_host_network_containers_get_two_names(tmp_path: Path) -> None:
    names = []
    for cid in (DOCKER_ID, PODMAN_ID):
        hostname = tmp_path / "containers" / cid / "hostname"
        hostname.parent.mkdir(parents=True)
        hostname.write_text(socket.gethostname() + "\n")
        script = "from wattbus.runner import resolve_instance; print(resolve_instance('auto'))"
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", 'mount --bind "$1" /etc/hostname && exec "$2" -c "$3"', "sh",
             str(hostname), sys.executable, script], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        names.append(done.stdout.strip())
    host = auto_instance(socket.gethostname(), tmp_path / "none")
    assert names == [f"{host}-{DOCKER_ID[:12]}", f"{host}-{PODMAN_ID[:12]}"]
