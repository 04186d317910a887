"""A Modbus request for a unit id the simulator does not have: the hardware's answer, no traceback.

Discovery's LAN sweep asks every host for many unit ids. pymodbus's simulator core sent those to a
device 0 that does not exist and logged a KeyError traceback for each (issue seen in the embedded
demo's sim-sunspec and sim-sdm630-tcp logs). Over Modbus TCP the simulated host is a gateway in
front of its units and answers exception 0x0B (gateway target device failed to respond); on Modbus
RTU a node stays silent for another address, so the master times out. Real pymodbus clients, the
simulator as a real subprocess.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from wattbus_sim.sunspec_devices import BASE, PROFILES, Plant

from tests.simulators.conftest import SimProcess
from tests.support.servers import free_port

GATEWAY_TARGET_FAILED = 0x0B
SUNS = [0x5375, 0x6E53]  # the SunSpec marker "SunS"
SDM_TOTAL_POWER = 0x34  # input register pair, float32


def profile_args(*profiles: str) -> list[str]:
    return [a for p in profiles for a in ("--profile", p)]


def static_grid_w() -> float:
    """What a `--static` SDM630 reads as total power: the simulated plant's grid balance."""
    plant = Plant(static=True)
    return plant.house_w - plant.pv_w()


def assert_quiet(sim: SimProcess) -> None:
    assert sim.terminate() == 0
    assert "Traceback" not in sim.stdout()
    assert sim.stderr() == "", f"the simulator wrote to stderr:\n{sim.stderr()}"


async def assert_gateway_refuses(client: AsyncModbusTcpClient, unit: int) -> None:
    for answer in (await client.read_holding_registers(BASE, count=2, device_id=unit),
                   await client.read_input_registers(0, count=2, device_id=unit),
                   await client.write_register(BASE, 1, device_id=unit)):
        assert answer.isError(), f"unit {unit}: {answer}"
        assert answer.exception_code == GATEWAY_TARGET_FAILED, f"unit {unit}: {answer}"


async def test_sunspec_tcp_answers_0x0b_for_an_absent_unit(start_sim: Callable[..., SimProcess]) -> None:
    port = free_port()
    profiles = ("fronius", "sma", "float")
    sim = start_sim("sunspec", "--port", str(port), "--static", *profile_args(*profiles))
    sim.wait_banner()
    present = sorted(unit for p in profiles for unit in PROFILES[p])
    absent = [0, 3, 100, 247, 255]  # ids a sweep asks (SolarEdge 100, GoodWe 247) that this host lacks
    assert not set(absent) & set(present)
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    try:
        for unit in absent:
            await assert_gateway_refuses(client, unit)
        for unit in present:  # the same connection still serves the units that are there
            answer = await client.read_holding_registers(BASE, count=2, device_id=unit)
            assert not answer.isError() and answer.registers == SUNS, f"unit {unit}: {answer}"
    finally:
        client.close()
    assert_quiet(sim)


async def test_sdm630_tcp_answers_0x0b_for_an_absent_unit(start_sim: Callable[..., SimProcess]) -> None:
    port = free_port()
    sim = start_sim("sunspec", "--port", str(port), "--static", "--profile", "sdm630", "--sdm-unit", "1")
    sim.wait_banner()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    try:
        for unit in (2, 126, 240):
            await assert_gateway_refuses(client, unit)
        answer = await client.read_input_registers(SDM_TOTAL_POWER, count=2, device_id=1)
        assert not answer.isError(), answer
        power = struct.unpack(">f", struct.pack(">HH", *answer.registers))[0]
        assert power == pytest.approx(static_grid_w())
    finally:
        client.close()
    assert_quiet(sim)


async def test_sdm630_rtu_stays_silent_for_an_absent_unit(start_sim: Callable[..., SimProcess],
                                                         tmp_path: Path) -> None:
    link = tmp_path / "sdm630"
    sim = start_sim("sunspec", "--rtu-link", str(link), "--static", "--profile", "sdm630")
    sim.wait_banner()
    client = AsyncModbusSerialClient(str(link), baudrate=9600, timeout=0.5, retries=0)
    await client.connect()
    try:
        with pytest.raises(ModbusIOException, match="No response"):
            await client.read_input_registers(SDM_TOTAL_POWER, count=2, device_id=7)
        answer = await client.read_input_registers(SDM_TOTAL_POWER, count=2, device_id=1)
        assert not answer.isError(), answer
        assert struct.unpack(">f", struct.pack(">HH", *answer.registers))[0] == pytest.approx(static_grid_w())
    finally:
        client.close()
    assert_quiet(sim)


async def test_house_devices_sunspec_face_answers_0x0b_for_an_absent_unit(
        start_sim: Callable[..., SimProcess]) -> None:
    port = free_port()
    sim = start_sim("house_devices", "--goe-port", str(free_port()), "--meter-port", str(free_port()),
                    "--sunspec-port", str(port))
    sim.wait_banner()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    try:
        for unit in (126, 240):
            await assert_gateway_refuses(client, unit)
        answer = await client.read_holding_registers(BASE, count=2, device_id=1)
        assert not answer.isError() and answer.registers == SUNS, answer
    finally:
        client.close()
    assert sim.terminate() == 0
    assert "Traceback" not in sim.stdout() + sim.stderr()
