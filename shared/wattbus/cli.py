"""`wattbus`: project-level commands (schema generation, the embedded stack)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus", description="wattbus project tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_schema = sub.add_parser("schema", help="write docs/topics.md and docs/schema/*.json from the contract")
    p_schema.add_argument("--root", default=".", help="repository root (default: current directory)")
    p_embedded = sub.add_parser("embedded", help="prepare and start the embedded stack under supervisord")
    p_embedded.add_argument("--root", default=".", help="repository root")
    p_embedded.add_argument("--prepare-only", action="store_true", help="write .run/ and exit")
    args = parser.parse_args(argv)
    if args.command == "schema":
        for path in schema.write(Path(args.root)):
            print(f"wrote {path}")
        return 0
    from . import embedded

    return embedded.main(Path(args.root).resolve(), prepare_only=args.prepare_only)


if __name__ == "__main__":
    sys.exit(main())
