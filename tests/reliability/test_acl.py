"""Security: the broker ACL for every service user, anonymous access, bad logins and the TLS listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wattbus.embedded import broker_users

from tests.reliability.acl_matrix import check_user, expectations
from tests.reliability.brokers import Broker, make_certs
from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.reliability.waiting import wait_for
from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto

USERS = broker_users(ROOT)


def test_every_user_has_expectations() -> None:
    exp = expectations(ROOT)
    assert set(exp) == set(USERS)
    for user in USERS:
        if user != "admin":  # every service must be refused something, or the ACL is not limiting it
            assert exp[user].publish_denied and exp[user].read_denied, user


@pytest.mark.parametrize("user", USERS)
def test_acl_matrix(broker: Mosquitto, user: str) -> None:
    cells, wrong = check_user(broker.files, TEST_ADMIN, expectations(ROOT)[user])
    assert cells >= 5
    assert not wrong, "\n".join(f"{w.user} {w.action} {w.topic}: expected {w.expected}, got {w.observed}"
                                for w in wrong)


@pytest.mark.parametrize("login", [None, ("sml-reader", "wrong-password"), ("nobody", "x"), ("admin", "")])
def test_bad_logins_refused(broker: Mosquitto, login: tuple[str, str] | None) -> None:
    probe = Probe(broker.port, *(login or (None, None)))
    try:
        reason = probe.connect()
        assert reason is not None and reason.is_failure, f"{login} was let in: {reason}"
        assert reason.value in (0x86, 0x87), str(reason)  # bad user name or password / not authorized
    finally:
        probe.close()


@pytest.fixture
def demo_broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "demo", anonymous=True)
    server.start()
    yield server
    server.stop()


def test_embedded_demo_anonymous_is_read_only(demo_broker: Broker) -> None:
    anon = Probe(demo_broker.port, None, None)
    admin = Probe(demo_broker.port, TEST_ADMIN, demo_broker.files.password(TEST_ADMIN))
    try:
        assert (reason := anon.connect()) is not None and not reason.is_failure
        for topic in ("wattbus/v1/device/goe-shelly-bridge/goe-1/command", "wattbus/v1/device/x/y/reading",
                      "wattbus/v1/loadpoint/lp1/command", "homeassistant/status", "plain/topic"):
            assert anon.publish_reason(topic) == NOT_AUTHORIZED, topic
        anon.subscribe("#")
        assert admin.connect() is not None
        for topic in ("plain/topic", "wattbus/v1/device/x/y/reading", "homeassistant/status"):
            admin.publish_reason(topic)
        wait_for(lambda: "homeassistant/status" in anon.topics_received(), "anonymous read of homeassistant/#")
        assert "wattbus/v1/device/x/y/reading" in anon.topics_received()
        assert "plain/topic" not in anon.topics_received()
    finally:
        anon.close()
        admin.close()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    ca = make_certs(tmp_path / "certs")
    server = Broker(tmp_path / "tls", anonymous=False, tls_dir=ca.parent)
    server.start()
    yield server, ca
    server.stop()


def test_tls_listener(tls_broker: tuple[Broker, Path], tmp_path: Path) -> None:
    server, ca = tls_broker
    assert server.tls_port
    good = Probe(server.tls_port, "sml-reader", server.files.password("sml-reader"), tls_ca=str(ca))
    other_ca = make_certs(tmp_path / "other", "stranger")
    stranger = Probe(server.tls_port, "sml-reader", server.files.password("sml-reader"), tls_ca=str(other_ca))
    plain = Probe(server.tls_port, "sml-reader", server.files.password("sml-reader"))
    anon = Probe(server.tls_port, None, None, tls_ca=str(ca))
    try:
        assert (reason := good.connect()) is not None and not reason.is_failure
        # the ACL holds on the TLS listener too
        assert good.publish_reason("wattbus/v1/device/goe-shelly-bridge/goe-1/command") == NOT_AUTHORIZED
        assert good.publish_reason("wattbus/v1/device/sml-reader/emh-1/reading") < 0x80
        assert stranger.connect(timeout=5) is None, "a server certificate from an unknown CA was accepted"
        assert plain.connect(timeout=5) is None, "plain MQTT was answered on the TLS port"
        reason = anon.connect()
        assert reason is not None and reason.is_failure, "anonymous login accepted on the TLS listener"
    finally:
        for probe in (good, stranger, plain, anon):
            probe.close()
