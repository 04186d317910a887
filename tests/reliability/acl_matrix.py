"""The broker ACL matrix: expectations from data/acl_matrix.toml, checked against a real Mosquitto."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbus.embedded import BrokerFiles, broker_users

from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe

DATA = Path(__file__).parent / "data" / "acl_matrix.toml"
EVERYONE = "admin"  # the one user the shared [every_user] rules do not apply to


@dataclass
class Expectation:
    user: str
    publish_allowed: list[str] = field(default_factory=list)
    publish_denied: list[str] = field(default_factory=list)
    read_allowed: list[str] = field(default_factory=list)
    read_denied: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """One cell of the matrix that did not match: what was expected and what the broker did."""

    user: str
    action: str  # publish | read
    topic: str
    expected: str
    observed: str


def expectations(root: Path) -> dict[str, Expectation]:
    data: dict[str, Any] = tomllib.loads(DATA.read_text())
    every, users = data["every_user"], data["users"]
    result: dict[str, Expectation] = {}
    for user in broker_users(root):
        if user not in users:
            raise KeyError(f"mosquitto/users.txt has {user!r} but {DATA.name} has no [users.{user}] section")
        own = users[user]
        exempt = set(own.get("exempt", []))
        exp = Expectation(user, list(own.get("publish_allowed", [])), list(own.get("publish_denied", [])),
                          list(own.get("read_allowed", [])), list(own.get("read_denied", [])))
        if user != EVERYONE:
            exp.publish_allowed += [t.format(user=user) for t in every["publish_allowed"]]
            exp.publish_denied += [t for t in every["publish_denied"] if t not in exempt]
            exp.read_allowed += [t for t in (r.format(user=user) for r in every["read_allowed"]) if t not in exempt]
            exp.read_denied += [t for t in every["read_denied"] if t not in exempt and t not in exp.read_allowed]
        result[user] = exp
    return result


def check_user(files: BrokerFiles, admin: str, exp: Expectation) -> tuple[int, list[Outcome]]:
    """Run every cell for one user; returns (cells checked, mismatches)."""
    wrong: list[Outcome] = []
    probe = Probe(files.port, exp.user, files.password(exp.user))
    sender = Probe(files.port, admin, files.password(admin))
    try:
        reason = probe.connect()
        if reason is None or reason.is_failure:
            return 1, [Outcome(exp.user, "connect", "-", "accepted", str(reason))]
        for topic in exp.publish_allowed:
            code = probe.publish_reason(topic)
            if code >= 0x80:
                wrong.append(Outcome(exp.user, "publish", topic, "allowed", f"PUBACK 0x{code:02x}"))
        for topic in exp.publish_denied:
            code = probe.publish_reason(topic)
            if code != NOT_AUTHORIZED:
                wrong.append(Outcome(exp.user, "publish", topic, "denied (0x87)", f"PUBACK 0x{code:02x}"))
        probe.subscribe("#")
        assert sender.connect() is not None
        marker = f"end-{exp.user}"
        for topic in [*exp.read_allowed, *exp.read_denied]:
            sender.publish_reason(topic, b"acl-probe")
        # The marker goes last on a topic the user may read; once it arrives, earlier ones have too
        # (the broker keeps per-client order for QoS 1).
        sender.publish_reason(f"wattbus/v1/service/acl-probe/{marker}/status", b"end")
        deadline = time.monotonic() + 15
        while f"wattbus/v1/service/acl-probe/{marker}/status" not in probe.topics_received():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{exp.user}: marker message never arrived")
            time.sleep(0.02)
        got = probe.topics_received()
        wrong += [Outcome(exp.user, "read", t, "delivered", "not delivered") for t in exp.read_allowed if t not in got]
        wrong += [Outcome(exp.user, "read", t, "not delivered", "delivered") for t in exp.read_denied if t in got]
        cells = len(exp.publish_allowed) + len(exp.publish_denied) + len(exp.read_allowed) + len(exp.read_denied)
        return cells, wrong
    finally:
        probe.close()
        sender.close()
