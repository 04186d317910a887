"""Writes to the database: the v2 write API or InfluxDB 1.x's `/write`, both through influxdb-client.

Each write answers with an Outcome the pipeline acts on: OK; REJECTED (400/422: the server says
some line is malformed or conflicts, so the batch is split to find it); TOO_LARGE (413: split);
UNAVAILABLE (no connection, timeout, 5xx, 429, and refusals that are not the data's fault such as
401/403/404: the batch is spooled and retried). influxdb-client is synchronous where it retries
(influx_http.py), so each request runs in a worker thread while the event loop keeps receiving;
the pipeline awaits it, and only then acknowledges the batch.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    from .influx_http import InfluxHttp


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    status: int | None = None
    message: str = ""


def outcome_of(status: int) -> Outcome:
    if status < 300:
        return Outcome.OK
    if status in (400, 422):
        return Outcome.REJECTED
    if status == 413:
        return Outcome.TOO_LARGE
    return Outcome.UNAVAILABLE


class Sink:
    def __init__(self, config: Config, on_retry: Callable[[], object] | None = None) -> None:
        self.config = config
        self.on_retry = on_retry  # called (in the worker thread) before influxdb-client retries a write
        base = config.url.rstrip("/")
        self.target = (f"{base}/api/v2/write ({config.bucket})" if config.api == "v2"
                       else f"{base}/write ({config.database})")
        self._http: InfluxHttp | None = None

    async def __aenter__(self) -> Sink:
        # Imported here, not with the module: the config checks of other processes (http-api,
        # `wattbus config`) import this service's __main__ and must not load influxdb-client.
        from .influx_http import InfluxHttp

        self._http = InfluxHttp(self.config, self.on_retry)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def stop_retrying(self) -> None:
        """The writer is stopping: the request under way gives up its retries, later ones retry not."""
        if self._http is not None:
            self._http.stop_retrying()

    async def write(self, body: bytes, retry: bool = True) -> Result:
        """Write line protocol; retry=False makes one attempt (shutdown must stay quick)."""
        assert self._http is not None, "Sink used outside `async with`"
        return await asyncio.to_thread(self._http.write, body, retry)

    async def create_database(self) -> Result:
        """v1: CREATE DATABASE (idempotent on the server)."""
        assert self._http is not None, "Sink used outside `async with`"
        return await asyncio.to_thread(self._http.create_database)
