"""wattbus-integrations: Home Assistant MQTT discovery, and user templates to other platforms.

    wattbus-integrations                      run the service ([integrations] section)
    wattbus-integrations check FILE...        check template files (exit 2 with file:line on a mistake)
    wattbus-integrations render FILE READING  show what rules send for readings (JSON lines; - = stdin)
    wattbus-integrations discovery READING    print the Home Assistant config for readings (+ --meta)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, ServiceContext, Subcommand

from . import hass_discovery, model
from .config import Config
from .hass import HomeAssistant
from .hass_discovery import HassDiscoverySettings
from .render import render
from .rule_runner import RuleRunner
from .rules import load_rules

NAME = "integrations"


def settings_of(cfg: Config, instance: str) -> HassDiscoverySettings:
    return HassDiscoverySettings(prefix=cfg.discovery_prefix,
                                 service_availability=topics.service_availability(NAME, instance),
                                 loadpoint_availability=topics.service_availability("surplus-controller",
                                                                                    cfg.loadpoint_instance),
                                 origin_name=cfg.origin_name, per_entity=cfg.discovery_per_entity,
                                 judged_by=(NAME, instance))


async def run(ctx: ServiceContext[Config]) -> None:
    cfg = ctx.config
    rules = load_rules(cfg.template_files, cfg.mqtt_prefixes)
    templates = RuleRunner(rules, ctx.bus, ctx.counters, ctx.log.child("templates"))
    hass = HomeAssistant(ctx.bus, settings_of(cfg, ctx.instance), ctx.counters, ctx.log.child("hass"),
                         republish_delay_max_s=cfg.republish_delay_max_s, command_timeout_s=cfg.command_timeout_s)

    def on_reading(msg: Message[bytes]) -> None:
        try:
            reading: m.ReadingBase = codec.decode_reading(msg.payload)
        except codec.PayloadError as exc:
            hass.reject("readings_rejected", msg.topic, str(exc))
            return
        if cfg.hass_enabled:
            hass.on_reading(reading)
        templates.on_reading(topics.parse(msg.topic).source or "", reading)

    def on_meta(msg: Message[bytes]) -> None:
        if msg.payload:
            try:
                templates.on_meta(codec.decode(msg.payload, m.DeviceMeta))
            except codec.PayloadError as exc:
                hass.reject("meta_rejected", msg.topic, str(exc))
                return
        if cfg.hass_enabled:
            hass.on_meta(msg)

    await ctx.bus.wait_connected()
    ctx.bus.subscribe(topics.ALL_META, bytes, on_meta)
    # QoS 0: Home Assistant states and pushed values are latest values; no PUBACK per reading.
    ctx.bus.subscribe(topics.ALL_READINGS, bytes, on_reading, qos=0)
    if cfg.hass_enabled:
        hass.subscribe_rest()
    ctx.log.info("integrations running", hass=cfg.hass_enabled, rules=[r.name for r in rules])
    session = None
    if any(rule.spec.http for rule in rules):
        from wattbus import http_session  # only HTTP rules push over HTTP (aiohttp: ~9 MB a process)

        # No Content-Type guessed from the body: a rule's headers say what it sends.
        session = http_session.session(skip_auto_headers=("Content-Type",))
    tasks = templates.start(session) if session is not None else []
    if cfg.hass_enabled:
        tasks.append(asyncio.create_task(hass.housekeeping(cfg.stale_grace_s, cfg.remove_offline_after_s,
                                                           ctx.stopping)))
    try:
        await ctx.stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if hass.liveness is not None:
            hass.liveness.stop()
        if session is not None:
            await session.close()


# --------------------------------------------------------------------------- subcommands

def _read_readings(name: str) -> tuple[list[m.Reading], int]:
    """Readings from a JSON-lines file (- = stdin); bad lines are reported on stderr and counted."""
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    readings: list[m.Reading] = []
    bad = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            readings.append(codec.decode_reading(line))
        except codec.PayloadError as exc:
            bad += 1
            print(f"{name}:{number}: {exc}", file=sys.stderr)
    return readings, bad


def _check_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="template files ([[rule]] tables)")
    parser.add_argument("--prefix", action="append", help="allowed MQTT topic prefix (default integrations/)")


def _check(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    try:
        rules = load_rules(args.files, args.prefix or ["integrations/"])
    except ConfigError as exc:
        print(f"wattbus-{NAME}: {exc}", file=sys.stderr)
        return 2
    for rule in rules:
        target = f"mqtt {rule.spec.mqtt.topic}" if rule.spec.mqtt else f"http {rule.spec.http.url}"  # type: ignore[union-attr]
        print(f"{rule.origin}: {rule.name}: {', '.join(rule.kinds)} -> {target}")
    return 0


def _render_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="template file")
    parser.add_argument("readings", help="readings as JSON, one per line; - reads stdin")
    parser.add_argument("--source", default="cli", help="the owning service, for {{source}}")
    parser.add_argument("--prefix", action="append", help="allowed MQTT topic prefix (default integrations/)")


def _render(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    try:
        rules = load_rules([args.file], args.prefix or ["integrations/"])
    except ConfigError as exc:
        print(f"wattbus-{NAME}: {exc}", file=sys.stderr)
        return 2
    readings, bad = _read_readings(args.readings)
    for reading in readings:
        base = model.flatten(reading, args.source, None)
        for rule in rules:
            if not rule.matches(model.kind_of(reading), reading.device_id):
                continue
            out, skipped = render(rule, base)
            for item in out:
                if hasattr(item, "topic"):
                    print(f"[{rule.name}] MQTT {item.topic}  {item.payload}")  # type: ignore[union-attr]
                else:
                    print(f"[{rule.name}] {item.method} {item.url}  {item.body}")  # type: ignore[union-attr]
            for reason in skipped:
                print(f"[{rule.name}] skipped: {reason}")
    return 1 if bad else 0


def _discovery_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("readings", help="readings as JSON, one per line; - reads stdin")
    parser.add_argument("--meta", help="a DeviceMeta JSON file (default: a minimal one per reading)")
    parser.add_argument("--prefix", default="homeassistant", help="discovery prefix")


def _discovery(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    settings = HassDiscoverySettings(prefix=args.prefix, service_availability=topics.service_availability(NAME, "main"))
    meta_doc = codec.decode(Path(args.meta).read_bytes(), m.DeviceMeta) if args.meta else None
    readings, bad = _read_readings(args.readings)
    for reading in readings:
        kind = model.kind_of(reading)
        meta = meta_doc or m.DeviceMeta(device_id=reading.device_id, kind=kind,  # type: ignore[arg-type]
                                        source="cli", protocol="simulated")
        present = {k for k, v in model.values_of(reading).items() if v is not None}
        config = hass_discovery.device_config(settings, meta, kind, present)
        print(hass_discovery.config_topic(settings, hass_discovery.object_id(meta.device_id)))
        print(codec.encode(config).decode())
    return 1 if bad else 0


SERVICE = Service(NAME, Config, run, "Home Assistant MQTT discovery and user templates (MQTT, HTTP push)",
                  subcommands=(Subcommand("check", "check template files", _check_args, _check),
                               Subcommand("render", "show what rules send for readings", _render_args, _render),
                               Subcommand("discovery", "print Home Assistant configs for readings",
                                          _discovery_args, _discovery)))


def main() -> int:
    return int(SERVICE.main())


if __name__ == "__main__":
    sys.exit(main())
