"""pymodbus reads the simulated Eastron meters the way Eastron's Modbus protocol documents them.

The register table below is Eastron's (SDM630/SDM120/SDM72 Modbus protocol, input registers,
function 04, float32 high word first), written out here rather than taken from the simulator.
The simulated plant exports (static: 650 W house, 4960 W PV), so powers and power factors must be
negative: Eastron signs the PF with the direction of the current. A request over 80 registers,
or for half a float, gets exception 02; a unit id the gateway lacks gets 0x0B, and nothing of
it shows up as an error in the simulator's log.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from wattbus_sim.sunspec_devices import Plant

from tests.simulators.conftest import SimProcess
from tests.support.servers import free_port

ILLEGAL_DATA_ADDRESS = 0x02
GATEWAY_TARGET_FAILED = 0x0B
SERIAL = 0xFC00  # holding registers, uint32
SYSTEM_TYPE = 0x0A  # holding register, float: 1 = 1P2W, 3 = 3P4W
THREE_PHASE = {"v1": 0x00, "v2": 0x02, "v3": 0x04, "i1": 0x06, "i2": 0x08, "i3": 0x0A, "p1": 0x0C, "p2": 0x0E,
               "p3": 0x10, "p": 0x34, "hz": 0x46, "imp_kwh": 0x48, "exp_kwh": 0x4A, "tot_kwh": 0x156}
PF = {"pf1": 0x1E, "pf2": 0x20, "pf3": 0x22}
# unit -> (model, its documented registers, phases, system type)
METERS: dict[int, tuple[str, dict[str, int], int, float]] = {
    1: ("sdm630", {**THREE_PHASE, **PF, "pf": 0x3E}, 3, 3.0),
    2: ("sdm120", {"v1": 0x00, "i1": 0x06, "p1": 0x0C, "pf1": 0x1E, "hz": 0x46, "imp_kwh": 0x48,
                   "exp_kwh": 0x4A, "tot_kwh": 0x156}, 1, 1.0),
    3: ("sdm72", THREE_PHASE, 3, 3.0),
}
STATIC = Plant(static=True)
GRID_W = STATIC.house_w - STATIC.pv_w()


def floats(registers: list[int]) -> list[float]:
    return list(struct.unpack(f">{len(registers) // 2}f", struct.pack(f">{len(registers)}H", *registers)))


@pytest.fixture(scope="module")
def tcp_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimProcess, int]]:
    port = free_port()
    profiles = [a for unit in sorted(METERS) for a in ("--profile", METERS[unit][0])]
    proc = SimProcess(["sunspec", "--port", str(port), "--static", *profiles, "--sdm-unit", str(min(METERS))],
                      tmp_path_factory.mktemp("sdm-tcp"))
    try:
        proc.wait_banner()
        yield proc, port
    finally:
        proc.kill()


@pytest.fixture
async def client(tcp_sim: tuple[SimProcess, int]) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=tcp_sim[1], timeout=3, retries=0)
    await modbus.connect()
    yield modbus
    modbus.close()


async def read_documented(client: AsyncModbusTcpClient, unit: int) -> dict[str, float]:
    """Each quantity on its own, two input registers at its documented address."""
    out = {}
    for key, address in METERS[unit][1].items():
        answer = await client.read_input_registers(address, count=2, device_id=unit)
        assert not answer.isError(), f"unit {unit} {key} @0x{address:04X}: {answer}"
        out[key] = floats(answer.registers)[0]
    return out


@pytest.mark.parametrize("unit", sorted(METERS))
async def test_documented_registers_read_right(client: AsyncModbusTcpClient, unit: int) -> None:
    _, _, phases, system_type = METERS[unit]
    values = await read_documented(client, unit)
    total = values["p"] if phases == 3 else values["p1"]
    assert total == pytest.approx(GRID_W, abs=0.01) and total < 0  # exporting
    assert sum(values[f"p{n}"] for n in range(1, phases + 1)) == pytest.approx(total, abs=0.01)
    for n in range(1, phases + 1):
        assert 207 <= values[f"v{n}"] <= 253 and values[f"i{n}"] > 0  # EN 50160 band; currents unsigned
        if f"pf{n}" in values:
            pf = values[f"pf{n}"]
            assert -1 <= pf < 0, f"phase {n} exports, so Eastron's PF is negative: {pf}"
            assert values[f"v{n}"] * values[f"i{n}"] * pf == pytest.approx(values[f"p{n}"], rel=1e-3)
    if "pf" in values:
        assert -1 <= values["pf"] < 0
    assert 49.8 <= values["hz"] <= 50.2
    assert values["imp_kwh"] == pytest.approx(STATIC.import_wh / 1000)  # kWh on the wire
    assert values["exp_kwh"] == pytest.approx(STATIC.export_wh / 1000)
    assert values["tot_kwh"] == pytest.approx(values["imp_kwh"] + values["exp_kwh"])
    setup = await client.read_holding_registers(SYSTEM_TYPE, count=2, device_id=unit)
    assert not setup.isError() and floats(setup.registers) == [system_type]


async def test_serial_numbers_are_holding_registers(client: AsyncModbusTcpClient) -> None:
    serials = set()
    for unit in METERS:
        answer = await client.read_holding_registers(SERIAL, count=2, device_id=unit)
        assert not answer.isError(), answer
        serials.add(answer.registers[0] << 16 | answer.registers[1])
        wrong_table = await client.read_input_registers(SERIAL, count=2, device_id=unit)
        assert wrong_table.isError() and wrong_table.exception_code == ILLEGAL_DATA_ADDRESS
    assert len(serials) == len(METERS) and 0 not in serials


@pytest.mark.parametrize("unit", sorted(METERS))
async def test_80_registers_per_request_and_no_more(client: AsyncModbusTcpClient, unit: int) -> None:
    block = await client.read_input_registers(0, count=80, device_id=unit)
    assert not block.isError(), block
    values = await read_documented(client, unit)
    in_block = {k: a for k, a in METERS[unit][1].items() if a < 80}
    assert {k: floats(block.registers)[a // 2] for k, a in in_block.items()} == {k: values[k] for k in in_block}
    for address, count in ((0, 82), (0, 100), (0x40, 125), (1, 2), (0, 3)):  # too many; half a float
        answer = await client.read_input_registers(address, count=count, device_id=unit)
        assert answer.isError() and answer.exception_code == ILLEGAL_DATA_ADDRESS, (address, count, answer)


async def test_absent_unit_gets_the_gateway_answer(client: AsyncModbusTcpClient,
                                                   tcp_sim: tuple[SimProcess, int]) -> None:
    for unit in (0, 4, 100, 247):
        answer = await client.read_input_registers(0, count=2, device_id=unit)
        assert answer.isError() and answer.exception_code == GATEWAY_TARGET_FAILED, (unit, answer)
    answer = await client.read_input_registers(0x34, count=2, device_id=1)  # the link still serves unit 1
    assert not answer.isError() and floats(answer.registers)[0] == pytest.approx(GRID_W, abs=0.01)
    log = tcp_sim[0].stdout() + tcp_sim[0].stderr()
    assert "Traceback" not in log and "ERROR" not in log and "KeyError" not in log, log


async def test_rtu_meter_refuses_long_reads_too(tmp_path: Path) -> None:
    link = tmp_path / "sdm630"
    sim = SimProcess(["sunspec", "--rtu-link", str(link), "--static", "--profile", "sdm630"], tmp_path)
    try:
        sim.wait_banner()
        client = AsyncModbusSerialClient(str(link), baudrate=9600, timeout=1, retries=0)
        await client.connect()
        try:
            long_read = await client.read_input_registers(0, count=100, device_id=1)
            assert long_read.isError() and long_read.exception_code == ILLEGAL_DATA_ADDRESS, long_read
            answer = await client.read_input_registers(0, count=80, device_id=1)
            assert not answer.isError() and floats(answer.registers)[0x34 // 2] == pytest.approx(GRID_W, abs=0.01)
        finally:
            client.close()
        assert sim.terminate() == 0
        assert "Traceback" not in sim.stdout() + sim.stderr()
    finally:
        sim.kill()
