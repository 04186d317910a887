"""Device families: protocols a description cannot express (several devices behind one address,
identification, values combined across requests), each a folder with an adapter and its data.

A device entry names one with `template = "<family>"`; the config checks the entry here and the
service starts the family's adapter instead of the generic one. A family's module is imported only
when an entry uses it.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from wattbus.bridge import Adapter
from wattbus.config import ConfigError

from .common import Entry

# template name -> its folder here, whose adapter.py defines FAMILY (the adapter class) and DATA
FAMILIES = {"fronius-solar-api": "fronius"}


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
    if template not in FAMILIES:
        raise ConfigError(f"no device family {template!r}; known: {', '.join(FAMILIES)}")
    made: FamilyAdapter = importlib.import_module(f"{__name__}.{FAMILIES[template]}.adapter").FAMILY(source_name, entry)
    return made

