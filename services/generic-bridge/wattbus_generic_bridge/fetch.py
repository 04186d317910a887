"""HTTP to a described device: one kept-alive connection, optional Basic or Digest auth."""

from __future__ import annotations

from typing import Any

import aiohttp
from wattbus import http_session
from wattbus.http_session import HttpError


class FetchError(OSError):
    """The device did not answer as described (no answer, HTTP error status, not JSON)."""


class HttpDevice:
    def __init__(self, timeout_s: float, username: str | None, password: str | None, auth: str) -> None:
        self.timeout_s = timeout_s
        self._basic: aiohttp.BasicAuth | None = None
        self._digest: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
        if password is not None:
            user = username or "admin"
            if auth == "digest":
                self._digest = (aiohttp.DigestAuthMiddleware(user, password),)
            else:
                self._basic = aiohttp.BasicAuth(user, password)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, url: str, method: str = "GET", body: str | None = None,
                      content_type: str = "application/json") -> http_session.HttpResponse:
        """One request (a write's body as given, with its content type); an error status is a FetchError."""
        if self._session is None:
            # Small devices serve one client at a time well: one connection, kept alive between polls.
            self._session = http_session.session(timeout_s=self.timeout_s, limit_per_host=1,
                                                 middlewares=self._digest)
        try:
            resp = await http_session.request(self._session, method, url, auth=self._basic,
                                              data=body.encode() if body is not None else None,
                                              headers={"Content-Type": content_type} if body is not None else None)
        except HttpError as exc:  # its message names the method, the URL (no credentials) and the cause
            raise FetchError(str(exc)) from None
        if resp.status == 401:
            raise FetchError(f"{method} {resp.url}: HTTP 401 unauthorized (wrong or missing user/password)")
        if resp.status >= 300:
            raise FetchError(f"{method} {resp.url}: HTTP {resp.status} {resp.reason}")
        return resp

    async def get_json(self, url: str) -> Any:
        resp = await self.request(url)
        try:
            return resp.json()
        except ValueError as exc:  # names the URL
            raise FetchError(str(exc)) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
