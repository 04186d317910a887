"""go-e Charger identification over its HTTP API: which API answers, serial, firmware and model.

The one home of this knowledge: the goe-shelly-bridge detects with it, discovery identifies with
it, so both name a charger alike. Transport stays with the caller: `identify` asks through
whatever `get(path, params)` it is given. API v2 (`/api/status`, chargers since the V3 firmware)
is asked first; API v1 (`/status`) is what older firmware answers, recognised by its keys.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import topics

Api = Literal["v1", "v2"]
# (HTTP status, the decoded JSON body or None) for a GET of path with query params
Get = Callable[[str, Mapping[str, str] | None], Awaitable[tuple[int, Any]]]

MANUFACTURER = "go-e"
DEFAULT_MODEL = "go-eCharger"
V2_STATUS, V1_STATUS = "/api/status", "/status"
V2_IDENTITY_KEYS = "sse,fwv,typ,var"  # a filtered v2 status: the identity only, a fraction of the document
V1_KEYS = frozenset({"sse", "car", "amp"})  # present in every v1 status
# The charger's mDNS instance / host name: go-eCharger_<serial> (the separators vary by firmware).
MDNS_NAME = re.compile(r"^go-?e-?charger[_-]?(\d+)$", re.IGNORECASE)


class GoeIdentityError(ValueError):
    """A status document without a usable identity; str() names where."""


@dataclass(frozen=True, slots=True)
class GoeIdentity:
    serial: str
    firmware: str | None
    model: str
    api: Api = "v2"


def identity(doc: Mapping[str, Any], api: Api, where: str) -> GoeIdentity:
    serial = doc.get("sse")
    if not isinstance(serial, str | int) or isinstance(serial, bool) or str(serial).strip() == "":
        raise GoeIdentityError(f"{where}: no serial number (sse) in the go-e status")
    fw = doc.get("fwv")
    typ = doc.get("typ") if isinstance(doc.get("typ"), str) else DEFAULT_MODEL
    variant = doc.get("var")
    model = f"{typ} {variant} kW" if isinstance(variant, int) and not isinstance(variant, bool) else str(typ)
    return GoeIdentity(str(serial).strip(), None if fw is None else str(fw),
                       model if api == "v2" else f"{model} (API v1)", api)


def is_v2_status(doc: object) -> bool:
    return isinstance(doc, dict) and "sse" in doc


def is_v1_status(doc: object) -> bool:
    return isinstance(doc, dict) and doc.keys() >= V1_KEYS


async def identify(get: Get, where: str) -> GoeIdentity | None:
    """The charger answering through `get`, or None when neither API's status is there. Raises
    GoeIdentityError when a status answers without a serial."""
    status, doc = await get(V2_STATUS, {"filter": V2_IDENTITY_KEYS})
    if status == 200 and is_v2_status(doc):
        return identity(doc, "v2", f"{where}{V2_STATUS}")
    status, doc = await get(V1_STATUS, None)
    if status == 200 and is_v1_status(doc):
        return identity(doc, "v1", f"{where}{V1_STATUS}")
    return None


def device_id(serial: str) -> str:
    return topics.slug("goe", serial)
