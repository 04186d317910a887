"""HTTP to one device: timeouts, optional basic (Shelly Gen1) or digest (Shelly Gen2+) auth, JSON.

Every failure becomes a DeviceError whose text names the URL and what went wrong, so the poll
loop can count it, back off and mark the device offline without knowing about HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from wattbus.http_client import BasicAuth, DigestAuth, HttpClient, HttpError, HttpTimeout

AuthMode = Literal["none", "basic", "digest"]


class DeviceError(Exception):
    """The device did not answer (connection, timeout, HTTP status, auth)."""


class ResponseRejected(DeviceError):
    """The device answered, but with something we cannot use (not JSON, wrong shape, bad value)."""


class HttpDevice:
    """One keep-alive HTTP client per device; no state shared between devices."""

    def __init__(self, base_url: str, *, timeout_s: float = 3.0, username: str | None = None,
                 password: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.username = username
        self.password = password
        self.auth: AuthMode = "none"
        # Devices serve one client at a time well; one idle connection is all a poll loop needs.
        self._client = HttpClient(self.base_url, timeout_s=timeout_s, max_idle_per_host=1)
        self._client_auth: AuthMode = "none"

    def use_auth(self, mode: AuthMode) -> None:
        """Switch auth scheme (decided by detection); the next request uses it."""
        self.auth = mode

    def _credentials(self) -> BasicAuth | DigestAuth | None:
        if self._client_auth != self.auth:  # a new scheme starts without the old digest nonce
            self._client.auth = None
            self._client_auth = self.auth
            if self.auth == "digest" and self.password is not None:
                self._client.auth = DigestAuth(self.username or "admin", self.password)
            elif self.auth == "basic" and self.password is not None:
                self._client.auth = BasicAuth(self.username or "admin", self.password)
        return self._client.auth

    async def close(self) -> None:
        await self._client.close()
        self._client = HttpClient(self.base_url, timeout_s=self.timeout_s, max_idle_per_host=1)
        self._client_auth = "none"

    async def request(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET path; returns (HTTP status, decoded JSON or None when the body is not JSON)."""
        url = f"{self.base_url}{path}"
        try:
            resp = await self._client.get(url, params=params, auth=self._credentials())
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
