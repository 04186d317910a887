"""The SunSpec Alliance's own client (pysunspec2) scans every unit of the SunSpec simulator.

Every model of every unit is found, every point the model definition marks mandatory has a value
(not the type's "not implemented" sentinel), enums hold one of their symbols, bitfields only
defined bits, and the points with a defined range (percent, cos phi, scale factors) stay in it.
The definitions are pysunspec2's model JSON, the same files the simulator encodes from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
from wattbus_sim.sunspec_devices import PROFILES, Plant, models_for
from wattbus_sim.sunspec_devices import meter as sim_meter

from tests.simulators.conftest import SimProcess
from tests.support.servers import free_port

SIM_PROFILES = ("fronius", "sma", "float")
SF_RANGE = (-10, 10)  # SunSpec: scale factors are powers of ten from -10 to 10


@dataclass
class Scan:
    models: dict[int, list[Any]]  # model id -> pysunspec2 model instances
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimProcess, int]]:
    port = free_port()
    args = ["sunspec", "--port", str(port), "--static", *(a for p in SIM_PROFILES for a in ("--profile", p))]
    proc = SimProcess(args, tmp_path_factory.mktemp("sunspec-sim"))
    try:
        proc.wait_banner()
        yield proc, port
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def scans(sim: tuple[SimProcess, int]) -> dict[int, Scan]:
    """pysunspec2's scan of every unit the simulator serves, read once for the module's tests."""
    out: dict[int, Scan] = {}
    for profile in SIM_PROFILES:
        for unit in PROFILES[profile]:
            device = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=sim[1], timeout=5)
            try:
                device.scan()
                models = {key: value for key, value in device.models.items() if isinstance(key, int)}
                scan = Scan(models)
                for model_id, instances in models.items():
                    for model in instances:
                        scan.problems += [f"model {model_id}: {e}" for e in model.error_info.splitlines() if e]
                        _check_group(model, f"unit {unit} model {model_id}", scan.problems)
                out[unit] = scan
            finally:
                device.close()
    return out


def _check_point(point: Any, where: str, problems: list[str]) -> None:
    pdef: dict[str, Any] = point.pdef
    name, ptype, value = pdef["name"], pdef["type"], point.value
    if value is None:
        if pdef.get("mandatory") == "M":
            problems.append(f"{where} {name}: mandatory point not implemented")
        return
    symbols = {int(s["value"]) for s in pdef.get("symbols", [])}
    if ptype.startswith("enum") and symbols and int(value) not in symbols:
        problems.append(f"{where} {name}: {value} is none of {sorted(symbols)}")
    if ptype.startswith("bitfield") and symbols:
        undefined = [bit for bit in range(32) if int(value) >> bit & 1 and bit not in symbols]
        if undefined:
            problems.append(f"{where} {name}: bits {undefined} are not defined")
    if ptype == "sunssf" and not SF_RANGE[0] <= int(value) <= SF_RANGE[1]:
        problems.append(f"{where} {name}: scale factor {value} outside {SF_RANGE}")
    units, scaled = str(pdef.get("units", "")), point.cvalue
    low, high = _range(units, ptype)
    if low is not None and high is not None and not low <= float(scaled) <= high:
        problems.append(f"{where} {name}: {scaled} {units} outside {low}..{high}")


def _range(units: str, ptype: str) -> tuple[float | None, float | None]:
    """The range the model's unit defines: percentages of a rating, signed percent (PF), cos phi."""
    if units.startswith("%") or units == "Pct":
        return (-100.0 if ptype.startswith("int") or units == "Pct" else 0.0), 100.0
    if units == "cos()":
        return -1.0, 1.0
    return None, None


def _check_group(group: Any, where: str, problems: list[str]) -> None:
    for point in group.points.values():
        _check_point(point, where, problems)
    for name, sub in group.groups.items():
        for index, item in enumerate(sub if isinstance(sub, list) else [sub]):
            _check_group(item, f"{where} {name}[{index}]", problems)


@pytest.mark.parametrize("unit", [u for p in SIM_PROFILES for u in PROFILES[p]])
def test_every_model_is_scanned(scans: dict[int, Scan], unit: int) -> None:
    kind, serial = next(PROFILES[p][unit] for p in SIM_PROFILES if unit in PROFILES[p])
    served = [model_id for model_id, _ in models_for(kind, serial, Plant(static=True))]
    assert sorted(scans[unit].models) == sorted(served)
    common = scans[unit].models[1][0]
    assert common.SN.cvalue == serial


@pytest.mark.parametrize("unit", [u for p in SIM_PROFILES for u in PROFILES[p]])
def test_mandatory_points_present_and_in_range(scans: dict[int, Scan], unit: int) -> None:
    assert scans[unit].problems == []


def test_meter_power_factor_is_percent(scans: dict[int, Scan]) -> None:
    """Model 203 defines PF in percent: a meter at cos phi 0.98 reads 98, not 0.98."""
    meter = scans[240].models[203][0]
    sent = sim_meter(Plant(static=True))[1]
    read = [meter.PF.cvalue, *(getattr(meter, f"PFph{x}").cvalue for x in "ABC")]
    assert read == pytest.approx([sent["PF"], *(sent[f"PFph{x}"] for x in "ABC")])
    assert all(80 <= pf <= 100 for pf in read)  # percent: a ratio would read below 1


def test_scans_leave_the_simulator_log_clean(sim: tuple[SimProcess, int], scans: dict[int, Scan]) -> None:
    assert len(scans) == sum(len(PROFILES[p]) for p in SIM_PROFILES)
    log = sim[0].stdout() + sim[0].stderr()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_power_limit_written_by_pysunspec2_throttles(sim: tuple[SimProcess, int], scans: dict[int, Scan]) -> None:
    """Model 123 the way pysunspec2 writes it: the inverter throttles, and lets go when disabled."""
    device = SunSpecModbusClientDeviceTCP(slave_id=126, ipaddr="127.0.0.1", ipport=sim[1], timeout=5)
    try:
        device.scan()
        controls, inverter = device.models[123][0], device.models[103][0]
        full = inverter.W.cvalue
        controls.WMaxLimPct.cvalue = 25
        controls.WMaxLim_Ena.value = 1  # ENABLED
        controls.write()
        try:
            throttled = _read_until(inverter, lambda w: w < full)
            controls.read()
            assert (controls.WMaxLimPct.cvalue, controls.WMaxLim_Ena.value) == (25, 1)
            assert throttled == pytest.approx(Plant(static=True).peak_w * 0.25, abs=1)
            assert inverter.St.value == 5  # THROTTLED
        finally:
            controls.WMaxLim_Ena.value = 0  # the plant is shared by every unit of this simulator
            controls.write()
        assert _read_until(inverter, lambda w: w == full) == full
    finally:
        device.close()


def _read_until(model: Any, done: Callable[[float], bool], attempts: int = 50) -> float:
    """Read the inverter's W until `done` holds: the simulator applies controls at its next refresh."""
    for _ in range(attempts):
        model.read()
        if done(model.W.cvalue):
            return float(model.W.cvalue)
        time.sleep(0.05)
    raise AssertionError(f"W stayed {model.W.cvalue} after {attempts} reads")
