"""The poll loop's settings as one config base: a bridge's section inherits them (and may change a
default by declaring the field again), so every bridge spells and bounds them alike."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ..config import ServiceCommon
from .ownership import DEFAULT_LEASE_S


class PollSettings(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    poll_interval_s: Annotated[float, Meta(ge=0.2, le=3600)] = 15.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0  # one request to a device
    # A device that fails this many polls in a row is offline; polls back off up to max_backoff_s.
    offline_after_failures: Annotated[int, Meta(ge=1, le=100)] = 3
    max_backoff_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    # `--scale` replicas share the devices (wattbus.bridge.ownership); 0 = poll every device here
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S
