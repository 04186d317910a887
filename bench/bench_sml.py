"""Decode throughput and per-frame latency of the sml-reader pipeline (framing + decoding + mapping)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "services" / "sml-reader"), str(ROOT / "simulators"), str(ROOT / "shared")]

from wattbus_sim.sml import MeterState, build  # noqa: E402
from wattbus_sml_reader.config import MeterConfig  # noqa: E402
from wattbus_sml_reader.mapping import Mapper  # noqa: E402
from wattbus_sml_reader.meter import FrameDecoder  # noqa: E402
from wattbus_sml_reader.values import DecodedFrame  # noqa: E402


def measure(fmt: str, frames: int = 500) -> tuple[str, int, float, float]:
    state = MeterState()
    data = b"".join(build(fmt, state) for _ in range(frames))
    decoder = FrameDecoder(MeterConfig(key="b", port="file:///dev/null", format=fmt))  # type: ignore[arg-type]
    mapper = Mapper()
    start = time.perf_counter()
    good = 0
    for offset in range(0, len(data), 64):  # 64-byte reads, as a USB IR head delivers them
        for item in decoder.feed(data[offset: offset + 64]):
            if isinstance(item, DecodedFrame):
                mapper.reading(item, "b", datetime.now(UTC))
                good += 1
    elapsed = time.perf_counter() - start
    return fmt, good, elapsed / good * 1e3, len(data) / elapsed / 1e3


def main() -> str:
    rows = [measure(fmt) for fmt in ("sml", "dsmr", "iec")]
    lines = ["format  frames  ms/frame  kB/s decoded",
             *[f"{f:6}  {n:6}  {ms:8.3f}  {kbs:10.0f}" for f, n, ms, kbs in rows]]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
