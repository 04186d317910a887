"""The real aps2mqtt (PyPI 2.0.2), started by its own `main()` and configured by its own environment
variables, with one change: the pause its socket code leaves the ECU between sending a query and
reading the answer. A real ECU needs those 5 s (three queries: 15 s per poll); the simulator
answers at once, so the tests set it with APS2MQTT_TEST_PAUSE_S to stay fast. Everything that
decodes, names and publishes is aps2mqtt's own code.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from aps2mqtt.apsystems import APSystemsSocket as socket_module
from aps2mqtt.main import main

_original_init = socket_module.APSystemsSocket.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.socket_sleep_time = float(os.environ["APS2MQTT_TEST_PAUSE_S"])


if __name__ == "__main__":
    socket_module.APSystemsSocket.__init__ = _init
    sys.argv = ["aps2mqtt"]
    sys.exit(main())
