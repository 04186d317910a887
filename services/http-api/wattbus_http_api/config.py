"""The `[http-api]` config section: listeners, write access and the MeterHub mapping (the site's
roles are `[site]`, wattbus.site)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta, Struct
from wattbus.config import ConfigError, LoadedConfig, ServiceCommon
from wattbus.influx import InfluxConnection
from wattbus.site import SiteConfig, site_config

Port = Annotated[int, Meta(ge=1, le=65535)]


class Source(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One MeterHub key: a role (grid, pv, pv1.., battery, car, car1.., home) or a device ref, and a field."""

    source: str
    field: str = "power_w"
    scale: float = 1.0
    digits: Annotated[int, Meta(ge=0, le=6)] = 0  # MeterHub sends integers for W and Wh


DEFAULT_MAPPING: dict[str, Source] = {
    "grid_imp_eto": Source(source="grid", field="energy_import_wh"),
    "grid_exp_eto": Source(source="grid", field="energy_export_wh"),
    "grid_p": Source(source="grid", field="power_w"),
    "pv_p": Source(source="pv", field="power_w"),
    "pv_eto": Source(source="pv", field="energy_total_wh"),
    "pv1_p": Source(source="pv1", field="power_w"),
    "pv1_eto": Source(source="pv1", field="energy_total_wh"),
    "pv2_p": Source(source="pv2", field="power_w"),
    "pv2_eto": Source(source="pv2", field="energy_total_wh"),
    "bat_p": Source(source="battery", field="power_w"),
    "bat_soc": Source(source="battery", field="soc_pct"),
    "home_p": Source(source="home", field="power_w"),
    "car_p": Source(source="car", field="power_w"),
    "car_eto": Source(source="car", field="energy_total_wh"),
    "car_amp": Source(source="car", field="set_current_a"),
    "car_phase": Source(source="car", field="phases_active"),
    "car_state": Source(source="car", field="state"),
    # MeterHub's water meter total in litres (its seed example: 1130154 for 1130.154 m³)
    "water_vto": Source(source="water", field="water_m3", scale=1000),
}


class SetupConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The setup page (first-run wizard, roles, sections) and where it writes."""

    config_file: str | None = None  # the file to edit; default: the one this service was started with
    enabled: bool = True  # false: the setup endpoints answer 403 (a read-only installation)
    reload_timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10.0  # wait this long for a service's answer
    probe_timeout_s: Annotated[float, Meta(gt=0, le=30)] = 3.0  # connect check of a device added by hand
    # The old place of each loadpoint's breaker (A), still read: it is `breaker_a` in [[site.loadpoints]] now.
    breakers: dict[str, Annotated[float, Meta(ge=6, le=125)]] = {}


class Limits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one client may hold or try: slow or many connections, wrong tokens, deep JSON, log volume."""

    max_connections: Annotated[int, Meta(ge=8, le=65536)] = 256  # also kept under the open-files limit
    header_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0  # a request's headers, and idle keep-alive
    body_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0  # the whole body once the headers are in
    auth_failures_burst: Annotated[int, Meta(ge=1, le=1000)] = 20  # wrong tokens per address before 429
    auth_failures_per_min: Annotated[float, Meta(gt=0, le=600)] = 20.0  # then this many a minute
    json_max_depth: Annotated[int, Meta(ge=4, le=256)] = 32  # nesting of a request body
    event_streams_per_address: Annotated[int, Meta(ge=1, le=1000)] = 8  # /api/v1/events (all: max_connections/4)
    log_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0  # one log line per kind of refusal per interval


class HistoryInflux(InfluxConnection, kw_only=True):
    """`[http-api.influx]`: the InfluxDB the influx-writer fills (same keys as `[influx-writer]`);
    set, the history is read from it (influx_history.py), the local store stays the fallback."""

    SECTION: ClassVar[str] = "http-api.influx"

    def __post_init__(self) -> None:
        self.check_connection()
        self.check_nested()


class Config(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"  # "0.0.0.0" in a container
    # MeterHub's port 8008; add 6345 so GivTCP clients find their endpoints unchanged
    ports: Annotated[list[Port], Meta(min_length=1)] = msgspec.field(default_factory=lambda: [8008])
    # Writes (POST/PUT) and config reads need `Authorization: Bearer <token>` unless the client is in
    # trusted_networks. None of these four can be changed over HTTP (setup_guard.PROTECTED).
    token: str | None = None
    token_file: str | None = None  # a docker secret
    trusted_networks: list[str] = []  # no token from these; the embedded demo trusts loopback
    # Host names the API answers writes and config reads for (DNS rebinding): besides these, the
    # machine's own names, localhost and any IP address literal (an address cannot be rebound).
    allowed_hosts: list[Annotated[str, Meta(pattern=r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")]] = []
    stale_after_s: Annotated[float, Meta(gt=0)] = 60.0  # older values show as null
    command_timeout_s: Annotated[float, Meta(gt=0, le=120)] = 15.0
    push_interval_s: Annotated[float, Meta(ge=0.05, le=5)] = 0.25  # at most this often per SSE client
    # The old place of the site's roles, still read (wattbus.site); at run time (resolve) what [site] says.
    site: SiteConfig = msgspec.field(default_factory=SiteConfig)
    meterhub: dict[str, Source] = {}  # merged over DEFAULT_MAPPING; source = "" drops a default key
    # POST / may set these keys (MeterHub's publish_config): key -> seconds until the value expires
    publish: dict[str, Annotated[float, Meta(gt=0)]] = {}
    giv_device: str | None = None  # giv-bridge device id for /runAll and controls; default: the only one
    # The local history (energy per 15 min, power curve, charging sessions), a sqlite file that
    # survives restarts; "" keeps it in memory only.
    history_file: str = "/var/lib/wattbus/http-api-history.sqlite3"
    # Pruning (store.py, hourly): the per-minute power curve and the 15-minute energy are kept this
    # many days, then only day totals, which are kept history_keep_days (0: forever).
    history_curve_days: Annotated[int, Meta(ge=1, le=3660)] = 62
    history_detail_days: Annotated[int, Meta(ge=1, le=3660)] = 400
    history_keep_days: Annotated[int, Meta(ge=0, le=36600)] = 0
    influx: HistoryInflux | None = None  # history from InfluxDB; unset: from history_file
    # Charging session cost: grid energy at this price per kWh, PV energy at feed_in_per_kwh (the
    # export it replaced). Unset: sessions show no cost.
    grid_price_per_kwh: Annotated[float, Meta(ge=0, le=100)] | None = None
    feed_in_per_kwh: Annotated[float, Meta(ge=0, le=100)] = 0.0
    currency: Annotated[str, Meta(pattern=r"^[A-Za-z]{3}$")] = "EUR"
    setup: SetupConfig = SetupConfig()
    limits: Limits = Limits()

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise ConfigError(f"[http-api] token_file = {self.token_file!r}: cannot read it ({exc})") from exc
        return None

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets = []
        for index, text in enumerate(self.trusted_networks):
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ConfigError(f"config [http-api] trusted_networks[{index}] = {text!r}: {exc}") from exc
        return nets

    def mapping(self) -> dict[str, Source]:
        merged = {**DEFAULT_MAPPING, **self.meterhub}
        return {key: src for key, src in merged.items() if src.source}


def resolve(loaded: LoadedConfig, cfg: Config) -> Config:
    """The section with `site` = the roles `[site]` states (old places included): what the power flow
    uses, and what `reload_config` compares, so a [site] edited by hand is applied by a reload too."""
    return msgspec.structs.replace(cfg, site=site_config(loaded))
