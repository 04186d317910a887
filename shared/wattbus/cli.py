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
    p_schema = sub.add_parser("schema", help="write docs/topics.md and docs/schema/*.json from the contract and [site]")
    p_schema.add_argument("--root", default=".", help="repository root (default: current directory)")
    p_embedded = sub.add_parser("embedded", help="prepare and start the embedded stack under supervisord")
    p_embedded.add_argument("--root", default=".", help="repository root")
    p_embedded.add_argument("--run-dir", help="where to write the generated files (default: <root>/.run)")
    p_embedded.add_argument("--prepare-only", action="store_true", help="write the run directory and exit")
    p_health = sub.add_parser("healthcheck", help="exit 0 if the service is connected to the broker (its heartbeat "
                              "file $WATTBUS_HEALTH_FILE is fresh)")
    p_health.add_argument("--max-age", type=float, default=120.0, help="seconds (default 120)")
    p_many = sub.add_parser("run-many", help="run several services in one process (small devices)")
    p_many.add_argument("services", nargs="+", help="service names, e.g. sml-reader sunspec-bridge")
    p_many.add_argument("--config", help="config file (default: $WATTBUS_CONFIG or /etc/wattbus/wattbus.toml)")
    p_many.add_argument("--secrets-dir", help="directory with one broker password file per service name")
    p_many.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    p_config = sub.add_parser("config", help="read, change and check the config file (validated per service)")
    p_config.add_argument("--config", dest="path", help="config file (default: $WATTBUS_CONFIG or "
                          "/etc/wattbus/wattbus.toml)")
    config_sub = p_config.add_subparsers(dest="action", required=True)
    config_sub.add_parser("get", help="print a section").add_argument("section")
    p_set = config_sub.add_parser("set", help="set one key (dotted: site.grid, loadpoints.0.max_current_a)")
    p_set.add_argument("section")
    p_set.add_argument("key")
    p_set.add_argument("value", help="a TOML value (16, true, [\"a/b\"]) or plain text")
    config_sub.add_parser("check", help="validate every section with its service's config")
    p_apply = config_sub.add_parser("apply", help="tell a running service to re-read its section (over the bus, "
                                    "with [bus] and WATTBUS_BUS_* for the broker login)")
    p_apply.add_argument("section")
    p_apply.add_argument("--instance", default=None, help="service instance (default: WATTBUS_<SECTION>_INSTANCE, "
                         "the section's, else main; auto = every replica)")
    p_apply.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    if args.command == "config":
        return config_command(args)
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


def config_command(args: argparse.Namespace) -> int:
    """`wattbus config get|set|check`: the same file and validation as the web UI's setup page."""
    import tomlkit

    from .config import DEFAULT_PATHS, ConfigError
    from .settings import ConfigFile, parse_value

    path = Path(args.path or os.environ.get("WATTBUS_CONFIG") or DEFAULT_PATHS[0])
    try:
        settings = ConfigFile(path)
        if args.action == "get":
            print(tomlkit.dumps({args.section: settings.section(args.section)}), end="")
            overrides = settings.overrides(args.section)
            if overrides:  # what the services really use: the environment wins over the file
                print("# effective values set by the environment (editing the file will not change them):")
                for key, found in overrides.items():
                    print(f"# {key} = {tomlkit.item(found['value']).as_string()}  "
                          f"# from {found['env']} (file: {found['file_value']!r})")
            return 0
        if args.action == "set":
            settings.set_value(args.section, args.key, parse_value(args.value))
            settings.save()
            print(f"{path}: [{args.section}] {args.key} = {args.value} (valid; a running service applies it "
                  "after reload_config, see docs/topics.md)")
            override = settings.overrides(args.section).get(args.key)
            if override is not None:
                print(f"wattbus config: warning: {override['note']}", file=sys.stderr)
            return 0
        if args.action == "apply":
            return config_apply(args, path)
        problems = settings.check()
        if "site" not in problems:  # [site] and the old places it replaces, checked together
            problems.update(_site_problems(path))
    except ConfigError as exc:
        print(f"wattbus config: {exc}", file=sys.stderr)
        return 2
    for section, problem in problems.items():
        print(f"[{section}]: {problem}", file=sys.stderr)
    if not problems:
        print(f"{path}: {len(settings.sections())} sections, all valid")
    return 2 if problems else 0


def _site_problems(path: Path) -> dict[str, str]:
    """[site] against the old places of the site's devices (wattbus.site): a contradiction is a
    problem, an old place still in use a warning on stderr."""
    from .config import ConfigError, load
    from .site import load_site

    try:
        found = load_site(load(path, environ={}))
    except ConfigError as exc:
        return {"site": str(exc)}
    for warning in found.warnings:
        print(f"wattbus config: warning: {warning}", file=sys.stderr)
    return {}


SITE_READERS = ("http-api", "surplus-controller")  # they apply a changed [site] on reload_config


def config_apply(args: argparse.Namespace, path: Path) -> int:
    """Send reload_config and print the service's answer; 0 only when it accepted the section."""
    import asyncio
    import os

    from .config import env_prefix, load
    from .settings import installed_services, request_reload

    # [site] is no service: the services that run on it are told (the influx-writer watches the file)
    sections = [n for n in SITE_READERS if n in installed_services()] if args.section == "site" else [args.section]
    code = 0
    for section in sections:
        # The instance the service itself resolves: its environment override first (compose sets
        # `auto` for scaled replicas, which request_reload asks as `all`), then the file, then main.
        configured = os.environ.get(env_prefix(section) + "INSTANCE")
        instance = args.instance or configured or str(load(path).data.get(section, {}).get("instance", "main"))
        result = asyncio.run(request_reload(load(path).bus(), section, instance, args.timeout))
        print(f"{section}/{instance}: {result.status}: {result.message}",
              file=sys.stdout if result.status == "ok" else sys.stderr)
        code = code or (0 if result.status == "ok" else 1)
    return code


HEALTH_HELP = """\
wattbus healthcheck: WATTBUS_HEALTH_FILE is not set, so there is no heartbeat file to check.
It checks that a service is running and connected to the broker: while connected, the service
rewrites the file named by WATTBUS_HEALTH_FILE after each status heartbeat ([<service>]
status_interval_s), and this command fails when that file is missing or older than --max-age
seconds (now {max_age:g}).
- In a container: the wattbus image sets WATTBUS_HEALTH_FILE=/tmp/wattbus-health and runs this as
  its HEALTHCHECK; by hand: `docker compose exec <service> wattbus healthcheck` (status with
  `docker compose ps`).
- Outside a container: start the service with the variable set and check with the same value, e.g.
  `WATTBUS_HEALTH_FILE=/tmp/sml-reader.health wattbus-sml-reader` and then
  `WATTBUS_HEALTH_FILE=/tmp/sml-reader.health wattbus healthcheck`."""


def healthcheck(max_age_s: float) -> int:
    path = os.environ.get("WATTBUS_HEALTH_FILE")
    if not path:
        print(HEALTH_HELP.format(max_age=max_age_s), file=sys.stderr)
        return 1
    try:
        age = time.time() - Path(path).stat().st_mtime
    except OSError as exc:
        print(f"wattbus healthcheck: no heartbeat yet ({exc.strerror}: {path}); the service writes it once it is "
              "connected to the broker (see its log)", file=sys.stderr)
        return 1
    if age > max_age_s:
        print(f"wattbus healthcheck: heartbeat {path} is {age:.0f} s old (max {max_age_s:.0f} s): the service "
              "is not running or not connected to the broker (see its log)", file=sys.stderr)
        return 1
    print(f"wattbus healthcheck: ok, heartbeat {age:.0f} s old ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
