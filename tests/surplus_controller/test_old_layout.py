"""A config file from before `[site]` (the controller's own grid_meter, battery, loadpoints): the
real controller runs its loadpoint with it and says once where the keys belong now. (That the old
and the new layout resolve to the same controller config: tests/foundation/test_site.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics

from tests.foundation.test_site import OLD
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

from .test_closed_loop import MODULE

LOADPOINT = "garage"  # its retained state may be another test's: only states from this run count


async def test_the_old_layout_runs_its_loadpoint_and_warns_once(broker: Mosquitto, tmp_path: Path,
                                                                 start_service: Callable[..., Any]) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text(OLD.replace('state_file = "/tmp/state.json"',  # every old place in use
                                  f'state_file = "{tmp_path}/state.json"'))
    started = m.utc_now()
    watcher = await started_bus(broker, "test-admin", "old-layout")
    states: list[m.LoadpointState] = []
    watcher.subscribe(topics.loadpoint_state(LOADPOINT), m.LoadpointState, lambda msg: states.append(msg.payload))
    controller = start_service(MODULE, "--config", str(config), env=broker.env("surplus-controller"))
    try:
        await until(lambda: any(s.timestamp >= started for s in states), 30, "the old-layout loadpoint's state")
        out = controller.output()
        assert out.count("old config layout") == 1, out
        assert "[[surplus-controller.loadpoints]]" in out and "they belong in [site]" in out
        assert "idle until configured" not in out
    finally:
        watcher.publish(topics.loadpoint_state(LOADPOINT), b"", retain=True)
        await watcher.stop()
