"""`wattbus-sim <device> ...`: start one simulator; each module under wattbus_sim registers here."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import wattbus_sim


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(wattbus_sim.__path__)
                  if not m.name.startswith("_") and m.name != "house")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="wattbus-sim", description="run a device simulator")
    parser.add_argument("device", choices=available() or ["(none)"], help="which simulator")
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"wattbus_sim.{args.device}")
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
