"""`make bench`: run every bench/bench_*.py (each has main() -> str) and write bench/REPORT.md."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", default=str(ROOT / "bench" / "report.md"))
    parser.add_argument("only", nargs="*", help="bench names (e.g. bus influx); default: all")
    args = parser.parse_args()
    names = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    sections = [f"# wattbus benchmark report\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
                f"Python {platform.python_version()}, {platform.node()}. Figures from one run on a shared "
                f"2-core machine: compare ratios within a run, not absolute numbers across runs.\n"]
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            text = importlib.import_module(f"bench.{name}").main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failed += 1
            text = "FAILED:\n```\n" + traceback.format_exc() + "```"
            print(text, flush=True)
        sections.append(f"## {name.removeprefix('bench_')} ({time.monotonic() - started:.0f} s)\n\n{text}\n")
    Path(args.report).write_text("\n".join(sections))
    print(f"wrote {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
