"""A bridge's manual-add forms (`messages.BridgeForms`), declared in a few lines next to its probe.

The bridge knows its config: which list a device goes into, what an item looks like, which keys a
person fills in. Each input is typed from the bridge's own config Struct (msgspec's JSON schema:
`Literal` -> a select, numbers with their `Meta` bounds, text with its pattern, help from
`Meta(description=...)`), so the setup page needs no knowledge of any bridge. The runner publishes
`<package>.probe.FORMS` retained on `service/<name>/<instance>/forms` at start; the setup page
(http-api) builds its "add by hand" forms from what running bridges announced.

    FORMS = form.Forms(forms=(form.add_form(
        "goe", "go-e charger", DeviceConfig, "devices", {"url": "http://{host}:{port}"},
        [form.host_field(), form.port_field(80)], protocol="goe"),), probe_wait_s=10.0)
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .. import messages as m
from ..secret_keys import is_secret

UNITS = {"a": "A", "w": "W", "wh": "Wh", "s": "s", "pct": "%", "v": "V", "c": "°C", "hz": "Hz", "m3": "m³"}
WORDS = {"min": "minimum", "max": "maximum", "soc": "charge", "id": "name", "lp": "loadpoint",
         "breaker": "circuit breaker"}
# A host name or an IP address, nothing a URL could hide a path, user or query in (no / @ ? # or space).
HOST_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}"
_BOUNDS = (("minimum", "min"), ("maximum", "max"), ("exclusiveMinimum", "above"), ("exclusiveMaximum", "below"))


def label(key: str) -> str:
    """`max_phase_switches_per_hour` -> "Maximum phase switches per hour"; a unit suffix in brackets."""
    parts = key.split("_")
    unit = UNITS.get(parts[-1]) if len(parts) > 1 else None
    if unit is not None:
        parts = parts[:-1]
    words = " ".join(WORDS.get(p, p) for p in parts)
    text = words[:1].upper() + words[1:]
    return f"{text} ({unit})" if unit else text


def _plain(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The one non-null alternative of an `X | None` field, and whether null was allowed."""
    options = node.get("anyOf")
    if options is None:
        return node, False
    real = [o for o in options if o.get("type") != "null"]
    return (real[0] if len(real) == 1 else {}), len(real) < len(options)


def describe_node(key: str, node: dict[str, Any], help_text: str | None) -> dict[str, Any]:
    """One input from a JSON-schema property: key, label, input, help, default, optional and bounds."""
    plain, optional = _plain(node)
    found: dict[str, Any] = {"key": key, "label": label(key), "optional": optional,
                             "help": help_text or plain.get("description") or node.get("description")}
    if "default" in node:
        found["default"] = node["default"]
    if "enum" in plain:
        found["input"] = "select"
        found["choices"] = plain["enum"]
    elif plain.get("type") in ("number", "integer"):
        found["input"] = "number"
        found["step"] = 1 if plain["type"] == "integer" else "any"
        found.update({name: plain[bound] for bound, name in _BOUNDS if bound in plain})
    elif plain.get("type") == "boolean":
        found["input"] = "checkbox"
    elif plain.get("type") == "string":
        found["input"] = "text"
        if "pattern" in plain:
            found["pattern"] = plain["pattern"]
    else:  # lists and tables: edited elsewhere (roles) or in the file
        found["input"] = "none"
    return found


def properties(config_type: type[Any], inner: str | None = None) -> dict[str, Any]:
    """The JSON-schema properties of a config Struct (or of the Struct `inner` names inside it)."""
    schema = msgspec.json.schema(config_type)
    name = inner or schema["$ref"].rsplit("/", 1)[-1]
    props: dict[str, Any] = schema["$defs"][name]["properties"]
    return props


def field(config_type: type[Any], key: str, *, name: str | None = None, help: str | None = None,
          default: m.ExtraValue = None, optional: bool | None = None, pattern: str | None = None) -> m.FormField:
    """The input for `key` of `config_type` (a list's items for a list key: "unit_ids" -> one unit id),
    named `name` on the form (default: the key). Given help, default or pattern win over the Struct's."""
    node = dict(properties(config_type)[key])
    plain, _ = _plain(node)
    if plain.get("type") == "array":  # a list key filled with one value: the item's type and bounds
        node = {**plain["items"], "description": node.get("description")}
    found = describe_node(name or key, node, help)
    if found["input"] == "none":
        raise TypeError(f"{config_type.__name__}.{key} is a table: a form field takes one value")
    if default is not None:
        found["default"] = default
    elif isinstance(found.get("default"), list):  # a list key's default is no single value
        found.pop("default")
    if optional is not None:
        found["optional"] = optional
    elif found.get("default") is not None:
        found["optional"] = True
    if pattern is not None:
        found["pattern"] = pattern
    return msgspec.convert(found, m.FormField)


def host_field(help: str = "IP address or host name of the device") -> m.FormField:
    return m.FormField(key="host", label="Host", help=help, pattern=HOST_PATTERN)


def port_field(default: int, help: str = "TCP port (leave empty for the usual one)") -> m.FormField:
    return m.FormField(key="port", label="Port", input="number", help=help, optional=True, default=default,
                       min=1, max=65535, step=1)


def serial_field() -> m.FormField:
    return m.FormField(key="serial_port", label="Serial port", help="/dev/ttyUSB0 or socket://host:port "
                       "(an IR head on the network)")


def secret_field(key: str = "password", help: str = "leave empty when the device asks for none") -> m.FormField:
    """A write-only input (input "secret"): the setup page stores it as the config's secret key of that
    name (shown back as "set" only) and never echoes it in a probe answer, page or log line. The
    form's entry must put it alone under a key the secret-key rule covers (add_form checks)."""
    return m.FormField(key=key, label=label(key), input="secret", help=help, optional=True)


def add_form(name: str, title: str, list_key: str, entry: dict[str, Any], fields: Iterable[m.FormField], *,
             protocol: str | None = None, address: Literal["host", "serial", "none"] = "host",
             about: str = "") -> m.AddForm:
    """One form; every "{key}" in `entry` must be one of the fields (checked here, at import)."""
    made = m.AddForm(name=name, title=title, protocol=protocol, list_key=list_key, entry=entry,
                     fields=list(fields), address=address, about=about)
    missing = placeholders(made.entry) - {f.key for f in made.fields}
    if missing:
        raise ValueError(f"form {name!r}: entry uses {sorted(missing)} but has no such field")
    problem = secret_problem(made)
    if problem is not None:
        raise ValueError(problem)
    return made


def secret_problem(form: m.AddForm) -> str | None:
    """Why the form's secret inputs could be read back, or None: each must be the whole value of an
    entry key the secret-key rule covers (secret_keys.py), since the setup API masks only those;
    inside other text ("http://x/?key={pin}") or under another key it would be shown as written.
    Checked at import here and again by the http-api on every announced form."""
    secrets = {f.key for f in form.fields if f.input == "secret"}
    for key, value in _strings(form.entry, ""):
        used = placeholders(value) & secrets
        if used and not (is_secret(key) and value == "{" + next(iter(used)) + "}"):
            return (f"form {form.name!r}: the secret input {sorted(used)[0]!r} goes into {key or 'the entry'} = "
                    f"{value!r}, which the setup API would show back; put it alone under a key such as "
                    "`password`, `token` or `api_key`")
    return None


def _strings(entry: Any, key: str) -> Iterable[tuple[str, str]]:
    """(key, text) of every string in the entry; a list's items carry the list's key."""
    if isinstance(entry, dict):
        for k, v in entry.items():
            yield from _strings(v, str(k))
    elif isinstance(entry, list):
        for v in entry:
            yield from _strings(v, key)
    elif isinstance(entry, str):
        yield key, entry


def placeholders(entry: Any) -> set[str]:
    if isinstance(entry, dict):
        return set().union(*(placeholders(v) for v in entry.values()))
    if isinstance(entry, list):
        return set().union(*(placeholders(v) for v in entry))
    if isinstance(entry, str):
        return {part[1] for part in string.Formatter().parse(entry) if part[1]}
    return set()


@dataclass(frozen=True)
class Forms:
    """What a bridge's probe module declares as FORMS; the runner publishes its `announcement`."""

    forms: tuple[m.AddForm, ...]
    protocols: tuple[str, ...] = ()  # besides the forms' own (discovered devices it adopts)
    probe_wait_s: float = 10.0

    def announcement(self, service: str, instance: str, config_type: type[Any]) -> m.BridgeForms:
        owned = [*self.protocols, *(f.protocol for f in self.forms if f.protocol)]
        return m.BridgeForms(service=service, instance=instance, protocols=list(dict.fromkeys(owned)),
                             deny="deny" in getattr(config_type, "__struct_fields__", ()),
                             probe_wait_s=self.probe_wait_s, forms=list(self.forms))
