"""`probe_device`: read a described device once through its adapter, before it is saved (the setup
page's "add by hand"). `entry` is a device entry; its variables come as `vars.<name>` keys, since a
probe entry holds no nested tables."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
import uuid
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.config import ConfigError
from wattbus.counters import Counters
from wattbus.runner import ServiceContext

from . import families
from .adapter import DescribedDevice, Silent, device_meta
from .brokers import Brokers
from .cli import read_once
from .config import VARIABLE, Config, DeviceConfig, family_entry, resolve, templates
from .fetch import FetchError
from .modbus import ModbusError
from .spec import Description, MqttSource

# A variable's value lands in URLs, selectors and topics: a plain word, never a path, query or wildcard.
# A basic-auth user name: no colon (it ends the user in the header), no blanks.
USER_PATTERN = r"[^\s:]{1,64}"
VAR_PATTERN = {"http": r"[A-Za-z0-9_.:-]{1,64}", "modbus": r"[A-Za-z0-9_.:-]{1,64}", "mqtt": r"[A-Za-z0-9_.:/-]{1,128}"}


def _used(data: Any) -> list[str]:
    """The {variables} a description uses, in order (its `defaults` and `about` excepted)."""
    if isinstance(data, str):
        return VARIABLE.findall(data)
    items = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    skip = [data.get(k) for k in ("defaults", "about")] if isinstance(data, dict) else []
    return [name for item in items if not any(item is s for s in skip) for name in _used(item)]


def template_form(name: str, text: str) -> m.AddForm:
    """A shipped description as a form: the device id, host and port when it uses them, each variable
    with the description's default; saved as `[[generic-bridge.devices]]` with `template = name`. An
    HTTP device may sit behind basic/digest auth: a user name and a write-only password."""
    raw, used, source, defaults = _parsed(text)
    fields = [form.field(DeviceConfig, "id", default=name, help="the device's id on the bus")]
    entry: dict[str, Any] = {"id": "{id}", "template": name}
    if "host" in used:
        fields.append(form.host_field())
        entry["host"] = "{host}"
    if "port" in used:
        fields.append(form.port_field(int(defaults.get("port", "80"))))
        entry["port"] = "{port}"
    _variables(fields, entry, [v for v in used if v not in ("host", "port")], defaults, source)
    if source == "http":
        fields += [form.field(DeviceConfig, "username", pattern=USER_PATTERN,
                              help="leave empty for none (\"admin\" when only a password is given)"),
                   form.secret_field()]
        entry.update(username="{username}", password="{password}")
    if source == "mqtt":
        fields += broker_fields()
        entry.update({f"broker.{key}": f"{{broker_{key}}}" for key in ("host", "port", "username", "password")})
    return form.add_form(f"generic:{name}", _title(raw, name, source), "devices", entry, fields,
                         address="host" if "host" in used else "none", about=str(raw.get("about", "")))


def broker_fields() -> list[m.FormField]:
    """An MQTT device on another broker than wattbus's (left empty: this one): its address and login."""
    return [m.FormField(key="broker_host", label="Other broker: host", pattern=form.HOST_PATTERN, optional=True,
                        help="leave empty when the device publishes on wattbus's own broker"),
            m.FormField(key="broker_port", label="Other broker: port", input="number", optional=True, min=1,
                        max=65535, step=1, help="1883 when empty"),
            m.FormField(key="broker_username", label="Other broker: user name", pattern=USER_PATTERN, optional=True),
            form.secret_field("broker_password", help="the other broker's password, if it asks for one")]


def rtu_form(name: str, text: str) -> m.AddForm:
    """A Modbus description over a serial line (RTU, or RTU frames over TCP with socket://): the line's
    settings instead of host and port; http-api checks the port as for every serial form."""
    raw, used, source, defaults = _parsed(text)
    fields = [form.field(DeviceConfig, "id", default=name, help="the device's id on the bus"), form.serial_field(),
              *(form.field(DeviceConfig, key) for key in ("baudrate", "parity", "stopbits")),
              form.field(DeviceConfig, "unit_id", default=int(defaults.get("unit_id", "1")))]
    entry: dict[str, Any] = {"id": "{id}", "template": name, "serial_port": "{serial_port}", "baudrate": "{baudrate}",
                             "parity": "{parity}", "stopbits": "{stopbits}", "unit_id": "{unit_id}"}
    _variables(fields, entry, [v for v in used if v not in ("host", "port", "unit_id")], defaults, source)
    return form.add_form(f"generic:{name}:rtu", _title(raw, name, "Modbus RTU"), "devices", entry, fields,
                         address="serial", about=str(raw.get("about", "")))


def _parsed(text: str) -> tuple[dict[str, Any], list[str], str, dict[str, str]]:
    """The description, the variables it uses (in order), its source type and its defaults."""
    raw = tomllib.loads(text)
    return raw, list(dict.fromkeys(_used(raw))), str(raw.get("source", {}).get("type", "http")), raw.get("defaults", {})


def _variables(fields: list[m.FormField], entry: dict[str, Any], names: list[str], defaults: dict[str, str],
               source: str) -> None:
    for var in names:
        fields.append(m.FormField(key=var, label=form.label(var), default=defaults.get(var),
                                  optional=var in defaults, pattern=VAR_PATTERN.get(source, VAR_PATTERN["http"]),
                                  help=f"the description's {{{var}}}"))
        entry[f"vars.{var}"] = f"{{{var}}}"


def _title(raw: dict[str, Any], name: str, source: str) -> str:
    title = " ".join(str(raw[k]) for k in ("manufacturer", "model") if k in raw) or name
    return f"{title} ({raw.get('kind', 'device')}, {source})"


def family_form(name: str) -> m.AddForm:
    return form.add_form(f"generic:{name}", f"{name} (device family)", "devices",
                         {"id": "{id}", "template": name, "host": "{host}", "port": "{port}"},
                         [form.field(DeviceConfig, "id", default=name, help="the device's id on the bus"),
                          form.host_field(), form.port_field(80)])


# How long a probe listens for an MQTT device's first message (inside FORMS.probe_wait_s, which the
# setup page waits for the answer), and for more of its topics after it.
MQTT_WAIT_S = 10.0
MQTT_SETTLE_S = 0.5

# Generic devices are configured, never discovered: forms only, no protocol of its own to adopt.
FORMS = form.Forms(forms=(*(template_form(n, t) for n, t in sorted(templates().items())),
                          *(rtu_form(n, t) for n, t in sorted(templates().items()) if _parsed(t)[2] == "modbus"),
                          *(family_form(n) for n in sorted(families.FAMILIES))), probe_wait_s=15.0)


def entry_of(raw: dict[str, Any]) -> dict[str, Any]:
    """The flat probe entry as the device's table: "vars.x" (as text) and "broker.x" keys nested."""
    entry: dict[str, Any] = {}
    for key, value in raw.items():
        table, dot, inner = key.partition(".")
        if dot and table in ("vars", "broker"):
            entry.setdefault(table, {})[inner] = str(value) if table == "vars" else value
        else:
            entry[key] = value
    return entry


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    dev = toolkit.entry(ctx, entry_of(dict(command.entry)), DeviceConfig)
    if isinstance(dev, m.CommandResult):
        return dev
    if dev.template in families.FAMILIES:
        return await probe_family(ctx, dev)
    try:
        desc = resolve(dev, 0)
    except ConfigError as exc:
        return toolkit.invalid(ctx, str(exc))
    try:
        reading, misses = await (listen_once(ctx, dev, desc) if isinstance(desc.source, MqttSource)
                                 else read_once(ctx.name, dev, desc))
    except (FetchError, ModbusError, Silent) as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))
    status: m.CommandStatus = "failed" if misses and len(misses) == len(desc.values) else "ok"
    message = f"{dev.id}: answered" + (f"; not matched: {'; '.join(misses)}" if misses else "")
    return m.CommandResult(status=status, message=message, devices=[device_meta(ctx.name, dev, desc)],
                           readings=[reading])  # type: ignore[list-item]  # a ReadingBase is one of them


async def listen_once(ctx: ServiceContext[Config], dev: DeviceConfig, desc: Description) -> tuple[m.ReadingBase,
                                                                                                   list[str]]:
    """An MQTT device's values from its first message (within MQTT_WAIT_S, or the entry's shorter interval_s),
    plus whatever its other topics bring right after (retained values come together); its topics are
    dropped again after."""
    assert isinstance(desc.source, MqttSource)
    brokers = None
    if dev.broker is not None:  # a client id of its own: the running bridge's connection stays up
        brokers = Brokers(ctx.instance, ctx.log)
        probe_id = f"wattbus-generic-bridge-probe-{uuid.uuid4().hex[:12]}"
        dev = msgspec.structs.replace(dev, broker=msgspec.structs.replace(dev.broker, client_id=probe_id))
    adapter = DescribedDevice(ctx.name, dev, desc, Counters(), ctx.log, bus=ctx.bus, brokers=brokers)
    wait = min(MQTT_WAIT_S, adapter.interval_s)
    try:
        await adapter.identify()
        try:
            reading = (await asyncio.wait_for(adapter.read(), wait))[0]
        except TimeoutError:
            if dev.broker is not None and adapter.bus is not None and not adapter.bus.connected:
                raise Silent(f"broker {dev.broker.url} not connected within {wait:g} s (is its address, TLS "
                             "or login wrong? the bridge's log says why)") from None
            topics = sorted({adapter.mapper.topic_of(v) for v in desc.values})
            raise Silent(f"no message on {', '.join(topics)} within {wait:g} s") from None
        with contextlib.suppress(TimeoutError):
            while True:  # the next values of a device with several topics, until a pause
                reading = (await asyncio.wait_for(adapter.read(), MQTT_SETTLE_S))[0]
        return reading, adapter.last_misses
    finally:
        if adapter.bus is not None:
            for sub in adapter.subscriptions:
                adapter.bus.unsubscribe(sub)
        if brokers is not None:
            await brokers.close()


async def probe_family(ctx: ServiceContext[Config], dev: DeviceConfig) -> m.CommandResult:
    """A device family's entry (families/): every device behind the address, read once."""
    try:
        family_entry(dev, 0)
        metas, readings = await toolkit.sample(families.adapter(str(dev.template), ctx.name, dev))
    except ConfigError as exc:
        return toolkit.invalid(ctx, str(exc))
    except FetchError as exc:
        return toolkit.result(ctx, dev.id, [], [], [str(exc)])
    return toolkit.result(ctx, dev.id, metas, readings, [])
