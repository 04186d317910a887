"""User rules at run time: every reading through every matching rule, out over MQTT or HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from wattbus import messages as m
from wattbus.bus import Bus
from wattbus.counters import Counters
from wattbus.log import Logger

from . import model
from .render import HttpOut, MqttOut, render, topic_problem
from .rules import Rule

if TYPE_CHECKING:  # the HTTP client is imported only when a rule pushes over HTTP
    from aiohttp import ClientSession

    from .http_push import HttpPusher


class RuleRunner:
    def __init__(self, rules: list[Rule], bus: Bus, counters: Counters, log: Logger) -> None:
        self.rules = rules
        self.bus = bus
        self.counters = counters
        self.log = log
        self.metas: dict[str, m.DeviceMeta] = {}
        self.pushers: dict[str, HttpPusher] = {}
        self._mqtt_last: dict[tuple[str, str], float] = {}
        self._refused_rules: set[str] = set()  # rules whose rendered topic was refused (logged once each)

    def start(self, session: ClientSession) -> list[asyncio.Task[None]]:
        from .http_push import HttpPusher  # only with HTTP rules

        tasks: list[asyncio.Task[None]] = []
        for rule in self.rules:
            if rule.spec.http:
                pusher = HttpPusher(rule.name, rule.spec.http, rule.spec.min_interval_s, session, self.counters,
                                    self.log.child(f"http.{rule.name}"))
                self.pushers[rule.name] = pusher
                tasks.append(asyncio.create_task(pusher.run(), name=f"http-{rule.name}"))
        return tasks

    def on_meta(self, meta: m.DeviceMeta) -> None:
        self.metas[meta.device_id] = meta

    def on_reading(self, source: str, reading: m.ReadingBase) -> None:
        kind = model.kind_of(reading)
        rules = [r for r in self.rules if r.matches(kind, reading.device_id)]
        if not rules:
            return
        base = model.flatten(reading, source, self.metas.get(reading.device_id))
        for rule in rules:
            messages, skipped = render(rule, base)
            if skipped:
                self.counters.inc("template_skipped", len(skipped))
            for message in messages:
                if isinstance(message, MqttOut):
                    self._publish(rule, message)
                else:
                    self._push(message)

    def _publish(self, rule: Rule, message: MqttOut) -> None:
        problem = topic_problem(message.topic)
        if problem is not None:
            # A value rendered into the topic (a device's name with CR/LF or #) would make the broker
            # drop our connection ("malformed packet") on every reading: refused here, counted.
            count = self.counters.inc("template_topic_refused")
            if rule.name not in self._refused_rules:
                self._refused_rules.add(rule.name)
                self.log.warning("rendered topic refused, message not sent (counted as template_topic_refused; "
                                 "logged once per rule)", rule=rule.name, origin=rule.origin,
                                 topic=repr(message.topic[:200]), problem=problem, refused_so_far=count)
            return
        key = (rule.name, message.key)
        now = time.monotonic()
        if rule.spec.min_interval_s and now - self._mqtt_last.get(key, -1e12) < rule.spec.min_interval_s:
            self.counters.inc("template_rate_limited")
            return
        self._mqtt_last[key] = now
        self.bus.publish(message.topic, message.payload, retain=message.retain, qos=message.qos)
        self.counters.inc("template_mqtt_out")

    def _push(self, message: HttpOut) -> None:
        self.pushers[message.rule].submit(message)
        self.counters.inc("template_http_queued")
