"""The ECU keeps its clock in the zone it declares, whatever the host's zone; the bridge turns those
local stamps into UTC. Simulator and bridge run as processes under a host zone (TZ) other than the
ECU's, one of them UTC (issue 23: on a UTC machine every reading was stamped an hour early)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from wattbus import apsystems, codec
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus_ecu_bridge import decode
from wattbus_sim.ecu import DEFAULT_IDS, EcuSimulator

from tests.ecu_bridge.conftest import Recorder
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto, free_port, wait_port

DEV = "wattbus/v1/device/ecu-bridge"
ECU_ID = DEFAULT_IDS["ECU-R"]


async def ask(port: int) -> tuple[bytes, bytes]:
    """The info and the real-time answer, on one connection. The ECU serves one client at a time and
    turns others away: wait_port's probe connection may still hold it for a moment."""
    for _ in range(50):
        try:
            return await _ask_once(port)
        except (ConnectionError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.05)
    raise AssertionError(f"the ECU simulator on port {port} kept turning the test away")


async def _ask_once(port: int) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(apsystems.info_query())
        info = await reader.readuntil(b"END\n")
        writer.write(apsystems.realtime_query(apsystems.decode_info(info).ecu_id))
        return info, await reader.readuntil(b"END\n")
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(("host_zone", "ecu_zone"), [("UTC", "Europe/Berlin"), ("Asia/Tokyo", "America/New_York")])
async def test_ecu_clock_and_reading_stamps(host_zone: str, ecu_zone: str, broker: Mosquitto,
                                            watcher: tuple[Bus, Recorder], start_service: Any,
                                            tmp_path: Path) -> None:
    _, rec = watcher
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wattbus_sim", "ecu", "--port", str(port), "--fleet", "01:1,02:1",
        "--pv-fraction", "0.5", "--refresh-s", "0.3", "--timezone", ecu_zone,
        env={**os.environ, "TZ": host_zone}, stdout=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_port, port)
        info_raw, rt_raw = await ask(port)
        info, rt = apsystems.decode_info(info_raw), decode.decode_realtime(rt_raw)
        assert info.timezone == ecu_zone
        # The ECU's own clock reads the declared zone's local time (a naive stamp, as on the wire).
        assert rt.timestamp is not None
        ecu_now = datetime.now(ZoneInfo(ecu_zone)).replace(tzinfo=None)
        assert abs((ecu_now - rt.timestamp).total_seconds()) < 30
        # An ECU-R's info answer ends with its two 6-byte MAC addresses after the time zone.
        tail = f"{len(ecu_zone):03d}{ecu_zone}".encode()
        assert info_raw.index(tail) + len(tail) == len(info_raw) - 16
        assert info_raw[-16:-4] == b"".join(EcuSimulator(ECU_ID).macs)

        cfg = tmp_path / "wattbus.toml"
        cfg.write_text(f'[ecu-bridge]\n[[ecu-bridge.ecus]]\nhost = "127.0.0.1"\nport = {port}\n'
                       'poll_interval_s = 0.3\nanswer_delay_s = 0.02\npause_between_commands_s = 0.02\n'
                       'maintenance_start = "00:00"\nmaintenance_end = "00:00"\n')
        start_service("wattbus_ecu_bridge", "--config", str(cfg), env={**broker.env("ecu-bridge"), "TZ": host_zone})
        topic = f"{DEV}/apsystems-ecu-{ECU_ID}/reading"
        await until(lambda: topic in rec.last, timeout=30, what="the ECU's reading")
        stamp = codec.decode_reading(rec.last[topic]).timestamp
        assert isinstance(stamp, datetime) and stamp.tzinfo is not None
        # The data is at most one refresh (0.3 s) old: in UTC it is now, not hours off.
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 30, (stamp, host_zone, ecu_zone)
        assert isinstance(codec.decode_reading(rec.last[topic]), m.GatewayReading)
    finally:
        sim.terminate()
        await sim.wait()
