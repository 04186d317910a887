"""`wattbus-influx-writer backfill-roles`: the `site_role` points for data stored before role tags.

Points written before the writer tagged roles have no `role` tag, and no `site_role` twin, so the
dashboards and the http-api's history (which read `site_role`) show nothing for that time. This
reads those points back per device kind (meter, inverter, gateway, battery, charger) and day, gives
each device the role it has now (the site's roles through the shared loader, kinds and parents from
the retained metas on the bus, RoleTags' rules), and writes the `site_role` points the writer would
have written: same tags, the role's power field and the lifetime totals, the point's own time.

Idempotent: a point is identified by its series and time, so a second run overwrites each point
with the same values; points that already carry a role tag (written by a tagging writer) are not
read. `--dry-run` reads and counts, writes nothing. Progress: one line per day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError
from wattbus.bus import Bus
from wattbus.config import ConfigError, LoadedConfig
from wattbus.log import get_logger

from .config import Config
from .influx_http import InfluxHttp
from .lineproto import VIEW_MEASUREMENT, VIEW_TOTALS, escape_key, tag_value
from .role_feed import RoleFeed, initial_roles, meta_filters
from .roles import COUNTED, RoleTags
from .sink import Outcome

NAME = "influx-writer"
KINDS = ("meter", "inverter", "gateway", "battery", "charger")  # the kinds a counted role can have
TAGS = ("device_id", "source", "site", "inverter_id", "index", "channel")
GROUP = ", ".join(f'"{tag}"' for tag in TAGS)


class BackfillError(Exception):
    """The database refused a query or a write; str() says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", required=True, type=date.fromisoformat, help="first UTC day, e.g. 2026-01-01")
    parser.add_argument("--until", type=date.fromisoformat, default=None,
                        help="the UTC day to stop before (default: tomorrow)")
    parser.add_argument("--dry-run", action="store_true", help="read and count, write nothing")
    parser.add_argument("--no-bus", action="store_true",
                        help="do not read the device metas from the broker: every device counts as a top-level "
                             "one (a gateway's inverters then count as PV too)")


def query(http: InfluxHttp, q: str) -> list[dict[str, Any]]:
    cfg = http.config
    params = [("q", q), ("epoch", "ns"), ("db", cfg.bucket if cfg.api == "v2" else cfg.database)]
    if cfg.api == "v1" and cfg.retention_policy:
        params.append(("rp", cfg.retention_policy))
    try:
        resp = http.api.call_api("/query", "POST", header_params={"Content-Type": "application/x-www-form-urlencoded"},
                                 post_params=params, auth_settings=[], _return_http_data_only=True,
                                 _preload_content=False, urlopen_kw={"retries": http._retries(True)})
        body = resp.data
        resp.release_conn()
    except ApiException as exc:
        why = str(exc.body or exc.reason)[:300]
        raise BackfillError(f"{cfg.target} refused the query ({exc.status}): {why}") from exc
    except (HTTPError, OSError) as exc:
        raise BackfillError(f"{cfg.target} did not answer: {type(exc).__name__}: {exc}") from exc
    doc = json.loads(body)
    for result in doc.get("results", []):
        if "error" in result:
            raise BackfillError(f"{cfg.target}: {result['error']} (query {q[:200]})")
        if result.get("partial") or any(series.get("partial") for series in result.get("series") or []):
            # the server's [http] max-row-limit cut the answer: writing part of a day would pass for all of it
            raise BackfillError(f"{cfg.target} answered only part of {q[:120]!r} (its max-row-limit); raise it")
    return [series for result in doc.get("results", []) for series in result.get("series", []) or []]


def lines_for(series: dict[str, Any], kind: str, roles: RoleTags) -> list[str]:
    """The `site_role` lines for one device's untagged points; none when its role is not counted."""
    tags = {k: v for k, v in (series.get("tags") or {}).items() if v and k in TAGS}
    source, device_id, site = tags.get("source", ""), tags.get("device_id", ""), tags.get("site") or None
    if not source or not device_id or "inverter_id" in tags or "channel" in tags:
        return []  # strings and relay channels are parts of a device, never a role's point
    role = roles.role(site, f"{source}/{device_id}", kind)
    if role not in COUNTED:
        return []
    tagset = {**tags, "kind": kind}
    tagset.update(dict(roles.tags(site, source, device_id, kind)))
    prefix = f"{VIEW_MEASUREMENT}," + ",".join(sorted(f"{k}={tag_value(v)}" for k, v in tagset.items() if v)) + " "
    power_field = roles.power_field(f"{source}/{device_id}")
    columns: list[str] = series["columns"]
    out = []
    for row in series["values"]:
        values = dict(zip(columns, row, strict=True))
        fields = []
        power = values.get(power_field, values.get(f"extra_{power_field}"))
        if isinstance(power, int | float) and not isinstance(power, bool):
            fields.append(f"power_w={float(power)!r}")
        for name in VIEW_TOTALS:
            value = values.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                fields.append(f"{escape_key(name)}={float(value)!r}")
        if fields:
            out.append(prefix + ",".join(fields) + f" {int(row[0])}\n")
    return out


async def learn_roles(loaded: LoadedConfig, cfg: Config, use_bus: bool) -> RoleTags:
    log = get_logger(f"{NAME}.backfill")
    roles = initial_roles(loaded, log)
    if not use_bus:
        return roles
    bus = Bus(loaded.bus(), NAME, "backfill")
    feed = RoleFeed(roles, bus, loaded, log)
    feed.subscribe(meta_filters(cfg.subscriptions))
    await bus.start()
    try:
        if not await bus.wait_connected(10):
            raise BackfillError(f"no broker connection within 10 s ({loaded.bus().host}:{loaded.bus().port}); "
                                "--no-bus runs without the device metas")
        await feed.settle()
    finally:
        await bus.stop()
    return roles


def backfill(http: InfluxHttp, roles: RoleTags, since: date, until: date, dry_run: bool) -> tuple[int, int]:
    """(points read, site_role points written or, dry, to write); one progress line per day."""
    read = written = 0
    day = since
    while day < until:
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        end = start + 86400
        day_read = day_lines = 0
        body: list[str] = []
        for kind in KINDS:
            # `"role" = ''`: the points of series without a role tag, those the old writer stored
            for series in query(http, f'SELECT * FROM "{kind}" WHERE "role" = \'\' AND time >= {start}s AND '
                                      f'time < {end}s GROUP BY {GROUP}'):
                day_read += len(series["values"])
                body += lines_for(series, kind, roles)
        day_lines = len(body)
        if body and not dry_run:
            for i in range(0, len(body), 5000):
                result = http.write("".join(body[i:i + 5000]).encode(), retry=True)
                if result.outcome is not Outcome.OK:
                    raise BackfillError(f"{http.config.target} refused the write for {day} "
                                        f"({result.status}): {result.message}")
        read, written = read + day_read, written + day_lines
        print(f"{day}: {day_read} points without roles, {day_lines} site_role points "
              f"{'to write (dry run)' if dry_run else 'written'}", flush=True)
        day += timedelta(days=1)
    return read, written


def run(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        cfg = loaded.section(NAME, Config)
        roles = asyncio.run(learn_roles(loaded, cfg, not args.no_bus))
    except (ConfigError, BackfillError) as exc:
        print(f"wattbus-{NAME} backfill-roles: {exc}", file=sys.stderr)
        return 2
    until = args.until or (datetime.now(UTC).date() + timedelta(days=1))
    if until <= args.since:
        print(f"wattbus-{NAME} backfill-roles: --until {until} is not after --since {args.since}", file=sys.stderr)
        return 2
    http = InfluxHttp(cfg, None)
    try:
        read, written = backfill(http, roles, args.since, until, args.dry_run)
    except BackfillError as exc:
        print(f"wattbus-{NAME} backfill-roles: {exc}", file=sys.stderr)
        return 1
    finally:
        http.close()
    print(f"done: {read} points without roles read, {written} site_role points "
          f"{'to write (dry run, nothing written)' if args.dry_run else 'written'} ({args.since} .. {until})")
    return 0
