"""Bounded coverage-guided fuzzing (atheris) of the byte parsers, seeded with the real captures;
run by `make reliability` only. Expected: N inputs per target, no crash (any exception other
than the one the service catches and counts), and the figures for the report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.servers import ROOT

TARGETS = ["sml", "dsmr", "iec", "giv", "ecu", "bus"]


@pytest.mark.parametrize("target", TARGETS)
def test_atheris_finds_no_crash(target: str, tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    try:
        import atheris  # noqa: F401  (only checking that the fuzzing dependency is there)
    except ImportError:
        pytest.fail("atheris is not installed: `pip install atheris` (the reliability extra)")
    runs = int(os.environ.get("WATTBUS_ATHERIS_RUNS", "10000"))
    proc = subprocess.run([sys.executable, "-m", "reliability.atheris_targets", target, str(runs), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=840,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = proc.stdout + proc.stderr
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", output))
    crashes = sorted(p.name for p in (tmp_path / f"crashes-{target}").glob("*"))
    record_property("runs", stats.get("number_of_executed_units", "?"))
    record_property("new_units", stats.get("new_units_added", "?"))
    record_property("peak_rss_mb", stats.get("peak_rss_mb", "?"))
    assert proc.returncode == 0 and not crashes, f"{target}: exit {proc.returncode}, {crashes}\n{output[-3000:]}"
    assert int(stats.get("number_of_executed_units", "0")) >= runs, output[-2000:]
