"""HTTP to one device: timeouts, optional basic (Shelly Gen1) or digest (Shelly Gen2+) auth, JSON.

Every failure becomes a DeviceError whose text names the URL and what went wrong, so the poll
loop can count it, back off and mark the device offline without knowing about aiohttp.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp

AuthMode = Literal["none", "basic", "digest"]


class DeviceError(Exception):
    """The device did not answer (connection, timeout, HTTP status, auth)."""


class ResponseRejected(DeviceError):
    """The device answered, but with something we cannot use (not JSON, wrong shape, bad value)."""


class HttpDevice:
    """One session per device; no state shared between devices."""

    def __init__(self, base_url: str, *, timeout_s: float = 3.0, username: str | None = None,
                 password: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.username = username
        self.password = password
        self.auth: AuthMode = "none"
        self._session: aiohttp.ClientSession | None = None
        self._session_auth: AuthMode = "none"

    def use_auth(self, mode: AuthMode) -> None:
        """Switch auth scheme (decided by detection); the next request opens a fitting session."""
        self.auth = mode

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is not None and (self._session.closed or self._session_auth != self.auth):
            await self._session.close()
            self._session = None
        if self._session is None:
            if self.auth == "digest" and self.password is not None:
                middleware = aiohttp.DigestAuthMiddleware(login=self.username or "admin", password=self.password)
                self._session = aiohttp.ClientSession(timeout=self.timeout, middlewares=(middleware,))
            elif self.auth == "basic" and self.password is not None:
                self._session = aiohttp.ClientSession(
                    timeout=self.timeout, auth=aiohttp.BasicAuth(self.username or "admin", self.password))
            else:
                self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._session_auth = self.auth
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET path; returns (HTTP status, decoded JSON or None when the body is not JSON)."""
        url = f"{self.base_url}{path}"
        try:
            async with (await self._open()).get(url, params=params) as resp:
                body = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise DeviceError(f"{url}: no answer within {self.timeout.total:g} s") from exc
        except aiohttp.ClientError as exc:
            raise DeviceError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if status == 401:
            why = "wrong user or password" if self.password else "the device requires a password"
            raise DeviceError(f"{url}: HTTP 401 unauthorized ({why})")
        try:
            return status, json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return status, None

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET path expecting HTTP 200 and a JSON body."""
        status, doc = await self.request(path, params)
        if status != 200:
            raise DeviceError(f"{self.base_url}{path}: HTTP {status}")
        if doc is None:
            raise ResponseRejected(f"{self.base_url}{path}: answer is not JSON")
        return doc

    async def get_object(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        doc = await self.get_json(path, params)
        if not isinstance(doc, dict):
            raise ResponseRejected(f"{self.base_url}{path}: expected a JSON object, got {type(doc).__name__}")
        return doc


def number(doc: Mapping[Any, Any], key: str | int, where: str, scale: float = 1.0) -> float | None:
    """A numeric value that may come as a JSON number or (go-e API v1) a numeric string; None if absent."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ResponseRejected(f"{where}: {key} = {value!r} is a boolean, expected a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError as exc:
            raise ResponseRejected(f"{where}: {key} = {value!r} is not a number") from exc
    if not isinstance(value, int | float):
        raise ResponseRejected(f"{where}: {key} = {value!r} is not a number")
    return float(value) * scale
