"""Who may write or read the config: the bearer token (or a trusted network), and a brake on guessing.

Wrong tokens cost a client address one unit of a token bucket (`auth_failures_burst`, refilled at
`auth_failures_per_min`). An empty bucket answers 429 with Retry-After before the token is looked at,
so guessing runs at the refill rate. Only the guessing address waits: the right token from any other
address is checked as usual, and the bucket refills by itself (nobody is locked out for good).
IPv6 clients are counted per /64, the block one host usually owns.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 4096  # buckets kept; full (refilled) ones go first


def client_key(remote: str | None) -> str:
    """One client for limits: its IPv4 address, or the /64 of an IPv6 one (a host's usual block)."""
    try:
        address = ipaddress.ip_address((remote or "").split("%", 1)[0])
    except ValueError:
        return remote or "?"
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if address.version == 6 else str(address)


@dataclass
class _Bucket:
    level: float
    at: float


class AuthThrottle:
    def __init__(self, burst: int, per_min: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = per_min / 60.0
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}

    def _level(self, key: str, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            return float(self.burst)
        return min(float(self.burst), bucket.level + (now - bucket.at) * self.rate)

    def wait_s(self, remote: str | None) -> float:
        """0 when this address may try a token now, else seconds until it may."""
        level = self._level(client_key(remote), self.clock())
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def failed(self, remote: str | None) -> None:
        now = self.clock()
        key = client_key(remote)
        level = self._level(key, now) - 1.0
        if len(self.buckets) >= MAX_ADDRESSES and key not in self.buckets:
            self._forget_full(now)
        self.buckets[key] = _Bucket(max(0.0, level), now)

    def _forget_full(self, now: float) -> None:
        for key in [k for k in self.buckets if self._level(k, now) >= self.burst]:
            del self.buckets[key]
        if len(self.buckets) >= MAX_ADDRESSES:  # all still draining: the oldest go
            for key in sorted(self.buckets, key=lambda k: self.buckets[k].at)[: MAX_ADDRESSES // 4]:
                del self.buckets[key]


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    retry_after_s: float | None = None


def check_token(authorization: str, token: str | None, remote: str | None, trusted: bool,
                throttle: AuthThrottle) -> Refusal | None:
    """None when the request may go on, else the answer to give."""
    if trusted:
        return None
    scheme, _, given = authorization.partition(" ")
    if token is None:
        return Refusal(403, f"requests from {remote} are not allowed here: no token is configured "
                            "([http-api] token or token_file) and the address is not in trusted_networks")
    if scheme.lower() != "bearer" or not given.strip():
        return Refusal(401, "this endpoint changes something or shows the config: send Authorization: Bearer "
                            "<token>")
    wait = throttle.wait_s(remote)
    if wait > 0:
        return Refusal(429, f"too many wrong tokens from {remote}: try again in {math.ceil(wait)} s", wait)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        throttle.failed(remote)
        return Refusal(401, "the bearer token is wrong")
    return None
