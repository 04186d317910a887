"""Which device answers on a URL: Shelly Gen1/Gen2+ (`/shelly`), go-e API v2 or API v1, asked in
the order and judged by the rules of wattbus.shelly and wattbus.goe, which discovery shares."""

from __future__ import annotations

from wattbus import goe, shelly

from .goe import GoeCharger
from .shelly import ShellyDevice
from .transport import DeviceError, HttpDevice, ResponseRejected

Adapter = GoeCharger | ShellyDevice


class NotSupported(DeviceError):
    """Something answers, but it is neither a go-e Charger nor a Shelly."""


async def detect(http: HttpDevice) -> Adapter:
    """Probe the cheapest, auth-free endpoints first; raise DeviceError if nothing answers."""
    url = http.base_url
    try:
        info = await shelly.identify(http.request, url)  # open on every Shelly generation, even with auth on
        if info is not None:
            if info.auth:
                if http.password is None:
                    raise DeviceError(f"{url}: Shelly {info.model_key} has authentication on; "
                                      "give its password (config `password`, or --password)")
                http.use_auth("digest" if info.gen >= 2 else "basic")
            return ShellyDevice(http, info)
        ident = await goe.identify(http.request, url)
    except (shelly.ShellyIdentityError, goe.GoeIdentityError) as exc:
        raise ResponseRejected(str(exc)) from None
    if ident is not None:
        return GoeCharger(http, ident.api, ident)
    raise NotSupported(f"{url}: not a supported device (no Shelly /shelly, no go-e /api/status or /status)")
