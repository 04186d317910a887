"""The site's device roles as `[http-api.site]` states them, for every service that needs them.

The http-api shows the power flow from this table and the setup wizard writes it; other consumers
(the influx-writer's role tags) read the same table through the same loader, so the web UI and the
stored history agree on which meter is the grid meter and which devices make up PV.

    [http-api.site]
    grid = "goe-shelly-bridge/shelly-08f9e0e5a001-em"   # "<source>/<device_id>[:<field>]"
    pv = ["sunspec-bridge/fronius-34119777"]
    battery = ["giv-bridge/givenergy-sa2345g678-battery"]
    chargers = ["goe-shelly-bridge/goe-204571"]

An empty key means "found by kind" (http-api's rule): the grid is the only meter without a parent,
PV every inverter and gateway without a parent, battery every battery without a parent, chargers
every charger. Environment overrides work as for any key: `WATTBUS_HTTP_API_SITE__GRID=...`.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from .config import LoadedConfig

SECTION = "http-api"
# "<source>/<device_id>" optionally followed by ":<field>" (the reading field http-api uses)
SiteRef = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(:[a-z_0-9]+)?$")]


class SiteSection(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[http-api.site]`: which devices make up the power flow. Empty = found by kind."""

    grid: SiteRef | None = None
    pv: list[SiteRef] = []
    battery: list[SiteRef] = []
    chargers: list[SiteRef] = []

    def device(self, ref: str) -> str:
        """"source/device_id" without the optional ":field"."""
        source, _, rest = ref.partition("/")
        return f"{source}/{rest.split(':', 1)[0]}"

    def grid_device(self) -> str | None:
        return None if self.grid is None else self.device(self.grid)

    def devices(self, role: str) -> frozenset[str]:
        """The devices named for pv, battery or chargers (without their field suffix)."""
        refs: list[str] = getattr(self, role)
        return frozenset(self.device(ref) for ref in refs)


class _HttpApiView(Struct, frozen=True, kw_only=True):
    # Only the site table: the rest of [http-api] is http-api's own to validate.
    site: SiteSection = SiteSection()


def site_roles(loaded: LoadedConfig) -> SiteSection:
    """The roles from `[http-api.site]` of the loaded file (+ environment); a ConfigError names a bad key."""
    return loaded.section(SECTION, _HttpApiView).site
