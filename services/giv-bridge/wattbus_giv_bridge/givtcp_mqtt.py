"""GivTCP's MQTT layout: every value of the runAll document on its own topic.

GivTCP publishes `<MQTT_TOPIC>/<inverter serial>/<section>/.../<field>` (MQTT_TOPIC defaults to
`GivEnergy`), one plain-text value per topic: `GivEnergy/SA2345G678/Power/Power/SOC` = `57`,
`.../Control/Mode` = `Eco`, `.../Battery_Details/<battery serial>/Battery_SOC`. Numbers go out as
text, floats rounded to 3 decimals as GivTCP does; missing values are not published. Opt in with
`givtcp_mqtt = true` (GivTCP's MQTT_OUTPUT); the broker's ACL lets the giv-bridge account write
`GivEnergy/#` only, so another root needs its own ACL line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def leaves(document: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """(topic, text) for every published value of a nested document, depth first."""
    for key, value in document.items():
        topic = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            yield from leaves(value, topic)
        elif isinstance(value, bool):
            yield topic, str(value)
        elif isinstance(value, float):
            yield topic, str(round(value, 3))
        elif isinstance(value, int | str):
            yield topic, str(value)


def topics_for(root: str, serial: str, document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """GivTCP's topics for one inverter's runAll document."""
    yield from leaves(document, f"{root.strip().rstrip('/')}/{serial}")
