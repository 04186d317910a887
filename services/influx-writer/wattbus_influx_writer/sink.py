"""HTTP writes to the database: InfluxDB v1 `/write` or the v2 write API, one keep-alive HTTP client.

Each write answers with an Outcome the pipeline acts on: OK; REJECTED (400/422: the server says
some line is malformed or conflicts, so the batch is split to find it); TOO_LARGE (413: split);
UNAVAILABLE (no connection, timeout, 5xx, 429, and refusals that are not the data's fault such as
401/403/404: the batch is spooled and retried).
"""

from __future__ import annotations

import enum
import gzip
from dataclasses import dataclass

from wattbus.http_client import BasicAuth, HttpClient, HttpError

from .config import Config


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


class Sink:
    def __init__(self, config: Config) -> None:
        self.config = config
        base = config.url.rstrip("/")
        params: dict[str, str] = {"precision": "ns"}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.api == "v2":
            self.write_url = f"{base}/api/v2/write"
            params.update(bucket=config.bucket, org=config.org)
            token = config.resolved_token()
            if token:
                headers["Authorization"] = f"Token {token}"
        else:
            self.write_url = f"{base}/write"
            params["db"] = config.database
            if config.retention_policy:
                params["rp"] = config.retention_policy
        self.auth: BasicAuth | None = None
        password = config.resolved_password()
        if config.api == "v1" and config.username:
            self.auth = BasicAuth(config.username, password or "")
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        self.params = params
        self.headers = headers
        self.target = f"{self.write_url} ({config.database if config.api == 'v1' else config.bucket})"
        self._client: HttpClient | None = None

    async def __aenter__(self) -> Sink:
        # Up to 4 idle keep-alive connections (the aiohttp connector before allowed 4 connections).
        self._client = HttpClient(timeout_s=self.config.timeout_s, auth=self.auth, max_idle_per_host=4)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def write(self, body: bytes) -> Result:
        assert self._client is not None, "Sink used outside `async with`"
        data = gzip.compress(body, 1) if self.config.gzip else body
        try:
            resp = await self._client.post(self.write_url, params=self.params, body=data, headers=self.headers)
        except HttpError as exc:  # refused, timeout (HttpTimeout), broken answer
            return Result(Outcome.UNAVAILABLE, None, f"{type(exc).__name__}: {exc}")
        if resp.status < 300:
            return Result(Outcome.OK, resp.status)
        text = resp.text(errors="replace").strip()[:500]
        status = resp.status
        if status in (400, 422):
            return Result(Outcome.REJECTED, status, text)
        if status == 413:
            return Result(Outcome.TOO_LARGE, status, text)
        return Result(Outcome.UNAVAILABLE, status, text)

    async def create_database(self) -> Result:
        """v1: CREATE DATABASE (idempotent on the server)."""
        assert self._client is not None
        url = self.config.url.rstrip("/") + "/query"
        name = self.config.database.replace('"', r"\"")
        try:
            resp = await self._client.post(url, form={"q": f'CREATE DATABASE "{name}"'})
        except HttpError as exc:
            return Result(Outcome.UNAVAILABLE, None, f"{type(exc).__name__}: {exc}")
        text = resp.text(errors="replace").strip()[:500]
        if resp.status < 300 and '"error"' not in text:
            return Result(Outcome.OK, resp.status)
        return Result(Outcome.UNAVAILABLE, resp.status, text)
