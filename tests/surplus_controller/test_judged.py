"""The controller judges the grid meter by its owner's lease (wattbus.liveness), not only by its own
retained `online`: the replica polling the meter stops renewing its lease while readings still
arrive fresh, and the controller goes to the safe state naming why; a renewed lease brings it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import topics
from wattbus.bridge.ownership import Claim, Lease, lease_topic
from wattbus_sim.house_bus import METER, SOURCE

from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto

from .test_closed_loop import MODULE, watched_house, write_config

LEASE_S = 1.0
REPLICA = "judged-r1"


async def test_grid_meter_judged_offline_by_its_owners_lease_leads_to_the_safe_state(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    # a long stale_after_s: the meter's readings stay fresh, only the judgement can stop the car
    config = write_config(tmp_path, "readings", stale_after_s="600", stale_action='"stop"')
    controller = start_service(MODULE, "--config", str(config), env=broker.env("surplus-controller"))
    sim_bus, watcher, states, house, adapter = await watched_house(broker, "judged", 10)
    owner_topic = f"{topics.PREFIX}/device/{SOURCE}/{METER}/owner"

    def lease(seq: int, lease_s: float) -> Lease:
        return Lease(instance=REPLICA, incarnation=1, seq=seq, lease_s=lease_s, lease_until=time.time() + lease_s)

    runner = asyncio.create_task(adapter.run(house.time_s + 3600))
    try:
        await until(lambda: house.charger.enabled, 30, "charging from the sun")
        # one replica claims the meter and then stops renewing its lease (paused, or killed by SIGKILL)
        sim_bus.publish(owner_topic, Claim(instance=REPLICA, epoch=1, lease_s=LEASE_S, since=time.time()), retain=True)
        sim_bus.publish(lease_topic(SOURCE, REPLICA), lease(1, LEASE_S), retain=True)
        await until(lambda: bool(states) and "judged offline" in (states[-1].alert or ""), 20, "judged offline")
        alert = states[-1].alert or ""
        assert f"grid meter {SOURCE}/{METER} judged offline: owner {SOURCE}/{REPLICA} lease lapsed" in alert
        await until(lambda: not house.charger.enabled, 10, "safe state: stopped")
        assert "safe state" in states[-1].reason and states[-1].status == "safe_state"
        sim_bus.publish(lease_topic(SOURCE, REPLICA), lease(2, 600.0), retain=True)  # the replica is back
        await until(lambda: states[-1].alert is None, 20, "alert cleared when the owner renews its lease")
    finally:
        runner.cancel()
        for topic in (owner_topic, lease_topic(SOURCE, REPLICA)):
            sim_bus.publish(topic, b"", retain=True)
    out = controller.output()
    assert "device judged offline" in out and "device back online" in out
    await watcher.stop()
    await sim_bus.stop()
