"""The `[influx-writer]` config section."""

from __future__ import annotations

import socket
from typing import Annotated, ClassVar, Literal

from msgspec import Meta, field
from wattbus import topics
from wattbus.config import ConfigError
from wattbus.influx import InfluxConnection

# The broker keeps a stopped writer's readings for a week (Mosquitto's persistent_client_expiration).
SESSION_EXPIRY_S = 7 * 24 * 3600


class Config(InfluxConnection, kw_only=True):
    """The connection keys (url, api, database/bucket, secrets, timeout_s) are wattbus.influx's,
    shared with the http-api's history reads; the rest is the writer's own."""

    SECTION: ClassVar[str] = "influx-writer"
    create_database: bool = False  # v1 only: CREATE DATABASE on start (needs admin rights)
    # batching
    batch_size: Annotated[int, Meta(ge=1, le=1_000_000)] = 5000
    flush_interval_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    # Write early when no reading arrived for this long (0 = only by size and flush_interval_s).
    idle_flush_s: Annotated[float, Meta(ge=0, le=60)] = 0.2
    gzip: bool = False
    # no-loss machinery
    spool_dir: str = "/var/lib/wattbus/influx-writer/spool"
    spool_max_mb: Annotated[float, Meta(gt=0)] = 512.0
    spool_fsync: bool = True
    dead_letter_file: str = "/var/lib/wattbus/influx-writer/dead-letter.jsonl"
    dead_letter_max_mb: Annotated[float, Meta(gt=0)] = 64.0
    retry_min_s: Annotated[float, Meta(gt=0)] = 1.0
    retry_max_s: Annotated[float, Meta(gt=0)] = 30.0
    # what to store
    subscriptions: list[str] = field(default_factory=lambda: [topics.ALL_READINGS])
    share_group: str = "influx-writer"  # "" = plain subscription (every instance gets everything)
    # the ingest connection (subscriber.py): how long the broker keeps our session and readings
    # while we are away, and how many unacknowledged readings it may send us (bounds our memory)
    session_expiry_s: Annotated[int, Meta(ge=0, le=0xFFFFFFFF)] = SESSION_EXPIRY_S
    receive_maximum: Annotated[int, Meta(ge=1, le=65535)] = 20000
    # On stop, leave the share group and end the session (drain.py): "auto" when other writers are
    # online (a scale-down), "always", or "never" (keep the session: its readings wait for us).
    drain_on_stop: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        # `docker compose --scale` starts identical replicas: "@hostname" gives each its own
        # instance (and so its own persistent session / client id).
        if self.instance == "@hostname":
            self.instance = topics.slug(socket.gethostname())
        self.check_connection()
        for sub in self.subscriptions:
            _check_subscription(sub)
        if self.share_group:
            topics.segment(self.share_group, "share_group")

    def subscription_list(self) -> list[str]:
        return [topics.shared(self.share_group, s) if self.share_group else s for s in self.subscriptions]


def _check_subscription(sub: str) -> None:
    """A plain contract filter, on a site's bus (`wattbus/v1/...`) or on a central broker
    (`sites/<site_id or +>/wattbus/v1/...`, see docs/fleet.md)."""
    where = f"config [influx-writer] subscriptions: {sub!r}"
    if topics.filter_of(sub) != sub:
        raise ConfigError(f"{where} is a shared subscription; the $share/<group>/ prefix comes from share_group")
    for index, level in enumerate(levels := sub.split("/")):
        if ("+" in level and level != "+") or ("#" in level and (level != "#" or index != len(levels) - 1)):
            raise ConfigError(f"{where} is not a valid MQTT filter: + and # stand for whole levels, # only last")
    rest = sub
    if sub.startswith(f"{topics.SITE_PREFIX}/"):
        parts = sub.split("/", 2)
        site = parts[1]
        if site != "+":
            try:
                topics.segment(site, "site id")
            except topics.TopicError as exc:
                raise ConfigError(f"{where}: {exc} (or + for every site)") from exc
        rest = parts[2] if len(parts) == 3 else ""
    if not rest.startswith(f"{topics.PREFIX}/"):
        raise ConfigError(f"{where} is not a {topics.PREFIX}/ filter, plain or under "
                          f"{topics.SITE_PREFIX}/<site_id>/ (or {topics.SITE_PREFIX}/+/)")

