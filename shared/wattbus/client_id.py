"""MQTT client ids bound to the account's secret (issue 21: client-id takeover)."""

from __future__ import annotations

import hashlib
import hmac

CLIENT_ID_TAG_HEX = 16  # 64 bits: not guessable by trying ids against the broker


def bound_client_id(base: str, user: str | None, password: str | None) -> str:
    """The MQTT client id for `base` (`<service>-<instance>`), bound to the account's secret.

    Mosquitto lets any login take any client id, and a new connection with an id in use kicks the
    old one and inherits its persistent session (issue 21: the writer's queued readings went to an
    intruder). The broker has no per-account client-id rule (`clientid_prefixes` is global,
    `use_username_as_clientid` allows one connection per account, the dynamic-security plugin binds
    one exact id), so the id carries a tag only the account's password yields: stable across
    restarts (the session survives), different per instance and per helper connection, unknown to
    every other account. Without a password (an anonymous demo login) there is nothing to bind to.
    """
    if not password:
        return base
    tag = hmac.new(password.encode(), f"wattbus client id\0{user or ''}\0{base}".encode(), hashlib.sha256)
    return f"{base}-{tag.hexdigest()[:CLIENT_ID_TAG_HEX]}"
