"""The TCP client against the simulator and against a replay of a real capture sent in pieces."""

from __future__ import annotations

import asyncio

import pytest
from wattbus import apsystems
from wattbus.apsystems import decode_info
from wattbus_ecu_bridge.client import EcuClient, EcuConnectionError, Timing
from wattbus_ecu_bridge.decode import decode_realtime
from wattbus_sim.ecu import EcuSimulator

from tests.ecu_bridge.test_decode import load
from tests.support.bus_helpers import until

FAST = Timing(answer_delay_s=0.01, pause_between_commands_s=0.01, timeout_s=3.0)


async def test_the_simulator_serves_one_client_at_a_time(ecu_sim: EcuSimulator) -> None:
    first = await asyncio.open_connection("127.0.0.1", ecu_sim.port)
    await until(lambda: ecu_sim.stats.connections == 1, what="first connection accepted")
    reader, writer = await asyncio.open_connection("127.0.0.1", ecu_sim.port)
    assert await reader.read() == b""  # cut off, like a real ECU busy with another client
    assert ecu_sim.stats.refused == 1
    writer.close()
    first[1].close()


async def test_client_queries_the_simulator(ecu_sim: EcuSimulator) -> None:
    client = EcuClient("127.0.0.1", ecu_sim.port or 0, FAST)
    info = decode_info(await client.ask(apsystems.info_query(), apsystems.CMD_INFO))
    assert info.ecu_id == ecu_sim.ecu_id
    rt = decode_realtime(await client.ask(apsystems.realtime_query(info.ecu_id), apsystems.CMD_REALTIME))
    assert rt.count == len(ecu_sim.fleet) and not rt.problems
    with pytest.raises(EcuConnectionError, match="closed the connection without answering"):
        await client.ask(apsystems.realtime_query("999999999999"), apsystems.CMD_REALTIME)  # not this ECU's id


@pytest.mark.parametrize("pieces", [1, 3, 40])
async def test_answer_split_over_tcp_segments(pieces: int) -> None:
    capture = load("realtime_ecur_yc600_issue79.hex")

    async def replay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"END\n")
        step = -(-len(capture) // pieces)
        for start in range(0, len(capture), step):
            writer.write(capture[start:start + step])
            await writer.drain()
            await asyncio.sleep(0.01)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(replay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        query = apsystems.realtime_query("216000020769")
        got = await EcuClient("127.0.0.1", port, FAST).ask(query, apsystems.CMD_REALTIME)
        assert got == capture
    finally:
        server.close()
        await server.wait_closed()


async def test_unreachable_ecu_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(EcuConnectionError, match="cannot connect"):
        await EcuClient("127.0.0.1", port, FAST).ask(apsystems.info_query(), apsystems.CMD_INFO)


async def test_simulator_command_line() -> None:
    """`wattbus-sim ecu` as the embedded stack starts it, queried over loopback TCP."""
    import sys

    from tests.support.servers import free_port

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wattbus_sim", "ecu", "--port", str(port), "--model", "ECU-C", "--fleet", "03:2",
        "--pv-fraction", "0.5", stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"ECU simulator ECU-C" in line
        info = decode_info(await EcuClient("127.0.0.1", port, FAST).ask(apsystems.info_query(), apsystems.CMD_INFO))
        assert (info.layout, info.inverters_total, info.inverters_online) == ("02", 2, 2)
    finally:
        proc.terminate()
        await proc.wait()
