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
from wattbus_sim.house_bus import CHARGER, METER, SOURCE

from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto

from .test_closed_loop import MODULE, watched_house, write_config

LEASE_S = 1.0
REPLICA, OTHER = "judged-r1", "judged-r2"


async def test_grid_meter_judged_offline_by_its_owners_lease_leads_to_the_safe_state(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    # a long stale_after_s: the meter's readings stay fresh, only the judgement can stop the car
    config = write_config(tmp_path, "readings", stale_after_s="600", stale_action='"stop"')
    controller = start_service(MODULE, "--config", str(config), env=broker.env("surplus-controller"))
    sim_bus, watcher, states, house, adapter = await watched_house(broker, "judged", 10)
    meter_owner, charger_owner = (f"{topics.PREFIX}/device/{SOURCE}/{ref}/owner" for ref in (METER, CHARGER))

    def claim(topic: str, replica: str) -> None:
        sim_bus.publish(topic, Claim(instance=replica, epoch=1, lease_s=LEASE_S, since=time.time()), retain=True)

    def lease(replica: str, seq: int, lease_s: float) -> None:
        sim_bus.publish(lease_topic(SOURCE, replica), Lease(instance=replica, incarnation=1, seq=seq, lease_s=lease_s,
                                                            lease_until=time.time() + lease_s), retain=True)

    runner = asyncio.create_task(adapter.run(house.time_s + 3600))
    try:
        await until(lambda: house.charger.enabled, 30, "charging from the sun")
        # one replica claims the meter and the charger, then stops renewing its lease (paused, or SIGKILL)
        lease(REPLICA, 1, LEASE_S)  # first, as a bridge does: a claim whose owner has no lease is offline
        claim(meter_owner, REPLICA)
        claim(charger_owner, REPLICA)
        await until(lambda: bool(states) and "judged offline" in (states[-1].alert or ""), 20, "judged offline")
        alert = states[-1].alert or ""
        assert f"grid meter {SOURCE}/{METER} judged offline: owner {SOURCE}/{REPLICA} lease lapsed" in alert
        await until(lambda: not house.charger.enabled, 10, "safe state: stopped")
        assert "safe state" in states[-1].reason and states[-1].status == "safe_state"
        lease(REPLICA, 2, 600.0)  # the replica is back
        await until(lambda: states[-1].alert is None, 20, "alert cleared when the owner renews its lease")
        resent = "judged online again or taken over"  # the log line of sending the charger's setting again
        await until(lambda: controller.output().count(resent) == 1, 10, "charger's setting re-sent")

        # another replica takes the charger over, then goes too: offline after the grace (1.5 leases + 0.5 s)
        lease(OTHER, 1, LEASE_S)
        claim(charger_owner, OTHER)
        await until(lambda: controller.output().count(resent) == 2, 10, "re-sent to the new owner")
        assert "device taken over by another replica" in controller.output()
        await until(lambda: "charger" in (states[-1].alert or ""), 20, "charger judged offline")
        alert = states[-1].alert or ""
        assert alert.startswith(f"loadpoint garage's charger {SOURCE}/{CHARGER} judged offline: owner "
                                f"{SOURCE}/{OTHER} lease lapsed ") and alert.endswith(" s ago"), alert
        assert states[-1].status != "safe_state"  # the grid is fine: not the safe state, but said
    finally:
        runner.cancel()
        for topic in (meter_owner, charger_owner, lease_topic(SOURCE, REPLICA), lease_topic(SOURCE, OTHER)):
            sim_bus.publish(topic, b"", retain=True)
    out = controller.output()
    assert "device judged offline" in out and "device back online" in out
    await watcher.stop()
    await sim_bus.stop()
