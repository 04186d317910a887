"""Topic builders and parsers for contract v1. No service formats a topic string by hand.

Layout (every topic starts with `wattbus/v1/`):

    device/<source>/<device_id>/meta            DeviceMeta, retained
    device/<source>/<device_id>/availability    "online" | "offline" (plain text), retained
    device/<source>/<device_id>/reading         Reading (tagged by kind)
    device/<source>/<device_id>/command         Command (tagged by command)
    device/<source>/<device_id>/result          CommandResult for requests without a v5 response topic
    device/<source>/<device_id>/native/<name>   vendor-shaped compatibility documents (GivTCP, aps2mqtt)
    device/<source>/<device_id>/owner           the replica polling it (bridge.ownership.Claim), retained
    discovery/<device_id>                       DeviceAnnouncement, retained
    discovery/command                           Command (rescan)
    loadpoint/<loadpoint_id>/state              LoadpointState, retained
    loadpoint/<loadpoint_id>/command            Command (loadpoint mode and limits)
    service/<service>/<instance>/status         ServiceStatus, retained
    service/<service>/<instance>/availability   "online" | "offline", retained, the last will
    service/<service>/<instance>/command        Command (reload_config)
    service/<service>/all/command               Command for every instance (scaled replicas)
    service/<service>/<instance>/result         CommandResult for service commands
    service/<service>/<instance>/lease          a bridge replica's lease (bridge.ownership.Lease), retained
    service/<service>/<instance>/forms          BridgeForms: how the setup page adds its devices, retained
    service/integrations/<instance>/device/<source>/<device_id>/availability
                                                the device's availability as wattbus.liveness judges it
    reply/<service>/<instance>/<suffix>         response topics a requester listens on

`<source>` is the name of the service that owns the device, so the broker's ACL can give each
bridge write access to its own devices only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from . import messages as m

PREFIX = f"wattbus/{m.CONTRACT_VERSION}"
CONTENT_TYPE = f"application/json; schema=wattbus.{m.CONTRACT_VERSION}"
TEXT_CONTENT_TYPE = "text/plain"

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class TopicError(ValueError):
    """A topic or topic segment that does not fit the contract."""


def segment(value: str, what: str = "segment") -> str:
    """Validate one topic level (a service, instance or device id)."""
    if not _SEGMENT.match(value):
        raise TopicError(f"invalid {what} {value!r}: use letters, digits and _ . : - (max 128), no / + #")
    return value


def slug(*parts: str | int | None) -> str:
    """Build a stable id from identity parts, e.g. slug("SMA", "3004512345") -> "sma-3004512345"."""
    words = [re.sub(r"[^a-z0-9]+", "-", str(p).strip().lower()).strip("-") for p in parts if p not in (None, "")]
    joined = "-".join(w for w in words if w)
    if not joined:
        raise TopicError(f"cannot build an id from {parts!r}")
    return joined[:128]


# --------------------------------------------------------------------------- builders

def device_meta(source: str, device_id: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/meta"


def device_availability(source: str, device_id: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/availability"


def device_reading(source: str, device_id: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/reading"


def device_command(source: str, device_id: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/command"


def device_result(source: str, device_id: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/result"


def device_native(source: str, device_id: str, name: str) -> str:
    return f"{PREFIX}/device/{segment(source, 'source')}/{segment(device_id, 'device id')}/native/{segment(name)}"


def discovery(device_id: str) -> str:
    return f"{PREFIX}/discovery/{segment(device_id, 'device id')}"


DISCOVERY_COMMAND = f"{PREFIX}/discovery/command"


def loadpoint_state(loadpoint_id: str) -> str:
    return f"{PREFIX}/loadpoint/{segment(loadpoint_id, 'loadpoint id')}/state"


def loadpoint_command(loadpoint_id: str) -> str:
    return f"{PREFIX}/loadpoint/{segment(loadpoint_id, 'loadpoint id')}/command"


def service_status(service: str, instance: str) -> str:
    return f"{PREFIX}/service/{segment(service, 'service')}/{segment(instance, 'instance')}/status"


def service_availability(service: str, instance: str) -> str:
    return f"{PREFIX}/service/{segment(service, 'service')}/{segment(instance, 'instance')}/availability"


def service_command(service: str, instance: str) -> str:
    return f"{PREFIX}/service/{segment(service, 'service')}/{segment(instance, 'instance')}/command"


# The instance segment every replica of a service listens on besides its own (`instance = "auto"`
# replicas have hostnames nobody knows in advance); a real instance may not be called this.
ALL_INSTANCES = "all"


def service_broadcast(service: str) -> str:
    """The command topic every instance of a service subscribes to (reload_config for all replicas)."""
    return service_command(service, ALL_INSTANCES)


def service_result(service: str, instance: str) -> str:
    return f"{PREFIX}/service/{segment(service, 'service')}/{segment(instance, 'instance')}/result"


def service_forms(service: str, instance: str) -> str:
    return f"{PREFIX}/service/{segment(service, 'service')}/{segment(instance, 'instance')}/forms"


def reply(service: str, instance: str, suffix: str = "result") -> str:
    return f"{PREFIX}/reply/{segment(service, 'service')}/{segment(instance, 'instance')}/{segment(suffix)}"


# --------------------------------------------------------------------------- filters

ALL_READINGS = f"{PREFIX}/device/+/+/reading"
ALL_META = f"{PREFIX}/device/+/+/meta"
ALL_DEVICE_AVAILABILITY = f"{PREFIX}/device/+/+/availability"
ALL_DISCOVERY = f"{PREFIX}/discovery/+"
ALL_SERVICE_STATUS = f"{PREFIX}/service/+/+/status"
ALL_SERVICE_FORMS = f"{PREFIX}/service/+/+/forms"
ALL_LOADPOINT_STATE = f"{PREFIX}/loadpoint/+/state"


def commands_for(source: str) -> str:
    """The filter a bridge subscribes to for commands to any of its devices."""
    return f"{PREFIX}/device/{segment(source, 'source')}/+/command"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription: the broker spreads matching messages over the group's members."""
    return f"$share/{segment(group, 'group')}/{topic_filter}"


def filter_of(subscription: str) -> str:
    """The plain topic filter inside a (possibly shared) subscription."""
    if subscription.startswith("$share/"):
        return subscription.split("/", 2)[2]
    return subscription


def matches(subscription: str, topic: str) -> bool:
    return bool(topic_matches_sub(filter_of(subscription), topic))


# --------------------------------------------------------------------------- fleet mode (docs/fleet.md)

# A central broker sees each site's bus under `sites/<site_id>/` (the Mosquitto bridge's remote prefix).
SITE_PREFIX = "sites"


def in_site(site_id: str, topic: str) -> str:
    """The topic (or filter) as the central broker sees it: `sites/<site_id>/<topic>`; `+` for any site."""
    if site_id != "+":
        segment(site_id, "site id")
    return f"{SITE_PREFIX}/{site_id}/{topic}"


def strip_site(topic: str) -> tuple[str | None, str]:
    """Split a bridged topic: `sites/<site_id>/wattbus/v1/...` -> (site_id, `wattbus/v1/...`).

    A topic without the site prefix comes back as (None, topic), so one code path serves a site's
    own bus and the central broker. A malformed prefix raises TopicError; what follows the prefix
    is returned as is (topics.parse judges it)."""
    if not topic.startswith(f"{SITE_PREFIX}/"):
        return None, topic
    parts = topic.split("/", 2)
    if len(parts) < 3 or not parts[2]:
        raise TopicError(f"site topic without a topic after the site id: {topic!r}")
    return segment(parts[1], "site id"), parts[2]


# --------------------------------------------------------------------------- parser

@dataclass(frozen=True, slots=True)
class ParsedTopic:
    area: str  # device | discovery | loadpoint | service | reply
    leaf: str  # meta | reading | availability | command | result | native | status | state ...
    source: str | None = None  # owning service for device topics, service name for service topics
    ident: str | None = None  # device id, loadpoint id or service instance
    name: str | None = None  # native document name


def parse(topic: str) -> ParsedTopic:
    """Split a contract topic into its parts; raises TopicError for anything else."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/"):
        raise TopicError(f"not a {PREFIX} topic: {topic!r}")
    rest = parts[2:]
    match rest:
        case ["device", source, device_id, "native", name]:
            return ParsedTopic("device", "native", source, device_id, name)
        case ["device", source, device_id, leaf] if leaf in {"meta", "availability", "reading", "command", "result",
                                                                  "owner"}:
            return ParsedTopic("device", leaf, source, device_id)
        case ["discovery", "command"]:
            return ParsedTopic("discovery", "command")
        case ["discovery", device_id]:
            return ParsedTopic("discovery", "announcement", ident=device_id)
        case ["loadpoint", loadpoint_id, leaf] if leaf in {"state", "command"}:
            return ParsedTopic("loadpoint", leaf, ident=loadpoint_id)
        case ["service", service, instance, leaf] if leaf in {"status", "availability", "command", "result",
                                                                      "lease", "forms"}:
            return ParsedTopic("service", leaf, service, instance)
        case ["reply", service, instance, suffix]:
            return ParsedTopic("reply", "reply", service, instance, suffix)
    raise TopicError(f"unknown {PREFIX} topic layout: {topic!r}")


# --------------------------------------------------------------------------- the table behind docs/topics.md

@dataclass(frozen=True, slots=True)
class TopicSpec:
    pattern: str
    payload: str  # a wattbus.messages type name, or "text"
    retained: bool
    qos: int
    publisher: str
    description: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/meta", "DeviceMeta", True, 1, "bridges",
              "Identity of a device: manufacturer, model, serial, kind, protocol, address, firmware."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/availability", "text", True, 1, "bridges",
              "`online` or `offline`: whether the bridge can currently read the device. A killed bridge "
              "cannot say `offline`: judge it with the owner's lease too (wattbus.liveness, docs/fleet.md)."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/reading", "Reading", False, 1, "bridges",
              "One measurement of the device in SI units, tagged by `kind`, with the device's timestamp."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/command", "Command", False, 1,
              "surplus-controller, http-api, integrations",
              "A request to the device, tagged by `command`; answered on the v5 response topic."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/result", "CommandResult", False, 1, "bridges",
              "Answers to commands that came without an MQTT v5 response topic."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/native/<name>", "json", False, 0, "bridges",
              "Vendor-shaped documents for compatibility (GivTCP runAll, aps2mqtt values)."),
    TopicSpec(f"{PREFIX}/device/<source>/<device_id>/owner", "Claim (wattbus.bridge.ownership)", True, 1, "bridges",
              "The replica that polls the device (`--scale`): instance, epoch, and its last command requests; "
              "the device is live only while that instance's lease is (docs/fleet.md, device liveness)."),
    TopicSpec(f"{PREFIX}/discovery/<device_id>", "DeviceAnnouncement", True, 1, "discovery",
              "A device found on the LAN; `present: false` once it vanished."),
    TopicSpec(f"{PREFIX}/discovery/command", "Command", False, 1, "anyone allowed",
              "`rescan`: sweep the networks now."),
    TopicSpec(f"{PREFIX}/loadpoint/<loadpoint_id>/state", "LoadpointState", True, 1, "surplus-controller",
              "Mode, current, phases and the reason for the controller's last decision."),
    TopicSpec(f"{PREFIX}/loadpoint/<loadpoint_id>/command", "Command", False, 1, "http-api, integrations",
              "`set_loadpoint_mode`, `set_loadpoint_limits`, `set_loadpoint_plan`."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/status", "ServiceStatus", True, 1, "every service",
              "Heartbeat with version, uptime, counters and `device_errors` (the devices it cannot read now, "
              "and why); re-sent at once when those change."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/availability", "text", True, 1, "every service",
              "`online` after connecting, `offline` on clean shutdown and as the last will."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/command", "Command", False, 1, "http-api",
              "`reload_config`: re-read the service's config section; answered on `.../result` (request_id)."),
    TopicSpec(f"{PREFIX}/service/<service>/all/command", "Command", False, 1, "http-api",
              "The same commands for every instance of the service (scaled `instance = \"auto\"` replicas); "
              "each answers on its own `.../<instance>/result`; `probe_device` is answered by one live replica "
              "(the rendezvous hash of the probed entry)."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/result", "CommandResult", False, 1, "every service",
              "Answers to service commands (the service's own topic space, so every broker user may write it)."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/lease", "Lease (wattbus.bridge.ownership)", True, 1,
              "bridges", "A bridge replica is alive until `lease_until`; renewed every lease/3, `released` on exit."),
    TopicSpec(f"{PREFIX}/service/<service>/<instance>/forms", "BridgeForms", True, 1, "bridges",
              "How the setup page adds the bridge's devices by hand (inputs typed from its config Struct, the "
              "list item they make), the protocols it adopts and its probe wait; published at start, kept "
              "(an `auto` replica clears them as it stops)."),
    TopicSpec(f"{PREFIX}/service/integrations/<instance>/device/<source>/<device_id>/availability", "text", True, 1,
              "integrations", "The device's availability as wattbus.liveness judges it (its own availability, its "
              "owner's lease and last will), for Home Assistant and clients that cannot apply the rule."),
    TopicSpec(f"{PREFIX}/reply/<service>/<instance>/<suffix>", "CommandResult", False, 1, "bridges",
              "Response topics; the requester sets one in the MQTT v5 `ResponseTopic` property."),
)
