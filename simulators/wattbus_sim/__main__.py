"""`wattbus-sim <device> ...`: start one simulator; each module under wattbus_sim registers here."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import wattbus_sim


def available() -> list[str]:
    """Modules that can run as a simulator (they define main()); helpers such as house_ev can't."""
    names = []
    for info in pkgutil.iter_modules(wattbus_sim.__path__):
        path = Path(wattbus_sim.__path__[0]) / f"{info.name}.py"
        if not info.name.startswith("_") and path.exists() and "\ndef main(" in path.read_text():
            names.append(info.name)
    return sorted(names)


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
