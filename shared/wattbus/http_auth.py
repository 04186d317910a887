"""HTTP authentication for `wattbus.http_client`: Basic (RFC 7617) and Digest (RFC 7616).

Only hashlib's named constructors are used: when OpenSSL's `_hashlib` cannot be loaded (a plain-HTTP
service keeps OpenSSL out of its resident set), hashlib falls back to CPython's builtin md5/sha256.
Shelly Gen2/Gen3 devices ask for SHA-256 digest (user `admin`); older embedded servers for MD5.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Digest algorithms we answer, best first when a server offers several challenges (RFC 7616 3.7).
_HASHES: dict[str, Callable[[bytes], Any]] = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}


class AuthError(ValueError):
    """A challenge we cannot answer (malformed, or an algorithm/qop we do not implement)."""


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password: str

    def header(self, _method: str = "", _uri: str = "") -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def parse_challenges(value: str) -> list[tuple[str, dict[str, str]]]:
    """`WWW-Authenticate` field value(s) -> [(scheme lower-case, {param lower-case: value})].

    Several challenges may share one field, separated by commas like their parameters; a token
    followed by `=` is a parameter of the current challenge, any other token starts a new one.
    token68 forms (`Negotiate abc==`) are skipped: we only answer Digest parameters.
    """
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] in " \t,":
            i += 1
            continue
        match = _TOKEN.match(value, i)
        if match is None:
            raise AuthError(f"unexpected {value[i]!r} at offset {i} of the challenge")
        name, i = match.group(), match.end()
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and out and not value.startswith("=", j + 1):
            j += 1
            while j < n and value[j] in " \t":
                j += 1
            param, i = _param_value(value, j)
            out[-1][1][name.lower()] = param
        elif j < n and value[j] == "=":  # token68 padding or `=` without a challenge: skip the token
            while j < n and value[j] not in ",":
                j += 1
            i = j
        else:
            out.append((name.lower(), {}))
    return out


def _param_value(value: str, i: int) -> tuple[str, int]:
    if i < len(value) and value[i] == '"':
        chars: list[str] = []
        i += 1
        while i < len(value):
            c = value[i]
            if c == "\\" and i + 1 < len(value):
                chars.append(value[i + 1])
                i += 2
                continue
            if c == '"':
                return "".join(chars), i + 1
            chars.append(c)
            i += 1
        raise AuthError("unterminated quoted string in the challenge")
    match = _TOKEN.match(value, i)
    if match is None:
        raise AuthError(f"parameter without a value at offset {i} of the challenge")
    return match.group(), match.end()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestAuth:
    """Digest credentials plus the server's latest challenge, reused for the following requests.

    Reusing the nonce (with an increasing nonce count) saves the 401 round trip on every poll; the
    client retries once when the server rejects it (a new or stale nonce).
    """

    def __init__(self, username: str, password: str, cnonce: Callable[[], str] | None = None) -> None:
        self.username = username
        self.password = password
        # The client nonce: random per request; a fixed one only reproduces RFC 7616's examples.
        self._cnonce = cnonce or (lambda: os.urandom(12).hex())
        self._challenge: dict[str, str] | None = None
        self._nc = 0

    def header(self, method: str, uri: str) -> str | None:
        """The Authorization value for a request, or None before the first challenge."""
        challenge = self._challenge
        if challenge is None:
            return None
        algorithm = challenge.get("algorithm", "MD5").upper()
        session = algorithm.endswith("-SESS")
        digest = _HASHES[algorithm.removesuffix("-SESS")]

        def h(text: str) -> str:
            return str(digest(text.encode()).hexdigest())

        realm, nonce = challenge.get("realm", ""), challenge["nonce"]
        qops = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
        cnonce = self._cnonce()
        ha1 = h(f"{self.username}:{realm}:{self.password}")
        if session:
            ha1 = h(f"{ha1}:{nonce}:{cnonce}")
        ha2 = h(f"{method}:{uri}")
        userhash = challenge.get("userhash", "").lower() == "true"
        user = h(f"{self.username}:{realm}") if userhash else self.username
        parts = [f"username={_quote(user)}", f"realm={_quote(realm)}", f"nonce={_quote(nonce)}",
                 f"uri={_quote(uri)}", f"algorithm={challenge.get('algorithm', 'MD5')}"]
        if qops:  # RFC 7616 (qop=auth)
            self._nc += 1
            nc = f"{self._nc:08x}"
            response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += [f"response={_quote(response)}", "qop=auth", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
        else:  # RFC 2069 servers that send no qop
            parts.append(f"response={_quote(h(f'{ha1}:{nonce}:{ha2}'))}")
        if "opaque" in challenge:
            parts.append(f"opaque={_quote(challenge['opaque'])}")
        if userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)

    def answer(self, www_authenticate: list[str], method: str, uri: str, sent: bool) -> str | None:
        """The Authorization value for retrying a request the server answered with 401, or None
        when a retry cannot help (no Digest challenge, or our digest for the same nonce refused)."""
        return self.header(method, uri) if self.accept(www_authenticate, sent) else None

    def accept(self, www_authenticate: list[str], sent: bool) -> bool:
        """Take the best Digest challenge of a 401; True when retrying with it can help.

        `sent`: the rejected request carried our digest already. Then only a new nonce (or
        stale=true) is worth a retry; the same nonce again means the password is wrong.
        """
        offered = [params for value in www_authenticate for scheme, params in parse_challenges(value)
                   if scheme == "digest"]
        if not offered:
            return False
        usable = [p for p in offered if p.get("algorithm", "MD5").upper().removesuffix("-SESS") in _HASHES]
        if not usable:
            names = ", ".join(sorted({p.get("algorithm", "MD5") for p in offered}))
            raise AuthError(f"digest algorithm {names} is not supported (SHA-256 and MD5 are)")
        order = list(_HASHES)
        best = min(usable, key=lambda p: order.index(p.get("algorithm", "MD5").upper().removesuffix("-SESS")))
        if "nonce" not in best:
            raise AuthError("digest challenge without a nonce")
        qops = [q.strip().lower() for q in best.get("qop", "").split(",") if q.strip()]
        if qops and "auth" not in qops:
            raise AuthError(f"digest qop {best['qop']!r} is not supported (qop=auth is)")
        previous = self._challenge
        self._challenge = best
        if previous is None or previous.get("nonce") != best["nonce"]:
            self._nc = 0
        stale = best.get("stale", "").lower() == "true"
        return not sent or stale or previous is None or previous.get("nonce") != best["nonce"]
