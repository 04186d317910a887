"""The bridge's Eastron profiles against the simulated SDM630/SDM120/SDM72 (which refuse reads
over 80 registers, as Eastron documents): every request stays within the limit, and the power
factor reaches the contract as |P|/S while Eastron sends it negative for an exporting phase."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from wattbus_sim.sunspec_devices import Plant
from wattbus_sunspec_bridge.link import Endpoint, Link
from wattbus_sunspec_bridge.profile import ProfileError, load_profile, meter_reading, read_profile, read_serial

from tests.simulators.conftest import SimProcess
from tests.support.servers import free_port

EASTRON_LIMIT = 80  # registers per request (40 float values)
# unit on the simulator -> bridge profile
UNITS = {1: "eastron_sdm630", 2: "eastron_sdm120", 3: "eastron_sdm72"}
SIM_PROFILES = ("sdm630", "sdm120", "sdm72")  # the same meters, unit 1, 2, 3
PF_REGISTERS = (0x1E, 0x20, 0x22)  # Eastron: phase 1..3 power factor, float32
STATIC = Plant(static=True)
STATIC_TS = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sdm_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    args = ["sunspec", "--port", str(port), "--static", "--sdm-unit", "1", *(a for p in SIM_PROFILES for a in
                                                                             ("--profile", p))]
    sim = SimProcess(args, tmp_path_factory.mktemp("sdm"))
    try:
        sim.wait_banner()
        yield port
    finally:
        sim.kill()


async def eastron_pf(port: int, unit: int, phases: int) -> list[float]:
    """The power factors as the meter sends them, read with pymodbus at Eastron's addresses."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    try:
        out = []
        for address in PF_REGISTERS[:phases]:
            answer = await client.read_input_registers(address, count=2, device_id=unit)
            assert not answer.isError(), answer
            out.append(struct.unpack(">f", struct.pack(">HH", *answer.registers))[0])
        return out
    finally:
        client.close()


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_profile_requests_stay_within_eastrons_limit(unit: int) -> None:
    profile = load_profile(UNITS[unit])
    assert profile.max_read <= EASTRON_LIMIT
    assert all(block.count <= profile.max_read for block in profile.ranges())


@pytest.mark.parametrize("unit", sorted(UNITS))
async def test_profile_reads_the_meter(sdm_port: int, unit: int) -> None:
    profile = load_profile(UNITS[unit])
    link = Link(Endpoint("127.0.0.1", sdm_port), 3.0)
    try:
        serial = await read_serial(link, unit, profile)
        before = link.requests
        values = await read_profile(link, unit, profile)  # the meter refuses any request over 80
        assert link.requests - before == len(profile.ranges())
    finally:
        link.close()
    assert serial is not None and int(serial) > 0
    reading = meter_reading("sdm", STATIC_TS, values)
    grid = STATIC.house_w - STATIC.pv_w()
    assert reading.power_w == pytest.approx(grid, abs=0.01) and reading.power_w < 0
    assert reading.energy_import_wh == pytest.approx(STATIC.import_wh, abs=1)
    assert reading.energy_export_wh == pytest.approx(STATIC.export_wh, abs=1)
    pf_points = [key for key in profile.points if key.endswith(".power_factor")]
    sent = await eastron_pf(sdm_port, unit, len(pf_points))
    assert all(pf < 0 for pf in sent)  # exporting: Eastron's sign follows the current
    published = [phase.power_factor for phase in reading.phases if phase.power_factor is not None]
    assert published == pytest.approx([abs(pf) for pf in sent], abs=1e-6)
    assert all(phase.power_w is not None and phase.power_w < 0 for phase in reading.phases)


@pytest.mark.parametrize("bad", ["200", "1", '"50"', "true"])
def test_max_read_out_of_range_is_named(tmp_path: Path, bad: str) -> None:
    (tmp_path / "meter.toml").write_text(f'function = 4\nmax_read = {bad}\n[points]\npower_w = {{ address = 0 }}\n')
    with pytest.raises(ProfileError, match=r"meter\.toml: max_read = .*expected 2\.\.125"):
        load_profile("meter", str(tmp_path))

