"""wattbus-influx-writer: store every reading on the bus in InfluxDB, without loss.

    wattbus-influx-writer              run the service ([influx-writer] section)
    wattbus-influx-writer encode FILE  print the line protocol for readings (JSON lines; `-` = stdin)
    wattbus-influx-writer spool        what waits in the spool and the dead-letter file
    wattbus-influx-writer backfill-roles --since DAY [--until DAY] [--dry-run]
                                       site_role points for data stored before role tags (backfill.py)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, ServiceContext, Subcommand

from . import backfill, lineproto
from .config import Config
from .drain import Peers, drain
from .pipeline import Pipeline
from .role_feed import RoleFeed, initial_roles, meta_filters
from .sink import Sink
from .spool import DeadLetters, Spool
from .subscriber import Subscriber

NAME = "influx-writer"
PEER_WINDOW_S = 2.0  # replicas stopped together announce their leaving within this


async def run(ctx: ServiceContext[Config]) -> None:
    cfg = ctx.config
    # `{instance}` keeps the replicas of `--scale influx-writer=N` apart on one shared volume.
    spool_dir = Path(cfg.spool_dir.replace("{instance}", ctx.instance))
    dead_letter_file = Path(cfg.dead_letter_file.replace("{instance}", ctx.instance))
    spool = Spool(spool_dir, int(cfg.spool_max_mb * 1024 * 1024), cfg.spool_fsync, ctx.counters,
                  ctx.log.child("spool"))
    dead = DeadLetters(dead_letter_file, int(cfg.dead_letter_max_mb * 1024 * 1024), ctx.counters,
                       ctx.log.child("dead-letter"))
    roles = initial_roles(ctx.loaded, ctx.log)
    feed = RoleFeed(roles, ctx.bus, ctx.loaded, ctx.log.child("roles"))
    feed.subscribe(meta_filters(cfg.subscriptions))
    async with Sink(cfg, on_retry=lambda: ctx.counters.inc("write_retries")) as sink:
        pipeline = Pipeline(cfg, sink, spool, dead, ctx.counters, ctx.log, roles)
        ingest = Subscriber(ctx.bus.config, client_id=f"{ctx.bus.client_id}-ingest",
                            username=ctx.bus.config.username or NAME, filters=cfg.subscription_list(),
                            session_expiry_s=cfg.session_expiry_s, receive_maximum=cfg.receive_maximum,
                            on_publish=pipeline.on_message, on_acks=pipeline.on_acks, counters=ctx.counters,
                            log=ctx.log.child("ingest"))
        pipeline.acknowledge = ingest.acknowledge
        ctx.log.info("writing readings", target=sink.target, subscriptions=cfg.subscription_list(),
                     spool=str(spool.dir), spool_points=spool.points, session_expiry_s=cfg.session_expiry_s)
        peers = Peers(ctx.bus, NAME, ctx.instance)
        # What start-up created (influxdb-client's generated API is most of it) lives as long as
        # the process: out of the cycle collector's full passes, which otherwise walk it again and
        # again while a backlog drains (measured: 2/3 of the collector's time, 4 us per reading).
        gc.freeze()
        await feed.settle()
        ingest.start()
        watcher = asyncio.create_task(feed.watch_file())
        try:
            await pipeline.run()
        finally:
            watcher.cancel()
            # run() is cancelled at shutdown. With other writers online, hand our share of the
            # stream to them (drain); otherwise stop reading: the broker keeps the rest for our
            # next start. Either way what is in memory is stored before it is acknowledged, with
            # one attempt per write: a database that does not answer must not hold the stop up.
            sink.stop_retrying()
            drained = False
            leaving: bool = bool(cfg.share_group) and await asyncio.create_task(should_drain(ctx, peers))
            if leaving:
                drained = await asyncio.create_task(drain(ingest, pipeline, ctx.log))
            ingest.pause()
            await asyncio.create_task(pipeline.close())
            await asyncio.create_task(ingest.close(end_session=drained))
            ctx.log.info("writer closed", **{k: ctx.counters.get(k) for k in ("received", "written", "spooled")})


async def should_drain(ctx: ServiceContext[Config], peers: Peers) -> bool:
    """Drain only when some writer of the group stays: a stop of every replica at once (`docker
    compose stop`) must keep the sessions, or the readings published meanwhile would find an empty
    share group and be dropped. So announce our leaving at once (availability offline) and watch
    the others for a moment: replicas stopped together see each other leave too."""
    mode = ctx.config.drain_on_stop
    if mode == "never" or (mode == "auto" and not peers.online):
        return False
    ctx.bus.publish(topics.service_availability(NAME, ctx.instance), m.OFFLINE, retain=True)
    if mode == "auto":
        await asyncio.sleep(PEER_WINDOW_S)
        if not peers.online:
            ctx.log.info("every writer of the group is stopping: keeping the session for the next start")
            return False
    ctx.log.info("draining before stop: the other writers take our share", peers=sorted(peers.online))
    return True


# --------------------------------------------------------------------------- subcommands

def _encode_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="readings as JSON, one per line; - reads stdin")
    parser.add_argument("--source", default="cli", help="the source tag (the owning service)")
    parser.add_argument("--site", default=None, help="a site tag, as a central writer adds for sites/<site_id>/")


def _encode(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    text_in = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    bad = 0
    for number, text in enumerate(text_in.splitlines(), 1):
        if not text.strip():
            continue
        try:
            reading = codec.decode_reading(text)
            sys.stdout.write("".join(lineproto.encode(reading, args.source, site=args.site)))
        except (codec.PayloadError, lineproto.EncodeError) as exc:
            bad += 1
            print(f"{args.file}:{number}: {exc}", file=sys.stderr)
    return 1 if bad else 0


def _spool_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tail", type=int, default=5, help="dead letters to show (default 5)")


def _spool(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        cfg = loaded.section(NAME, Config)
    except ConfigError as exc:
        print(f"wattbus-{NAME}: {exc}", file=sys.stderr)
        return 2
    segments = sorted(Path(cfg.spool_dir).glob("*.lp"))
    points = sum(p.read_bytes().count(b"\n") for p in segments)
    size = sum(p.stat().st_size for p in segments)
    print(f"spool {cfg.spool_dir}: {len(segments)} segments, {points} points, {size / 1e6:.1f} MB "
          f"(limit {cfg.spool_max_mb:g} MB)")
    dead = Path(cfg.dead_letter_file)
    lines = dead.read_text(encoding="utf-8", errors="replace").splitlines() if dead.exists() else []
    print(f"dead letters {dead}: {len(lines)}")
    for line in lines[-args.tail:] if args.tail > 0 else []:
        print("  " + line)
    return 0


SERVICE = Service(NAME, Config, run, "Every reading on the bus into InfluxDB (v1 /write or v2 API), without loss",
                  subcommands=(Subcommand("encode", "print the line protocol for readings", _encode_args, _encode),
                               Subcommand("spool", "show the spool and the dead letters", _spool_args, _spool),
                               Subcommand("backfill-roles", "write site_role points for data stored before role tags",
                                          backfill.add_arguments, backfill.run)))


def main() -> int:
    return int(SERVICE.main())


if __name__ == "__main__":
    sys.exit(main())
