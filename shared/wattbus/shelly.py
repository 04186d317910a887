"""Shelly identification: `/shelly` (open on every generation, even with auth on) and the model table.

The one home of this knowledge: the goe-shelly-bridge detects with it, discovery identifies with
it, so both name a device alike. Transport stays with the caller: `identify` asks through
whatever `get(path, params)` it is given. Gen1 devices say `type` (e.g. SHSW-PM), Gen2+ (and
Gen3/Gen4, which speak Gen2 RPC) say `gen` and `app` (e.g. Plus1PM); data/shelly_models.toml
names them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from . import topics

# (HTTP status, the decoded JSON body or None) for a GET of path with query params
Get = Callable[[str, Mapping[str, str] | None], Awaitable[tuple[int, Any]]]

MANUFACTURER = "Allterco (Shelly)"
INFO_PATH = "/shelly"
# The device's mDNS instance / host name: shelly<model>-<MAC or its tail>.
MDNS_NAME = re.compile(r"^shelly[a-z0-9-]*-([0-9a-f]{6,12})$", re.IGNORECASE)


class ShellyIdentityError(ValueError):
    """A `/shelly` answer without a usable identity; str() names where."""


@dataclass(frozen=True, slots=True)
class ShellyModel:
    name: str
    relays: int
    metered: bool
    emeters: int = 0


@cache
def shelly_models() -> dict[str, dict[str, ShellyModel]]:
    """gen1 by `type`, gen2 by `app` (Gen3/Gen4 speak Gen2 RPC and are listed there)."""
    raw = tomllib.loads(resources.files(__package__).joinpath("data/shelly_models.toml").read_text())
    return parse_models(raw)


def parse_models(raw: dict[str, Any]) -> dict[str, dict[str, ShellyModel]]:
    out: dict[str, dict[str, ShellyModel]] = {}
    for gen in ("gen1", "gen2"):
        out[gen] = {}
        for key, spec in raw[gen].items():
            out[gen][key] = ShellyModel(name=str(spec["name"]), relays=int(spec["relays"]),
                                        metered=bool(spec["metered"]), emeters=int(spec.get("emeters", 0)))
    return out


@dataclass(frozen=True, slots=True)
class ShellyInfo:
    """From `/shelly`, which answers without auth on every generation."""

    gen: int
    model_key: str  # Gen1 type or Gen2 app
    mac: str
    firmware: str | None
    auth: bool
    hostname: str | None

    @property
    def model(self) -> ShellyModel | None:
        return shelly_models()["gen1" if self.gen == 1 else "gen2"].get(self.model_key)

    @property
    def model_name(self) -> str:
        model = self.model
        return model.name if model else f"Shelly {self.model_key}"

    @property
    def kind(self) -> Literal["meter", "relay"]:
        """What the device is first: an energy meter (EM models, also when they carry a relay) or a
        relay. Unknown models by their key: every Shelly energy meter's type/app has `EM` in it."""
        model = self.model
        if model is not None:
            return "meter" if model.emeters else "relay"
        return "meter" if "EM" in self.model_key.upper() else "relay"

    def relay_id(self) -> str:
        return device_id(self.mac)

    def meter_id(self, index: int | None = None) -> str:
        return topics.slug("shelly", self.mac, "em", index)


def is_info(doc: object) -> bool:
    """Whether a `/shelly` answer looks like a Shelly's: a mac and a generation or Gen1 type."""
    return isinstance(doc, dict) and "mac" in doc and ("gen" in doc or "type" in doc)


def parse_info(doc: Mapping[str, Any], where: str) -> ShellyInfo:
    mac = doc.get("mac")
    if not isinstance(mac, str) or not mac:
        raise ShellyIdentityError(f"{where}: no mac in /shelly")
    gen = doc.get("gen")
    if isinstance(gen, int) and not isinstance(gen, bool) and gen >= 2:
        app = doc.get("app")
        return ShellyInfo(gen, str(app or doc.get("model") or "unknown"), mac.upper(),
                          str(doc.get("ver")) if doc.get("ver") else None, bool(doc.get("auth_en")),
                          str(doc.get("id")) if doc.get("id") else None)
    kind = doc.get("type")
    if not isinstance(kind, str):
        raise ShellyIdentityError(f"{where}: /shelly has neither gen >= 2 nor a Gen1 type")
    return ShellyInfo(1, kind, mac.upper(), str(doc.get("fw")) if doc.get("fw") else None, bool(doc.get("auth")),
                      None)


async def identify(get: Get, where: str) -> ShellyInfo | None:
    """The Shelly answering through `get`, or None when `/shelly` is not a Shelly's. Raises
    ShellyIdentityError when it looks like one but its identity is unusable."""
    status, doc = await get(INFO_PATH, None)
    if status != 200 or not is_info(doc):
        return None
    return parse_info(doc, f"{where}{INFO_PATH}")


def device_id(mac: str) -> str:
    return topics.slug("shelly", mac)
