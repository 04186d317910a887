"""`instance = "auto"`: a name of its own for each replica of `docker compose up --scale`.

A container on a compose network gets its short container id (12 hex digits) as its hostname, so
the hostname names a replica. A container on the host's network (`network_mode: host`, the
discovery service) sees the host's hostname, the same in every replica; its container id still
shows in the bind mounts the engine makes for /etc/hostname, /etc/hosts and /etc/resolv.conf
(`.../docker/containers/<id>/hostname`, Podman `.../overlay-containers/<id>/userdata/hostname`),
whatever the cgroup version. So `auto` is the hostname, plus the short container id when the two
differ: distinct per container, stable across a restart of the same container, and unchanged for
everything that already ran on a compose network or outside a container.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from . import topics

MOUNTINFO = Path("/proc/self/mountinfo")
SHORT_ID = 12  # what `docker ps` shows, and the engine's default hostname
_CONTAINER_MOUNT = re.compile(r"containers/([0-9a-f]{64})/")


def container_id(mountinfo: Path = MOUNTINFO) -> str | None:
    """This process's container id from the engine's bind mounts, None outside a container."""
    try:
        text = mountinfo.read_text(errors="replace")
    except OSError:  # no /proc (not Linux) or not readable: no container to tell apart
        return None
    found = _CONTAINER_MOUNT.search(text)
    return found.group(1) if found else None


def auto_instance(hostname: str | None = None, mountinfo: Path = MOUNTINFO) -> str:
    name = topics.slug(hostname if hostname is not None else socket.gethostname())
    cid = container_id(mountinfo)
    if cid is None or name == cid[:SHORT_ID]:
        return name
    return f"{name}-{cid[:SHORT_ID]}"


def resolve_instance(configured: str) -> str:
    """`auto` gives each replica of `docker compose --scale` its own id (auto_instance)."""
    if configured == "auto":
        return auto_instance()
    return topics.segment(configured, "instance")
