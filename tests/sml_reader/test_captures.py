"""Every real dump of the libsml-testing corpus: decode without a crash, sane values, ids found.

The corpus is fetched, not committed (see fetch_captures.py); set WATTBUS_SML_CAPTURES to a folder
of `.bin` dumps to use another copy. Without one, these tests are skipped with that hint.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from wattbus_sml_reader.mapping import Mapper
from wattbus_sml_reader.values import DecodedFrame, FrameError

from tests.sml_reader.fetch_captures import TARGET
from tests.sml_reader.test_decoders import NOW, decode_all

FOLDER = Path(os.environ.get("WATTBUS_SML_CAPTURES", str(TARGET)))
DUMPS = sorted(FOLDER.glob("*.bin")) if FOLDER.is_dir() else []
# Dumps published as broken on purpose: they must be rejected with reasons, never crash the reader.
BROKEN = {"DZG_DVS-7420.2V.G2_mtr1_error.bin", "EMH_eHZ-IW8E2A5L0EK2P_crash.bin",
          "EMH_eHZ-IW8E2A5L0EK2P_with_error.bin"}
# Expected signs of the grid power in dumps taken while exporting / importing.
EXPORTING = {"DZG_DVS-7420.2V.G2_mtr2_neg.bin", "EMH-ED300L_delivery.bin", "ISKRA_MT175_D1A52-V22-K0t.bin"}
IMPORTING = {"EMH-ED300L_consumption.bin", "ISKRA_MT175_eHZ.bin", "ITRON_OpenWay-3.HZ.bin"}

pytestmark = pytest.mark.skipif(
    not DUMPS, reason=f"no SML corpus in {FOLDER}: python -m tests.sml_reader.fetch_captures")


@pytest.mark.parametrize("dump", DUMPS, ids=[d.name for d in DUMPS])
def test_real_dump(dump: Path) -> None:
    results = decode_all("sml", dump.read_bytes(), 97)
    frames = [r for r in results if isinstance(r, DecodedFrame)]
    errors = [r for r in results if isinstance(r, FrameError)]
    assert all(str(e) for e in errors)
    if dump.name in BROKEN:
        assert errors and not frames
        return
    assert frames, f"{dump.name}: nothing decoded: {[str(e) for e in errors]}"
    mapper = Mapper()
    for frame in frames:
        reading = mapper.reading(frame, "m", NOW).reading
        totals = [v for v in (reading.energy_import_wh, reading.energy_export_wh) if v is not None]
        assert all(v >= 0 for v in totals)
        if dump.name in EXPORTING:
            assert reading.power_w is not None and reading.power_w < 0
        if dump.name in IMPORTING:
            assert reading.power_w is not None and reading.power_w > 0
