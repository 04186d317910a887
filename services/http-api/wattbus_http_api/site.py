"""The service's shared pieces: bus state, roles, energy, and the command path to the bus."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus.runner import ServiceContext

from .access import AuthThrottle
from .config import Config
from .energy import History
from .flows import Flow, Roles, flow
from .hosts import HostPolicy
from .live import BusWatch, Live, error_name, error_text, judge, loadpoint_problem
from .ratelog import RateLimitedLog
from .sessions import SessionTracker
from .setup_store import Discovered, ServiceCommands, SetupState
from .state import SiteState, silent
from .store import Retention, Store

# How a command's real result becomes an HTTP status.
HTTP_STATUS: dict[str, int] = {"ok": 200, "invalid": 400, "refused": 409, "failed": 502, "timeout": 504}
# Meter totals in m³ the device list shows next to (or instead of) the power.
VOLUME_FIELDS = ("water_m3", "gas_m3")


@dataclass
class Site:
    ctx: ServiceContext[Config]
    state: SiteState
    roles: Roles
    history: History
    token: str | None
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    setup: SetupState
    hosts: HostPolicy  # Host names writes and config reads are answered for
    throttle: AuthThrottle  # wrong tokens per client address
    limiter: RateLimitedLog  # one log line per kind of refusal and interval
    watch: BusWatch  # since when the broker connection is down
    posted_on_bus: frozenset[str] = frozenset()  # the posted keys the last external reading carried
    streams: dict[str, int] = field(default_factory=dict)  # open event streams per client address

    @classmethod
    def build(cls, ctx: ServiceContext[Config]) -> Site:
        state = SiteState(ctx.counters, ctx.log.child("state"))
        roles = Roles(state, ctx.config.site)
        stale = ctx.config.stale_after_s
        cfg = ctx.config
        store = Store(Path(cfg.history_file) if cfg.history_file else None,
                      Retention(cfg.history_curve_days, cfg.history_detail_days, cfg.history_keep_days))
        if store.problem and cfg.history_file:
            ctx.log.error("history not kept on disk", problem=store.problem)
        tracker = SessionTracker(state, store, cfg.grid_price_per_kwh, cfg.feed_in_per_kwh, cfg.currency)
        history = History(state, roles, lambda now: flow(state, roles, now, stale), store, tracker, stale)
        state.listeners.append(history.sample)
        config_file = ctx.config.setup.config_file or ctx.loaded.path
        setup = SetupState(None if config_file is None else Path(config_file),
                           Discovered(ctx.counters, ctx.log.child("setup")), ServiceCommands(ctx.bus, ctx.counters))
        limits = ctx.config.limits
        return cls(ctx, state, roles, history, ctx.config.resolved_token(), ctx.config.networks(), setup,
                   HostPolicy(ctx.config.allowed_hosts), AuthThrottle(limits.auth_failures_burst,
                                                                      limits.auth_failures_per_min),
                   RateLimitedLog(ctx.log.child("refused"), limits.log_interval_s), BusWatch(ctx.bus))

    @property
    def config(self) -> Config:
        return self.ctx.config

    def flow(self) -> Flow:
        return flow(self.state, self.roles, time.monotonic(), self.config.stale_after_s)

    def live(self) -> Live:
        return judge(self.state, self.roles, self.watch, time.monotonic(), self.config.stale_after_s)

    def trusted(self, remote: str | None) -> bool:
        if not remote:
            return False
        try:
            address = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    async def command(self, topic: str, command: m.CommandBase) -> m.CommandResult:
        """Send a command over the bus (MQTT v5 response topic) and return the answer as it came."""
        self.ctx.counters.inc("commands_sent")
        result = await self.ctx.bus.request(topic, command, timeout=self.config.command_timeout_s)
        self.ctx.counters.inc(f"commands_{result.status}")
        if result.status != "ok":
            self.ctx.log.warning("command not applied", topic=topic, status=result.status, reason=result.message)
        return result

    # ------------------------------------------------------------------ documents

    def devices_doc(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        errors = self.state.device_errors()
        for rec in sorted(self.state.devices.values(), key=lambda r: r.ref):
            age = rec.age_s(now)
            fresh = self.state.fresh(rec, now, self.config.stale_after_s)
            error = errors.get(rec.ref)
            out.append({
                "ref": rec.ref, "source": rec.source, "device_id": rec.device_id,
                "meta": msgspec.to_builtins(rec.meta) if rec.meta else None,
                "online": rec.online, "owner": rec.owner, "offline_reason": self.state.offline_reason(rec),
                "stale": fresh is None,
                "reading_age_s": None if age is None else round(age, 1),
                "reading": msgspec.to_builtins(rec.reading) if rec.reading else None,
                "error": msgspec.to_builtins(error) if error else None,
            })
        # Configured devices that never answered have no id and no meta: listed by their address.
        for ref, error in sorted(errors.items()):
            if error.device_id is None:
                source = ref.split("/", 1)[0]
                out.append({"ref": ref, "source": source, "device_id": None, "meta": None, "online": False,
                            "stale": True, "reading_age_s": None, "reading": None,
                            "error": msgspec.to_builtins(error)})
        return out

    def loadpoints_doc(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        down = not self.ctx.bus.connected
        for _lp_id, (lp_state, at) in sorted(self.state.loadpoints.items()):
            doc = msgspec.to_builtins(lp_state)
            doc["age_s"] = round(now - at, 1)
            why = "no broker connection" if down else loadpoint_problem(self.state, now)
            doc["stale"], doc["stale_reason"] = why is not None, why
            out.append(doc)
        return out

    def summary(self) -> dict[str, Any]:
        """What the web UI shows live: flow, devices in short, loadpoints."""
        now = time.monotonic()
        devices = []
        errors = self.state.device_errors()
        down = not self.ctx.bus.connected  # no value is current without the broker
        for rec in sorted(self.state.devices.values(), key=lambda r: r.ref):
            meta = rec.meta
            # a car reports on change, minutes or hours apart: its last word stands (not stale by age)
            vehicle = isinstance(rec.reading, m.VehicleReading)
            reading = (rec.reading if rec.online is not False else None) if vehicle \
                else self.state.fresh(rec, now, self.config.stale_after_s)
            power = getattr(reading, "power_w", None) if reading else None
            # A water or gas meter (AI-on-the-edge, an M-Bus channel) has a volume, often no power.
            volumes = {f: getattr(reading, f, None) if reading else None for f in VOLUME_FIELDS}
            error = errors.get(rec.ref)
            age = rec.age_s(now)
            devices.append({"ref": rec.ref, "kind": meta.kind if meta else None,
                            "name": (meta.name or meta.model or rec.device_id) if meta else rec.device_id,
                            "manufacturer": meta.manufacturer if meta else None,
                            "parent_id": meta.parent_id if meta else None,
                            "status": "error" if error else "offline" if rec.online is False
                            else "stale" if reading is None or down
                            or (not vehicle and silent(rec.reading_at, rec.interval_s, now))
                            else "online",
                            # an offline device: why, as the page shows errors (its owner's lease lapsed)
                            "error": error_text(error) if error else self.state.offline_reason(rec),
                            "age_s": None if age is None else round(age),
                            "power_w": power, **volumes,
                            "soc_pct": getattr(reading, "soc_pct", None) if vehicle and reading else None})
        for ref, error in sorted(errors.items()):
            if error.device_id is None:  # configured, never answered: no id, no meta
                devices.append({"ref": ref, "kind": None, "name": error_name(self.state, ref, error),
                                "manufacturer": None, "parent_id": None, "status": "error",
                                "error": error_text(error), "age_s": None, "power_w": None,
                                **dict.fromkeys(VOLUME_FIELDS), "soc_pct": None})
        return {"flow": msgspec.to_builtins(self.flow()), "live": msgspec.to_builtins(self.live()),
                "devices": devices, "loadpoints": self.loadpoints_doc(), "version": self.state.version}
