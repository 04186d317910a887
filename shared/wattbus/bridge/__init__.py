"""The bridge toolkit: what every bridge does between the runner and its devices, written once.

A bridge is its config, an `Adapter` per device (identify, read, execute, close), its wire module
and its data. The toolkit polls each adapter (`Poller`: schedule, backoff, availability,
rate-limited logging), keeps the configured and the adopted devices in one `Fleet`, routes
commands to the adapter that owns the device (`CommandRouter`: decode, at-most-once, answer) and
reads a device entry once for the setup page (`probe`).
"""

from __future__ import annotations

from .adapter import Adapter, answer, check_capabilities, tags
from .fleet import Fleet
from .poller import Poller
from .router import CommandRouter

__all__ = ["Adapter", "CommandRouter", "Fleet", "Poller", "answer", "check_capabilities", "tags"]
