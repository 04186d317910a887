"""Site roles as tags: which meter is the grid meter, which devices are PV, battery, charger.

Dashboards that pick "the meter that wrote last" show a sub-meter as the grid, and sums over every
inverter count an ECU's microinverters twice (once each, once in their gateway). So every point
carries `role` (grid, pv, battery, charger, submeter, none) and, for a sub-device, `parent` (its
DeviceMeta.parent_id). The roles come from `[site]` (wattbus.site), the table the web UI's
power flow uses, with http-api's rule where a key is empty: the grid meter is the only meter
without a parent, PV every inverter and gateway without a parent, battery every battery without a
parent, chargers every charger without a parent. Kinds and parents come from the retained
`.../meta` topics. A role change (file edited, a second meter appeared) re-tags new points only:
stored points keep the tags they were written with.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattbus import messages as m
from wattbus.site import SiteConfig

# The roles a point can carry, for the docs and the tests.
ROLES = ("grid", "pv", "battery", "charger", "submeter", "none")
# The roles the site's flow counts: their devices' points are also written to `site_role` (lineproto).
COUNTED = frozenset({"grid", "pv", "battery", "charger"})
_LISTED = (("pv", "pv"), ("battery", "battery"), ("chargers", "charger"))  # [site] key, role
_DEFAULT_KINDS = {"inverter": "pv", "gateway": "pv", "battery": "battery", "charger": "charger"}


@dataclass(frozen=True, slots=True)
class Known:
    """What a device's meta says about it."""

    kind: str
    parent_id: str | None


class RoleTags:
    """Role and parent per device, as line-protocol tags; `version` changes whenever any may have.

    Devices are keyed by (site id or None, "source/device_id"): on a central broker each site has
    its own grid meter; the `[site]` refs name devices by source and id on every site.
    """

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.version = 0
        self._known: dict[tuple[str | None, str], Known] = {}
        self._refresh()

    def set_site(self, site: SiteConfig) -> bool:
        """New `[site]` roles (the file changed); True when they differ."""
        if site == self.site:
            return False
        self.site = site
        self._refresh()
        return True

    def on_meta(self, site_id: str | None, source: str, device_id: str, meta: m.DeviceMeta | None) -> bool:
        """A device's retained meta (None: cleared, the device is gone); True when it changed anything."""
        key = (site_id, f"{source}/{device_id}")
        known = None if meta is None else Known(meta.kind, meta.parent_id or None)
        if self._known.get(key) == known:
            return False
        if known is None:
            del self._known[key]
        else:
            self._known[key] = known
        self._refresh()
        return True

    def _refresh(self) -> None:
        self.version += 1
        self._grid = self.site.grid_device()
        # "source/device_id:field" in a role: the flow counts that field instead of power_w.
        refs = [*([self.site.grid] if self.site.grid else []), *self.site.pv, *self.site.battery,
                *self.site.charger_refs()]
        self._fields = {self.site.device(ref): ref.rsplit(":", 1)[1] for ref in refs if ":" in ref.split("/", 1)[1]}
        self._listed = {role: self.site.devices(key) for key, role in _LISTED}
        # The default grid meter, per site: the only meter without a parent (none when there are more).
        meters: dict[str | None, list[str]] = {}
        for (site_id, ref), known in self._known.items():
            if known.kind == "meter" and known.parent_id is None:
                meters.setdefault(site_id, []).append(ref)
        self._default_grid = {site_id: refs[0] for site_id, refs in meters.items() if len(refs) == 1}

    def role(self, site_id: str | None, ref: str, kind: str) -> str:
        if ref == self._grid:
            return "grid"
        for role, refs in self._listed.items():
            if ref in refs:
                return role
        known = self._known.get((site_id, ref))
        if kind == "meter":
            return "grid" if self._grid is None and self._default_grid.get(site_id) == ref else "submeter"
        default = _DEFAULT_KINDS.get(kind)
        # By kind only where its key is empty, and (as http-api) only devices whose meta says they
        # are no part of another device: a gateway's inverters are in the gateway's own total.
        if default is None or self._listed[default] or known is None or known.parent_id:
            return "none"
        return default

    def power_field(self, ref: str) -> str:
        return self._fields.get(ref, "power_w")

    def tags(self, site_id: str | None, source: str, device_id: str, kind: str) -> list[tuple[str, str]]:
        """The (key, unescaped value) tags for a device's points."""
        ref = f"{source}/{device_id}"
        out = [("role", self.role(site_id, ref, kind))]
        known = self._known.get((site_id, ref))
        if known is not None and known.parent_id:
            out.append(("parent", known.parent_id))
        return out
