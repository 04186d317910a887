"""Confirm an mDNS find at the protocol level with read-only HTTP GETs (no auth needed): Shelly
`/shelly` (every generation), go-e API v2 `/api/status`, go-e API v1 `/status`. What counts as a
device, and what it is called, comes from wattbus.shelly and wattbus.goe, as in the bridge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from wattbus import goe, http_session, shelly

from .found import Found


def family_of(instance: str) -> str | None:
    """Which device family an mDNS instance or host name belongs to, by the vendors' patterns."""
    label = instance.split(".", 1)[0]
    if goe.MDNS_NAME.match(label):
        return "goe"
    if shelly.MDNS_NAME.match(label):
        return "shelly"
    return None


async def identify(host: str, port: int, family: str, timeout_s: float) -> Found | None:
    """The device behind an mDNS find, or None when its HTTP API is not the family's.

    Raises HttpError (a subclass of OSError) when the host does not answer over HTTP. One session
    per probed device, closed afterwards: the probe's GETs share a keep-alive connection, and no
    connection stays open to a device this service does not poll.
    """
    base = f"http://{host}:{port}"
    async with http_session.session(timeout_s=timeout_s, limit_per_host=1) as client:

        async def get(path: str, params: Mapping[str, str] | None) -> tuple[int, Any]:
            return await _get_json(client, f"{base}{path}", params)

        try:
            if family == "shelly":
                info = await shelly.identify(get, base)
                return None if info is None else Found(
                    "shelly", host, port, info.mac, shelly.MANUFACTURER, info.model_name, info.kind,
                    firmware=info.firmware, via="mdns", extra={"gen": info.gen, "auth": info.auth})
            ident = await goe.identify(get, base)
        except (shelly.ShellyIdentityError, goe.GoeIdentityError):
            return None  # answers like one, without the identity the bridge needs: not adoptable
    return None if ident is None else Found("goe", host, port, ident.serial, goe.MANUFACTURER, ident.model,
                                            "charger", firmware=ident.firmware, via="mdns", extra={"api": ident.api})


async def _get_json(client: aiohttp.ClientSession, url: str, params: Mapping[str, str] | None) -> tuple[int, Any]:
    # no redirects: a device answers its API directly
    resp = await http_session.request(client, "GET", url, params=params)
    try:
        return resp.status, resp.json()
    except ValueError:
        return resp.status, None
