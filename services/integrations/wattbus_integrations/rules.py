"""User rules: which readings to republish, where, in which shape (TOML files of `[[rule]]`).

    [[rule]]
    name = "openhab"
    kinds = ["meter"]                 # optional: reading kinds (default: all)
    devices = ["emh-*"]               # optional: device id globs (default: all)
    each = "field"                    # "reading" (one message per reading) or "field" (one per value)
    fields = ["power_w"]              # optional with each = "field": only these values
    min_interval_s = 10               # optional rate limit per topic / URL
    [rule.mqtt]                       # or [rule.http]
    topic = "integrations/openhab/{{device_id}}/{{field}}"
    payload = "{{value}}"

Every template is compiled and every placeholder checked against the measurement model at
start-up; a mistake stops the service with file, line, rule and placeholder named.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, field
from wattbus import messages as m
from wattbus.config import ConfigError, ConfigStruct

from . import model
from .template_engine import Template, TemplateError

PER_FIELD = {"field", "value", "unit"}
KINDS = tuple(model.KIND_TYPES)


class MqttTarget(ConfigStruct, kw_only=True):
    topic: str
    payload: str
    retain: bool = False
    qos: Annotated[int, Meta(ge=0, le=2)] = 0


class HttpTarget(ConfigStruct, kw_only=True):
    url: str
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    body: str = ""
    headers: dict[str, str] = {}
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10.0
    retries: Annotated[int, Meta(ge=0, le=20)] = 3
    retry_initial_s: Annotated[float, Meta(gt=0, le=600)] = 1.0
    retry_max_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    queue_max: Annotated[int, Meta(ge=1, le=100_000)] = 1000


class RuleSpec(ConfigStruct, kw_only=True):
    name: str
    kinds: list[m.DeviceKind] = []  # the contract's kinds, vehicle included
    devices: list[str] = []
    each: Literal["reading", "field"] = "reading"
    fields: list[str] = []
    min_interval_s: Annotated[float, Meta(ge=0, le=86400)] = 0.0
    skip_missing: bool = True  # a message whose placeholders are missing is not sent
    constants: dict[str, str] = {}  # fixed values usable as placeholders (tokens, site names)
    enabled: bool = True
    mqtt: MqttTarget | None = None
    http: HttpTarget | None = None


class RuleFile(ConfigStruct, kw_only=True):
    rule: list[RuleSpec] = field(default_factory=list)


class Rule:
    """A checked rule with its compiled templates."""

    def __init__(self, spec: RuleSpec, templates: dict[str, Template], origin: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.templates = templates
        self.origin = origin  # "file:line" of the rule, for log messages

    @property
    def kinds(self) -> list[str]:
        return list(self.spec.kinds) or list(KINDS)

    def matches(self, kind: str, device_id: str) -> bool:
        if self.spec.kinds and kind not in self.spec.kinds:
            return False
        return not self.spec.devices or any(fnmatch.fnmatchcase(device_id, g) for g in self.spec.devices)


def _rule_lines(text: str) -> list[tuple[int, int]]:
    """(first line, last line) of each `[[rule]]` section, 1-based, in file order."""
    lines = text.splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.strip().replace(" ", "") == "[[rule]]"]
    return [(start, (starts[n + 1] - 1) if n + 1 < len(starts) else len(lines)) for n, start in enumerate(starts)]


def _find_line(text: str, span: tuple[int, int] | None, needle: str, fallback: int) -> int:
    if span:
        lines = text.splitlines()
        for number in range(span[0], span[1] + 1):
            if needle in lines[number - 1]:
                return number
        return span[0]
    return fallback


def load_file(path: Path, mqtt_prefixes: list[str]) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"template file {path}: cannot read it ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template file {path}: not valid TOML ({exc})") from exc
    spans = _rule_lines(text)
    try:
        specs = msgspec.convert(data, RuleFile, strict=True).rule
    except msgspec.ValidationError as exc:
        raise ConfigError(f"template file {path}: {exc}") from exc
    rules: list[Rule] = []
    names: set[str] = set()
    for index, spec in enumerate(specs):
        span = spans[index] if index < len(spans) else None
        where = f"{path}:{span[0] if span else 1}"
        if spec.name in names:
            raise ConfigError(f"{where}: rule {spec.name!r} is defined twice")
        names.add(spec.name)
        rules.append(check_rule(spec, text, span, where, mqtt_prefixes, str(path)))
    return rules


def check_rule(spec: RuleSpec, text: str, span: tuple[int, int] | None, where: str, mqtt_prefixes: list[str],
               path: str) -> Rule:
    label = f"rule {spec.name!r}"
    if (spec.mqtt is None) == (spec.http is None):
        raise ConfigError(f"{where}: {label} needs exactly one target, [rule.mqtt] or [rule.http]")
    kinds: list[str] = list(spec.kinds) or list(KINDS)
    known = model.known_names(kinds) | set(spec.constants)
    if spec.each == "field":
        known |= PER_FIELD
        values = set().union(*(model.value_names(k) for k in kinds))
        for name in spec.fields:
            if name not in values and not name.startswith("extra_"):
                raise ConfigError(f"{where}: {label} fields: {name!r} is not a value of {', '.join(kinds)} "
                                  f"readings (known: {', '.join(sorted(values))})")
    sources: dict[str, str] = {}
    if spec.mqtt:
        sources = {"topic": spec.mqtt.topic, "payload": spec.mqtt.payload}
    elif spec.http:
        sources = {"url": spec.http.url, "body": spec.http.body}
        sources.update({f"headers.{k}": v for k, v in spec.http.headers.items()})
    templates: dict[str, Template] = {}
    for key, source in sources.items():
        base = _find_line(text, span, source.split("\n")[0], 1)
        try:
            template = Template(source)
        except TemplateError as exc:
            line = _find_line(text, span, exc.placeholder, base)
            raise ConfigError(f"{path}:{line}: {label} {key}: {exc.message} (template line {exc.line}, "
                              f"column {exc.column})") from exc
        for placeholder in template.placeholders:
            name = placeholder.name
            if name in known or name.startswith("extra_"):
                continue
            line = _find_line(text, span, placeholder.raw, base)
            hint = " (only with each = \"field\")" if name in PER_FIELD else ""
            raise ConfigError(f"{path}:{line}: {label} {key}: unknown placeholder {placeholder.raw}{hint} "
                              f"for {', '.join(kinds)} readings; known: {', '.join(sorted(known))}")
        templates[key] = template
    if spec.mqtt:
        topic = spec.mqtt.topic
        if not any(topic.startswith(prefix) for prefix in mqtt_prefixes):
            raise ConfigError(f"{where}: {label} topic {topic!r} is outside the allowed prefixes "
                              f"{mqtt_prefixes} (mqtt_prefixes in [integrations]; the broker ACL must allow it)")
        if any(c in topic for c in "+#"):
            raise ConfigError(f"{where}: {label} topic {topic!r}: no wildcards (+ #) in a topic to publish to")
    if spec.http and not spec.http.url.startswith(("http://", "https://", "{{")):
        raise ConfigError(f"{where}: {label} url {spec.http.url!r}: use http://host:port/... or https://...")
    return Rule(spec, templates, where)


def load_rules(paths: list[str], mqtt_prefixes: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for name in paths:
        for rule in load_file(Path(name), mqtt_prefixes):
            if rule.name in seen:
                raise ConfigError(f"{rule.origin}: rule {rule.name!r} is already defined in {seen[rule.name]}")
            seen[rule.name] = rule.origin
            if rule.spec.enabled:
                rules.append(rule)
    return rules
