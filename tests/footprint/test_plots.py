"""The report's plots: tables as the benchmarks print them become bars of their numeric column."""

from __future__ import annotations

import pytest

from bench import plots

FLEET_TABLE = """100 sites x 10 devices at 1 Hz

| stage | sent | delivered/stored | loss | drain |
|---|---:|---:|---:|---:|
| (a) broker, bare subscriber | 20,000 | 20,000 | 0 | 0.0 s |
| (b) 1 influx-writer(s) -> VictoriaMetrics | 20,000 | 19,998 | 2 | 2.2 s |

| another | table |
|---|---|
| not | read |
"""


def test_first_table_is_parsed() -> None:
    header, rows = plots.parse_table(FLEET_TABLE)
    assert header == ["stage", "sent", "delivered/stored", "loss", "drain"]
    assert [r[0] for r in rows] == ["(a) broker, bare subscriber", "(b) 1 influx-writer(s) -> VictoriaMetrics"]
    assert rows[1][2] == "19,998"


def test_text_without_numbers_gives_no_plot() -> None:
    assert plots.table_plot("words", "| a | b |\n|---|---|\n| x | y |\n| z | w |") is None


def test_table_becomes_png() -> None:
    pytest.importorskip("matplotlib", reason="plots need matplotlib (a dev dependency)")
    path = plots.table_plot("footprint-test-table", FLEET_TABLE)
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path.unlink()
