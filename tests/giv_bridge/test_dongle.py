"""Heartbeats against the simulated dongle, and the decode subcommand on real captures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_giv_bridge.dongle import Dongle

from tests.giv_bridge.conftest import GivSim
from tests.support.bus_helpers import until

DATA = Path(__file__).parent / "data"


async def test_a_client_that_does_not_echo_is_dropped(giv_sim: GivSim) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", giv_sim.port)
    got = b""
    while True:  # the dongle sends a heartbeat, waits, then closes the socket
        chunk = await asyncio.wait_for(reader.read(4096), 30)
        if not chunk:
            break
        got += chunk
    assert got.startswith(bytes.fromhex("59590001000d0101"))
    writer.close()


async def test_the_bridge_echoes_heartbeats_and_keeps_its_connection(giv_sim: GivSim) -> None:
    counters = Counters()
    dongle = Dongle("127.0.0.1", giv_sim.port, counters, get_logger("test"), timeout_s=5)
    try:
        first = await dongle.read(0x31, 4, 0, 60)
        await until(lambda: counters.get("heartbeats_echoed") >= 2, 30, "two heartbeats echoed")
        second = await dongle.read(0x32, 4, 60, 60)
        assert first.inverter_serial == second.inverter_serial == "SA2345G678"
        assert counters.get("dongle_connects") == 1 and counters.get("dongle_disconnects") == 0
    finally:
        await dongle.close()


def test_decode_cli_on_real_captures(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    lines = (DATA / "hybrid_gen1_2bat_excerpt.log").read_text().splitlines()
    capture.write_text("\n".join([*lines, "not hex at all", "59590001"]) + "\n")
    out = subprocess.run([sys.executable, "-m", "wattbus_giv_bridge", "decode", str(capture), "--values"],
                         capture_output=True, text=True, timeout=60, check=True)
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == len(lines) + 2
    good = [d for d in docs if "error" not in d]
    bad = [d for d in docs if "error" in d]
    assert {d["type"] for d in good} >= {"ReadResponse", "Heartbeat", "ErrorResponse"}
    # One read per line: joined reads show as trailing bytes, their continuations have no header.
    assert {d["error"] for d in bad} >= {"bad_line", "truncated", "trailing_bytes", "bad_header"}
    assert all(d["reason"] for d in bad)
    battery = next(d for d in good if d["type"] == "ReadResponse" and d["address"] == 0x32 and d["base"] == 60)
    assert 2.5 < battery["named"]["cell_01_v"] < 3.7
    assert "rejected" in out.stderr


def test_decode_cli_stream_mode_reassembles_split_reads() -> None:
    out = subprocess.run([sys.executable, "-m", "wattbus_giv_bridge", "decode", "--stream",
                          str(DATA / "hybrid_gen1_2bat_excerpt.log")], capture_output=True, text=True, timeout=60,
                         check=True)
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    errors = {d["error"] for d in docs if "error" in d}
    assert errors >= {"crc_mismatch", "null_response"} and not errors & {"bad_header", "trailing_bytes"}
    assert sum(1 for d in docs if d.get("type") == "ReadResponse") > 300
