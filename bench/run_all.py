"""`make bench`: run every bench/bench_*.py (each has main() -> str) and write bench/REPORT.md."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import plots  # noqa: E402 - after the path set-up above


def plot_of(name: str, text: str, report_dir: Path) -> str | None:
    """The section's PNG (bench/plots.py), as a path relative to the report; None without one."""
    try:
        path = plots.plot_for(name, text)
    except (ValueError, KeyError, OSError) as exc:  # a malformed figure file must not lose the report
        print(f"plot for {name} failed: {exc!r}", flush=True)
        return None
    return os.path.relpath(path, report_dir) if path else None


def headline(text: str) -> str:
    """The first body row of the section's first table, for the overview."""
    _header, rows = plots.parse_table(text)
    return " / ".join(c for c in rows[0][:3] if c) if rows else "-"


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
    overview: list[str] = []
    report_dir = Path(args.report).resolve().parent
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        ok = True
        try:
            text = importlib.import_module(f"bench.{name}").main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failed += 1
            ok = False
            text = "FAILED:\n```\n" + traceback.format_exc() + "```"
            print(text, flush=True)
        short = name.removeprefix("bench_")
        took = time.monotonic() - started
        image = plot_of(short, text, report_dir) if ok else None
        if image:
            text += f"\n\n![{short}]({image})\n"
        overview.append(f"| [{short}](#{short}-{took:.0f}-s) | {'ok' if ok else 'FAILED'} | {took:.0f} s | "
                        f"{headline(text) if ok else '-'} |")
        sections.append(f"## {short} ({took:.0f} s)\n\n{text}\n")
    table = ["| benchmark | result | time | first figure |", "|---|---|---:|---|", *overview]
    if not plots.available():
        table.append("\n(plots need matplotlib: `pip install matplotlib`)")
    sections.insert(1, "## Overview\n\n" + "\n".join(table) + "\n")
    Path(args.report).write_text("\n".join(sections))
    print(f"wrote {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
