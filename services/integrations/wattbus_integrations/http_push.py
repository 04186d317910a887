"""HTTP push for one rule: a bounded queue, a rate limit per URL, retries with backoff.

One request is in flight per rule, so a slow or dead target never piles up connections on the
Pi. While a URL waits for its rate-limit slot, a newer message for it replaces the older one
(telemetry: the newest value is the one worth sending). Connection errors, timeouts, 429 and 5xx
are retried (Retry-After honoured, capped at retry_max_s); other 4xx answers mean the target
rejects the request and retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict

import aiohttp
from wattbus import http_session
from wattbus.counters import Counters
from wattbus.http_session import HttpError, HttpTimeout
from wattbus.log import Logger

from .render import HttpOut
from .rules import HttpTarget

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpPusher:
    def __init__(self, rule: str, target: HttpTarget, min_interval_s: float, session: aiohttp.ClientSession,
                 counters: Counters, log: Logger) -> None:
        self.rule = rule
        self.target = target
        self.min_interval_s = min_interval_s
        self.session = session
        self.counters = counters
        self.log = log
        self._pending: OrderedDict[str, HttpOut] = OrderedDict()
        self._last_sent: dict[str, float] = {}
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def submit(self, message: HttpOut) -> None:
        if message.key in self._pending:
            self.counters.inc("http_coalesced")
        elif len(self._pending) >= self.target.queue_max:
            _key, dropped = self._pending.popitem(last=False)
            self.counters.inc("http_dropped")
            self.log.warning("http queue full, oldest message dropped", rule=self.rule, url=dropped.url)
        self._pending[message.key] = message
        self._pending.move_to_end(message.key)
        self.idle.clear()
        self._wake.set()

    def _next_ready(self) -> tuple[HttpOut | None, float]:
        """The oldest message whose URL may be sent now, else how long until one may."""
        now = time.monotonic()
        wait = float("inf")
        for key, message in self._pending.items():
            due = self._last_sent.get(key, -1e12) + self.min_interval_s
            if due <= now:
                del self._pending[key]
                return message, 0.0
            wait = min(wait, due - now)
        return None, wait

    async def run(self) -> None:
        while True:
            message, wait = self._next_ready()
            if message is None:
                if not self._pending:
                    self.idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if wait == float("inf") else wait)
                continue
            self._last_sent[message.key] = time.monotonic()
            await self.send(message)

    async def send(self, message: HttpOut) -> bool:
        """Send with retries; True once the target accepted it (2xx)."""
        delay = self.target.retry_initial_s
        attempts = self.target.retries + 1
        for attempt in range(1, attempts + 1):
            status, reason, retry_after = await self._attempt(message)
            if status is not None and 200 <= status < 300:
                self.counters.inc("http_sent")
                return True
            retryable = status is None or status in RETRY_STATUS
            if not retryable or attempt == attempts:
                self.counters.inc("http_failed")
                self.log.warning("http push failed", rule=self.rule, method=message.method, url=message.url,
                                 reason=reason, attempts=attempt, retryable=retryable)
                return False
            self.counters.inc("http_retries")
            pause = min(self.target.retry_max_s, retry_after if retry_after is not None else delay)
            self.log.info("http push retrying", rule=self.rule, url=message.url, reason=reason, attempt=attempt,
                          retry_in_s=round(pause, 2))
            await asyncio.sleep(pause)
            delay = min(self.target.retry_max_s, delay * 2)
        return False

    async def _attempt(self, message: HttpOut) -> tuple[int | None, str, float | None]:
        data = message.body.encode() if message.body and message.method != "GET" else None
        try:
            resp = await http_session.request(self.session, message.method, message.url, data=data,
                                              headers=message.headers, timeout_s=self.target.timeout_s)
        except HttpTimeout:
            return None, f"no answer within {self.target.timeout_s:g} s", None
        except HttpError as exc:  # refused, unreachable, a broken answer
            return None, f"{type(exc).__name__}: {exc}", None
        text = resp.text(errors="replace")
        return resp.status, f"HTTP {resp.status}: {text[:200]}", _retry_after(resp.headers.get("Retry-After"))


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for APIs and treated as absent)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
