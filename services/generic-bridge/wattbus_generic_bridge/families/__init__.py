"""Device families: protocols a description cannot express (several devices behind one address,
identification, values combined across requests), each a folder with an adapter and its data.

A device entry names one with `template = "<family>"`; the config checks the entry here and the
service starts the family's adapter instead of the generic one. A family's module is imported only
when an entry uses it.
"""

from __future__ import annotations

from typing import Protocol

from wattbus.bridge import Adapter
from wattbus.config import ConfigError

from .common import Entry

FAMILIES = {"fronius-solar-api": "Fronius Solar API v1 (Datamanager, GEN24): inverters, smart meter, battery"}


class FamilyAdapter(Adapter, Protocol):
    interval_s: float
    push: bool


def check(template: str, entry: Entry, where: str, unused: dict[str, object]) -> None:
    """A family entry needs a host and takes none of the description-only keys."""
    if entry.host is None:
        raise ConfigError(f'{where}: template {template!r} needs host = "..." (the inverter\'s address)')
    given = [key for key, value in unused.items() if value]
    if given:
        raise ConfigError(f"{where}: template {template!r} takes no {', '.join(given)}")


def adapter(template: str, source_name: str, entry: Entry) -> FamilyAdapter:
    if template == "fronius-solar-api":
        from .fronius.adapter import FroniusSite
        return FroniusSite(source_name, entry)
    raise ConfigError(f"no device family {template!r}; known: {', '.join(FAMILIES)}")

