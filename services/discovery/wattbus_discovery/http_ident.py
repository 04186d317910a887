"""Confirm an mDNS find at the protocol level with read-only HTTP GETs (no auth needed):
Shelly `/shelly` (every generation), go-e API v2 `/api/status`, go-e API v1 `/status`."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from wattbus import http_session
from wattbus import messages as m

from .found import Found

GOE_NAME = re.compile(r"^go-?e-?charger[_-]?(\d+)$", re.IGNORECASE)
SHELLY_NAME = re.compile(r"^shelly[a-z0-9-]*-([0-9a-f]{6,12})$", re.IGNORECASE)


def family_of(instance: str) -> str | None:
    """Which device family an mDNS instance or host name belongs to, by the vendors' patterns."""
    label = instance.split(".", 1)[0]
    if GOE_NAME.match(label):
        return "goe"
    if SHELLY_NAME.match(label):
        return "shelly"
    return None


async def _get_json(client: aiohttp.ClientSession, url: str) -> Any:
    resp = await http_session.request(client, "GET", url)  # no redirects: a device answers its API directly
    if resp.status != 200:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


async def identify(host: str, port: int, family: str, timeout_s: float) -> Found | None:
    """The device behind an mDNS find, or None when its HTTP API is not the family's.

    Raises HttpError (a subclass of OSError) when the host does not answer over HTTP. One session
    per probed device, closed afterwards: the probe's GETs share a keep-alive connection, and no
    connection stays open to a device this service does not poll.
    """
    async with http_session.session(timeout_s=timeout_s, limit_per_host=1) as client:
        return await _identify(client, host, port, family)


async def _identify(client: aiohttp.ClientSession, host: str, port: int, family: str) -> Found | None:
    base = f"http://{host}:{port}"
    if family == "shelly":
        doc = await _get_json(client, f"{base}/shelly")
        if not isinstance(doc, dict) or not isinstance(doc.get("mac"), str) or not ("gen" in doc or "type" in doc):
            return None
        gen = doc.get("gen") if isinstance(doc.get("gen"), int) else 1
        model = doc.get("model") or doc.get("type") or doc.get("app")
        firmware = doc.get("fw_id") or doc.get("ver") or doc.get("fw")
        kind: m.DeviceKind = "meter" if isinstance(model, str) and "EM" in model.upper() else "relay"
        return Found("shelly", host, port, str(doc["mac"]).upper(), "Shelly", str(model) if model else None,
                     kind, firmware=str(firmware) if firmware else None, via="mdns",
                     extra={"gen": gen, "auth": bool(doc.get("auth") or doc.get("auth_en"))})
    doc = await _get_json(client, f"{base}/api/status?filter=sse,fwv,typ,var")
    if isinstance(doc, dict) and str(doc.get("sse") or "").strip():
        return Found("goe", host, port, str(doc["sse"]).strip(), "go-e", _text(doc.get("typ")) or "go-eCharger",
                     "charger", firmware=_text(doc.get("fwv")), via="mdns", extra={"api": "v2"})
    doc = await _get_json(client, f"{base}/status")
    if isinstance(doc, dict) and {"sse", "car", "amp"} <= doc.keys() and str(doc["sse"]).strip():
        return Found("goe", host, port, str(doc["sse"]).strip(), "go-e", "go-eCharger", "charger",
                     firmware=_text(doc.get("fwv")), via="mdns", extra={"api": "v1"})
    return None


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
