"""The `[integrations]` config section."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, field
from wattbus.config import ConfigError, ServiceCommon

from .rules import load_rules


class Config(ServiceCommon, kw_only=True):
    # Home Assistant
    hass_enabled: bool = True
    discovery_prefix: str = "homeassistant"
    # One config per entity, for Home Assistant 2024.2 to 2024.10 (no device-based discovery there;
    # before 2024.2 HA refuses the device's serial_number). Checked with 2024.2.0 and 2024.10.4.
    discovery_per_entity: bool = False
    origin_name: str = "wattbus"
    republish_delay_max_s: Annotated[float, Meta(ge=0, le=60)] = 2.0  # random pause after HA's birth
    stale_grace_s: Annotated[float, Meta(ge=0, le=3600)] = 15.0  # then delete configs of vanished devices
    remove_offline_after_s: Annotated[float, Meta(ge=0)] = 0.0  # 0 = keep offline devices in HA
    loadpoint_instance: str = "main"  # the surplus controller instance whose availability loadpoints follow
    command_timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10.0
    # templates
    template_files: list[str] = field(default_factory=list)
    mqtt_prefixes: list[str] = field(default_factory=lambda: ["integrations/"])  # where rules may publish

    def __post_init__(self) -> None:
        prefix = self.discovery_prefix
        if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigError(f"config [integrations] discovery_prefix = {prefix!r}: a plain topic prefix, "
                              "like homeassistant")
        for topic_prefix in self.mqtt_prefixes:
            if not topic_prefix or any(c in topic_prefix for c in "+#"):
                raise ConfigError(f"config [integrations] mqtt_prefixes: {topic_prefix!r} must be a plain topic "
                                  "prefix such as \"integrations/\"")
        # A bad template stops start-up here, with file, line, rule and placeholder in the message.
        load_rules(self.template_files, self.mqtt_prefixes)
