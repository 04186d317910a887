"""MQTT client ids inside the account's namespace, bound to its secret (issue 21: client-id takeover)."""

from __future__ import annotations

import hashlib
import hmac

CLIENT_ID_TAG_HEX = 16  # 64 bits: not guessable by trying ids against the broker


def bound_client_id(base: str, user: str | None, password: str | None) -> str:
    """The MQTT client id for `base` (`<service>-<instance>`) as account `user`.

    Mosquitto lets any login take any client id, and a new connection with an id in use kicks the
    old one and inherits its persistent session (issue 21: the writer's queued readings went to an
    intruder). The broker's plugin (mosquitto/plugin/) binds ids to accounts: a user may only use
    `<user>` or `<user>-...`, and nobody else may use those. So the id starts with the user's name
    (a service logged in as itself keeps `<service>-<instance>`; as another account, e.g. `admin`,
    it becomes `admin-<service>-<instance>`). It also carries a tag only the account's password
    yields: stable across restarts (the session survives), different per instance and per helper
    connection, and not guessable where the broker cannot bind ids (an anonymous demo client may
    use any id no account owns). Without a password there is nothing to bind the tag to.
    """
    tag_input = f"wattbus client id\0{user or ''}\0{base}".encode()
    if user and base != user and not base.startswith(f"{user}-"):
        base = f"{user}-{base}"
    if not password:
        return base
    tag = hmac.new(password.encode(), tag_input, hashlib.sha256)
    return f"{base}-{tag.hexdigest()[:CLIENT_ID_TAG_HEX]}"
