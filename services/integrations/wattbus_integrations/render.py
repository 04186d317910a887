"""Turn one reading's model into the messages a rule sends (pure: no I/O, used by the CLI too)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .rules import Rule


@dataclass(frozen=True, slots=True)
class MqttOut:
    rule: str
    topic: str
    payload: str
    retain: bool
    qos: int
    key: str  # the rate limit applies per key: topic, device and value


@dataclass(frozen=True, slots=True)
class HttpOut:
    rule: str
    method: str
    url: str
    body: str
    headers: dict[str, str]
    key: str  # what a newer message may replace while this one waits (rate limit)


MAX_TOPIC_BYTES = 65535  # MQTT: a topic is a UTF-8 string with a 16-bit length


def topic_problem(topic: str) -> str | None:
    """Why a rendered topic cannot be published, or None. The template's literal prefix was checked
    at start-up; the values put into it (device names, extras) come from devices and are checked here:
    a wildcard, NUL, CR/LF or another control character makes the broker close the connection."""
    if not topic:
        return "the topic is empty"
    if topic.startswith("$"):
        return "a topic starting with $ is the broker's own ($SYS)"
    wildcard = next((c for c in topic if c in "+#"), None)
    if wildcard is not None:
        return f"the wildcard {wildcard!r} is not allowed in a topic to publish to"
    bad = next((c for c in topic if unicodedata.category(c) in ("Cc", "Cs") or c in "\ufffe\uffff"), None)
    if bad is not None:
        return f"control or invalid character U+{ord(bad):04X} at position {topic.index(bad)}"
    size = len(topic.encode("utf-8"))
    if size > MAX_TOPIC_BYTES:
        return f"{size} bytes long; a topic may have at most {MAX_TOPIC_BYTES}"
    return None


def models_for(rule: Rule, base: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One model per message: the reading itself, or one per value with field/value/unit set."""
    context = {**rule.spec.constants, **base}
    if rule.spec.each == "reading":
        yield context
        return
    present: dict[str, Any] = base.get("values_json") or {}
    names = rule.spec.fields or list(present)
    for name in names:
        value = present.get(name)
        if value is not None and not isinstance(value, str | list | dict):
            yield {**context, "field": name, "value": value, "unit": model.unit_of(name)}


def render(rule: Rule, base: Mapping[str, Any]) -> tuple[list[MqttOut | HttpOut], list[str]]:
    """The messages for this reading, and the reasons messages were skipped (missing values)."""
    out: list[MqttOut | HttpOut] = []
    skipped: list[str] = []
    for ctx in models_for(rule, base):
        if rule.spec.skip_missing:
            missing = sorted({n for t in rule.templates.values() for n in t.missing(ctx)})
            if missing:
                skipped.append(f"{', '.join(missing)} missing")
                continue
        t = rule.templates
        if rule.spec.mqtt:
            topic = t["topic"].render(ctx)
            out.append(MqttOut(rule.name, topic, t["payload"].render(ctx), rule.spec.mqtt.retain,
                               rule.spec.mqtt.qos, f"{topic} {ctx['device_id']} {ctx.get('field', '')}"))
        elif rule.spec.http:
            http = rule.spec.http
            url = t["url"].render(ctx)
            headers = {k: t[f"headers.{k}"].render(ctx) for k in http.headers}
            # Several devices may share one URL (one ThingsBoard device): never merge their data.
            key = f"{http.method} {url} {ctx['device_id']} {ctx.get('field', '')}"
            out.append(HttpOut(rule.name, http.method, url, t["body"].render(ctx), headers, key))
    return out, skipped
