"""HTTP to one device: timeouts, optional basic (Shelly Gen1) or digest (Shelly Gen2+) auth, JSON.

Every failure becomes a DeviceError whose text names the URL and what went wrong, so the poll
loop can count it, back off and mark the device offline without knowing about HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
from wattbus import http_session
from wattbus.http_session import HttpError, HttpTimeout

AuthMode = Literal["none", "basic", "digest"]


class DeviceError(Exception):
    """The device did not answer (connection, timeout, HTTP status, auth)."""


class ResponseRejected(DeviceError):
    """The device answered, but with something we cannot use (not JSON, wrong shape, bad value)."""


class HttpDevice:
    """One keep-alive HTTP session per device; no state (connections, digest nonce) shared between devices.

    The session is made on the first request, inside the running loop, and closed by `close()`;
    a later request opens a new one.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 3.0, username: str | None = None,
                 password: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.username = username
        self.password = password
        self.auth: AuthMode = "none"
        self._session: aiohttp.ClientSession | None = None
        self._basic: aiohttp.BasicAuth | None = None
        self._digest: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
        self._client_auth: AuthMode = "none"

    def use_auth(self, mode: AuthMode) -> None:
        """Switch auth scheme (decided by detection); the next request uses it."""
        self.auth = mode

    def _credentials(self) -> None:
        if self._client_auth == self.auth:
            return
        # A new scheme starts without the old digest nonce.
        self._basic, self._digest = None, ()
        user = self.username or "admin"
        try:
            if self.auth == "digest" and self.password is not None:  # Shelly Gen2+; nonce reused with a counter
                self._digest = (aiohttp.DigestAuthMiddleware(user, self.password),)
            elif self.auth == "basic" and self.password is not None:  # Shelly Gen1
                self._basic = aiohttp.BasicAuth(user, self.password)
        except ValueError as exc:  # a ":" in the user name cannot be sent (RFC 7617)
            raise DeviceError(f"{self.base_url}: user {user!r} cannot log in: {exc}") from None
        self._client_auth = self.auth

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client_auth = "none"
        self._basic, self._digest = None, ()

    async def request(self, path: str, params: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """GET path; returns (HTTP status, decoded JSON or None when the body is not JSON)."""
        url = f"{self.base_url}{path}"
        if self._session is None:
            # Devices serve one client at a time well: one connection, kept alive between polls.
            self._session = http_session.session(timeout_s=self.timeout_s, limit_per_host=1)
        self._credentials()
        try:
            resp = await http_session.request(self._session, "GET", url, params=params, auth=self._basic,
                                              middlewares=self._digest)
        except HttpTimeout as exc:
            raise DeviceError(f"{url}: no answer within {self.timeout_s:g} s") from exc
        except HttpError as exc:  # its message names the method, the URL and what went wrong
            raise DeviceError(str(exc)) from exc
        if resp.status == 401:
            why = "wrong user or password" if self.password else "the device requires a password"
            raise DeviceError(f"{url}: HTTP 401 unauthorized ({why})")
        try:
            return resp.status, resp.json()
        except ValueError:  # not JSON (also not UTF-8, or absurdly nested)
            return resp.status, None

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
