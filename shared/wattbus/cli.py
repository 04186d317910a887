"""`wattbus`: project-level commands (schema generation, the embedded stack)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus", description="wattbus project tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_schema = sub.add_parser("schema", help="write docs/topics.md and docs/schema/*.json from the contract")
    p_schema.add_argument("--root", default=".", help="repository root (default: current directory)")
    p_embedded = sub.add_parser("embedded", help="prepare and start the embedded stack under supervisord")
    p_embedded.add_argument("--root", default=".", help="repository root")
    p_embedded.add_argument("--run-dir", help="where to write the generated files (default: <root>/.run)")
    p_embedded.add_argument("--prepare-only", action="store_true", help="write the run directory and exit")
    p_health = sub.add_parser("healthcheck", help="exit 0 if the service's heartbeat file is fresh")
    p_health.add_argument("--max-age", type=float, default=120.0, help="seconds (default 120)")
    p_many = sub.add_parser("run-many", help="run several services in one process (small devices)")
    p_many.add_argument("services", nargs="+", help="service names, e.g. sml-reader sunspec-bridge")
    p_many.add_argument("--config", help="config file (default: $WATTBUS_CONFIG or /etc/wattbus/wattbus.toml)")
    p_many.add_argument("--secrets-dir", help="directory with one broker password file per service name")
    p_many.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    args = parser.parse_args(argv)
    if args.command == "run-many":
        from . import multi  # imports the bus client: only for this command (healthcheck stays light)

        return multi.main(args)
    if args.command == "healthcheck":
        return healthcheck(args.max_age)
    if args.command == "schema":
        for path in schema.write(Path(args.root)):
            print(f"wrote {path}")
        return 0
    from . import embedded

    root = Path(args.root).resolve()
    run_dir = Path(args.run_dir).resolve() if args.run_dir else root / ".run"
    return embedded.main(root, run_dir, prepare_only=args.prepare_only)


def healthcheck(max_age_s: float) -> int:
    path = os.environ.get("WATTBUS_HEALTH_FILE")
    if not path:
        print("WATTBUS_HEALTH_FILE is not set", file=sys.stderr)
        return 1
    try:
        age = time.time() - Path(path).stat().st_mtime
    except OSError as exc:
        print(f"no heartbeat yet ({exc.strerror}: {path})", file=sys.stderr)
        return 1
    if age > max_age_s:
        print(f"heartbeat is {age:.0f} s old (max {max_age_s:.0f} s): not connected to the broker?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
