"""Which device answers on a URL: Shelly Gen1/Gen2+ (`/shelly`), go-e API v2 or API v1."""

from __future__ import annotations

from .goe import GoeCharger
from .goe_wire import identity
from .shelly import ShellyDevice
from .shelly_wire import parse_info
from .transport import DeviceError, HttpDevice

Adapter = GoeCharger | ShellyDevice


class NotSupported(DeviceError):
    """Something answers, but it is neither a go-e Charger nor a Shelly."""


async def detect(http: HttpDevice) -> Adapter:
    """Probe the cheapest, auth-free endpoints first; raise DeviceError if nothing answers."""
    url = http.base_url
    status, doc = await http.request("/shelly")  # open on every Shelly generation, even with auth on
    if status == 200 and isinstance(doc, dict) and "mac" in doc and ("gen" in doc or "type" in doc):
        info = parse_info(doc, f"{url}/shelly")
        if info.auth:
            if http.password is None:
                raise DeviceError(f"{url}: Shelly {info.model_key} has authentication on; "
                                  "give its password (config `password`, or --password)")
            http.use_auth("digest" if info.gen >= 2 else "basic")
        return ShellyDevice(http, info)
    status, doc = await http.request("/api/status", {"filter": "sse,fwv,typ,var"})
    if status == 200 and isinstance(doc, dict) and "sse" in doc:
        return GoeCharger(http, "v2", identity(doc, "v2", f"{url}/api/status"))
    status, doc = await http.request("/status")
    if status == 200 and isinstance(doc, dict) and {"sse", "car", "amp"} <= doc.keys():
        return GoeCharger(http, "v1", identity(doc, "v1", f"{url}/status"))
    raise NotSupported(f"{url}: not a supported device (no Shelly /shelly, no go-e /api/status or /status)")
