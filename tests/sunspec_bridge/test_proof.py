"""Proof: the SunSpec Alliance's reference client reads the same values as the bridge's decoder,
and `wattbus-sunspec-bridge read` dumps a device (or fails clearly when it is not SunSpec)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
from wattbus_sunspec_bridge.link import Endpoint, Link
from wattbus_sunspec_bridge.scan import read_models, scan

from tests.support.servers import free_port


def reference_scan(port: int, unit: int) -> dict[int, dict[str, Any]]:
    device = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5)
    try:
        device.scan()
        out: dict[int, dict[str, Any]] = {}
        for key, models in device.models.items():
            if isinstance(key, int):
                model = models[0]
                out[key] = {name: point.cvalue for name, point in model.points.items()}
        return out
    finally:
        device.close()


async def bridge_scan(port: int, unit: int) -> dict[int, dict[str, Any]]:
    link = Link(Endpoint("127.0.0.1", port), 5.0)
    try:
        decoded, problems = await read_models(link, await scan(link, unit))
    finally:
        link.close()
    assert problems == []
    return {d.model_id: d.values for d in decoded}


async def test_reference_client_agrees(start_sim: Callable[..., Any]) -> None:
    sim = start_sim("fronius", "float")
    for unit in (1, 240, 2):
        reference = await asyncio.to_thread(reference_scan, sim.port, unit)
        ours = await bridge_scan(sim.port, unit)
        assert set(reference) == set(ours), unit
        compared = 0
        for model_id, points in reference.items():
            for name, value in points.items():
                if name in ("ID", "L", "Pad") or isinstance(ours[model_id].get(name), (list, str)) or value is None:
                    continue  # enums/bitfields we name; pysunspec2 keeps numbers
                assert ours[model_id][name] == value or abs(float(ours[model_id][name]) - float(value)) < 1e-3, (
                    unit, model_id, name, ours[model_id][name], value)
                compared += 1
        assert compared > 20


def run_read(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattbus_sunspec_bridge", "read", *args],
                          capture_output=True, text=True, timeout=60)


def test_read_prints_every_model(start_sim: Callable[..., Any]) -> None:
    sim = start_sim("fronius")
    done = run_read(f"127.0.0.1:{sim.port}", "--unit", "1", "--unit", "240")
    assert done.returncode == 0, done.stderr
    devices = json.loads(done.stdout)
    assert [[m["id"] for m in d["models"]] for d in devices] == [[1, 103, 160, 123], [1, 203]]
    assert devices[1]["models"][1]["values"]["TotWhImp"] == 4_567_890


def test_read_refuses_what_is_not_sunspec(start_sim: Callable[..., Any]) -> None:
    sdm = start_sim("sdm630")  # a Modbus device, but no SunSpec map
    done = run_read(f"127.0.0.1:{sdm.port}", "--unit", "1")
    assert done.returncode == 1
    assert ("no SunSpec device" in done.stderr and "is not 'SunS'" in done.stderr) or "exception" in done.stderr
    closed = run_read(f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert closed.returncode == 1 and "cannot connect" in closed.stderr
