"""The embedded stack: Mosquitto + every service + the device simulators under supervisord.

`make run` calls `wattbus embedded`, which writes everything it needs into `.run/` (broker
config with per-service users and the project's ACL, generated passwords, supervisord config,
the demo config file) and then runs supervisord in the foreground. Ctrl-C stops everything.

Services join by shipping `services/<name>/supervisor.conf`, simulators by
`simulators/supervisor/<name>.conf`; no edit here is needed.

WATTBUS_EMBEDDED_PROFILE=one-process (the Raspberry Pi profile) runs every Python service in one
`wattbus run-many` program instead of one interpreter each; their other programs (a database)
and the simulators stay as they are.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The broker limits compose's mosquitto.conf sets (packet size, connections, per-client queues,
# session expiry); the demo's broker takes the same lines from that file, so both enforce one set.
BROKER_LIMITS = ("max_packet_size", "max_connections", "max_queued_messages", "max_queued_bytes",
                 "max_inflight_messages", "persistent_client_expiration")


def broker_limits(root: Path) -> list[str]:
    """The limit lines of mosquitto/mosquitto.conf (max_connections applies to the listener before it)."""
    lines = [line.strip() for line in (root / "mosquitto" / "mosquitto.conf").read_text().splitlines()]
    found = [line for line in lines if line.split(" ", 1)[0] in BROKER_LIMITS]
    missing = set(BROKER_LIMITS) - {line.split(" ", 1)[0] for line in found}
    if missing:
        raise SystemExit(f"{root / 'mosquitto' / 'mosquitto.conf'}: no {', '.join(sorted(missing))} line; "
                         "the embedded broker takes its limits from there")
    return found


@dataclass(frozen=True)
class BrokerFiles:
    conf: Path
    secrets_dir: Path
    port: int
    users: tuple[str, ...]

    def password(self, user: str) -> str:
        return (self.secrets_dir / user).read_text().strip()


# Accounts that may use any client id no other account owns (never a service's): Home Assistant's
# MQTT integration picks a random id unless the user sets one (mosquitto.conf does the same).
FREE_ACCOUNTS = ("homeassistant",)
PLUGIN_DIR = Path("mosquitto") / "plugin"
PLUGIN_BUILT = Path("build") / "mosquitto" / "wattbus_client_ids.so"  # where `make broker-plugin` puts it


def broker_plugin(root: Path) -> Path:
    """The broker plugin binding client ids to accounts (mosquitto/plugin/), compiled into build/
    when missing or older than its source (build.sh is the recipe `make` and the image use too)."""
    built = root / PLUGIN_BUILT
    script = root / PLUGIN_DIR / "build.sh"
    sources = [root / PLUGIN_DIR / "wattbus_client_ids.c", script]
    missing = [str(source) for source in sources if not source.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: missing; the broker needs its client-id plugin")
    if built.is_file() and built.stat().st_mtime >= max(source.stat().st_mtime for source in sources):
        return built
    result = subprocess.run([str(script), str(built)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{script} {built} exited {result.returncode} (a C compiler and Mosquitto's headers are "
                         f"needed: `make broker-plugin` installs gcc, libc6-dev, mosquitto-dev, libmosquitto-dev):\n"
                         f"{result.stderr.strip()}")
    return built


def broker_users(root: Path) -> tuple[str, ...]:
    lines = (root / "mosquitto" / "users.txt").read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def write_broker(root: Path, run_dir: Path, port: int, *, anonymous: bool = True,
                 bind: str = "127.0.0.1", extra_users: tuple[str, ...] = (), extra_acl: str = "",
                 persistence: bool = True) -> BrokerFiles:
    """Write a Mosquitto config using the project's real ACL and per-service users.

    The broker plugin binds each user of mosquitto/users.txt to its client ids (`<user>` or
    `<user>-...`), as in compose; `extra_users` (a test or bench harness' own accounts) may use any id
    that no other user owns.
    """
    broker_dir = run_dir / "mosquitto"
    secrets_dir = run_dir / "secrets"
    broker_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    users = broker_users(root) + extra_users
    plain_lines = []
    for user in users:
        secret = secrets_dir / user
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(18))
            secret.chmod(0o600)
        plain_lines.append(f"{user}:{secret.read_text().strip()}")
    passwd = broker_dir / "passwd"
    passwd.write_text("\n".join(plain_lines) + "\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    acl = broker_dir / "acl"
    acl.write_text((root / "mosquitto" / "acl").read_text() + extra_acl)
    accounts = broker_dir / "accounts"  # the plugin's account list: users.txt and the extra users
    accounts.write_text("\n".join(users) + "\n")
    lines = [
        # Mosquitto started as root drops to user `mosquitto`, which cannot read our private run
        # directory; stay the invoking user instead.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        "per_listener_settings false",
        "set_tcp_nodelay true",  # small QoS 1 packets would wait for Nagle's algorithm otherwise
        f"listener {port} {bind}",
        f"allow_anonymous {'true' if anonymous else 'false'}",
        f"password_file {passwd}",
        f"acl_file {acl}",
        # Client ids bound to accounts, as mosquitto.conf does in compose (issue 21: id takeover).
        f"plugin {broker_plugin(root)}",
        f"plugin_opt_accounts_file {accounts}",
        f"plugin_opt_free_accounts {' '.join((*FREE_ACCOUNTS, *extra_users))}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {broker_dir}/",
        "autosave_interval 30",
        *broker_limits(root),  # after the listener line: max_connections is per listener
        "log_dest stderr",  # written at once (Mosquitto does not flush stdout), as in mosquitto.conf
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    conf = broker_dir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return BrokerFiles(conf, secrets_dir, port, users)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(preferred: int) -> int:
    for port in range(preferred, preferred + 20):
        if port_free(port):
            return port
    raise SystemExit(f"no free port in {preferred}..{preferred + 19} for the embedded broker")


PROFILES = ("process-per-service", "one-process")


def _environment(value: str) -> dict[str, str]:
    """supervisord's KEY="value",KEY2=value2 (a quoted value may hold commas)."""
    return dict(re.findall(r'(\w+)=("[^"]*"|[^,]*)', value))


def write_one_process(root: Path, run_dir: Path) -> Path:
    """The services' supervisor.conf files folded into one [program:run-many].

    A program whose command is the service's own `wattbus-<name>` script joins run-many, with its
    `environment=` settings (its password file excepted: run-many gives each service its own from
    run/secrets/); any other program (the embedded InfluxDB) is kept as it is.
    """
    names: list[str] = []
    env: dict[str, str] = {}
    kept: list[str] = []
    for conf in sorted(root.glob("services/*/supervisor.conf")):
        parser = configparser.RawConfigParser(strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
        parser.read(conf)
        for section in parser.sections():
            name = section.removeprefix("program:")
            items = dict(parser.items(section))
            if not items.get("command", "").endswith(f"/bin/wattbus-{name}"):
                kept.append(f"[{section}]\n" + "".join(f"{k}={v}\n" for k, v in items.items()))
                continue
            names.append(name)
            for key, value in _environment(items.get("environment", "")).items():
                if key == "WATTBUS_BUS_PASSWORD_FILE":
                    continue
                if env.setdefault(key, value) != value:
                    raise SystemExit(f"{conf}: {key} differs from another service's value; run-many "
                                     "shares one environment")
    program = f"""[program:run-many]
command=%(ENV_WATTBUS_VENV)s/bin/wattbus run-many {' '.join(names)} --secrets-dir %(ENV_WATTBUS_RUN)s/secrets
directory=%(ENV_WATTBUS_ROOT)s
priority=50
autorestart=true
startsecs=2
stopsignal=TERM
stopwaitsecs=20
redirect_stderr=true
stdout_logfile=%(ENV_WATTBUS_RUN)s/logs/%(program_name)s.log
stdout_logfile_maxbytes=5MB
stdout_logfile_backups=2
"""
    if env:
        program += "environment=" + ",".join(f"{k}={v}" for k, v in env.items()) + "\n"
    path = run_dir / "supervisor-one-process.conf"
    path.write_text("\n".join([program, *kept]))
    return path


def write_supervisord(root: Path, run_dir: Path, broker: BrokerFiles, profile: str = PROFILES[0]) -> Path:
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if profile == "one-process":
        includes = [str(write_one_process(root, run_dir))]
    else:
        includes = [str(p) for p in sorted(root.glob("services/*/supervisor.conf"))]
    includes += [str(p) for p in sorted(root.glob("simulators/supervisor/*.conf"))]
    text = f"""\
[supervisord]
nodaemon=true
logfile={logs}/supervisord.log
pidfile={run_dir}/supervisord.pid
childlogdir={logs}
loglevel=info

[unix_http_server]
file={run_dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run_dir}/supervisor.sock

[program:mosquitto]
command={mosquitto} -c {broker.conf}
priority=10
autorestart=true
startsecs=1
stopsignal=TERM
redirect_stderr=true
stdout_logfile={logs}/mosquitto.log
"""
    if includes:
        text += "\n[include]\nfiles = " + " ".join(includes) + "\n"
    path = run_dir / "supervisord.conf"
    path.write_text(text)
    return path


def embedded_config(root: Path, run_dir: Path) -> str:
    """config/embedded.toml followed by each service's own demo section (services/*/embedded.toml).

    `${WATTBUS_RUN}` in a fragment becomes the run directory (pseudo-terminal links, state files).
    """
    parts = [(root / "config" / "embedded.toml").read_text()]
    for fragment in sorted(root.glob("services/*/embedded.toml")):
        parts.append(f"# --- from {fragment.relative_to(root)}\n{fragment.read_text()}")
    return "\n".join(parts).replace("${WATTBUS_RUN}", str(run_dir))


def write_config(config: Path, root: Path, run_dir: Path) -> None:
    """Create the demo config once; later runs keep it (the setup pages and `wattbus config` edit
    it) and only append the sections of services that were added since."""
    if not config.exists():
        config.write_text(embedded_config(root, run_dir))
        return
    text = config.read_text()
    for fragment in sorted(root.glob("services/*/embedded.toml")):
        section = fragment.parent.name
        if f"[{section}]" not in text and f"[{section}." not in text:
            text += f"\n# --- from {fragment.relative_to(root)}\n" + fragment.read_text().replace(
                "${WATTBUS_RUN}", str(run_dir))
            print(f"config: added the [{section}] section of a new service to {config}")
    config.write_text(text)


def banner(port: int, config: Path, secrets_dir: Path, run_dir: Path, conf: Path, programs: list[str],
           profile: str) -> str:
    """Where to look, and the two logins a person needs first: Home Assistant's and the admin's.

    Anonymous clients may only read (mosquitto/acl): Home Assistant connected anonymously shows
    every entity, but the broker drops its commands without an error, and `wattbus config apply`
    sends its reload_config unheard. Both need a broker user, so the banner names them.
    """
    bindir = Path(sys.executable).parent
    together = "  (in one `wattbus run-many` process)" if profile == "one-process" else ""
    login = f"WATTBUS_BUS_PORT={port} WATTBUS_BUS_USERNAME=admin WATTBUS_BUS_PASSWORD_FILE={secrets_dir}/admin"
    return f"""
wattbus embedded stack
  web UI      http://127.0.0.1:8008/ui/   (MeterHub JSON at /, GivTCP REST on :6345, API at /api/v1/openapi.json;
              a browser on this machine may change settings on /ui/setup without a token)
  broker      mqtt://127.0.0.1:{port}  (anonymous clients may only read; services log in as their own users)
  watch       mosquitto_sub -h 127.0.0.1 -p {port} -t 'wattbus/v1/#' -v
  Home Assistant  (on this machine) MQTT integration: broker 127.0.0.1, port {port}, user homeassistant,
              password: cat {secrets_dir}/homeassistant (its own random client id is fine; no
              account may take a service's id)
              (connected anonymously it shows every entity, but the broker drops its commands)
  config      {config}  (kept across runs; delete it to start from the demo again)
  change it   {bindir}/wattbus config --config {config} set <section> <key> <value>
  apply it    {login} \\
              {bindir}/wattbus config --config {config} apply <section>
              (the running service re-reads its section; asked anonymously, the broker drops the request)
  services    {', '.join(programs) or '(none yet)'}{together}
  logs        {run_dir}/logs/
  control     {bindir}/supervisorctl -c {conf} status
  stop        Ctrl-C
"""


def main(root: Path, run_dir: Path, prepare_only: bool = False) -> int:
    profile = os.environ.get("WATTBUS_EMBEDDED_PROFILE") or PROFILES[0]
    if profile not in PROFILES:
        raise SystemExit(f"WATTBUS_EMBEDDED_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = choose_port(int(os.environ.get("WATTBUS_EMBEDDED_PORT", "1883")))
    broker = write_broker(root, run_dir, port)
    config = run_dir / "wattbus.toml"
    write_config(config, root, run_dir)
    conf = write_supervisord(root, run_dir, broker, profile)
    env = dict(os.environ)
    env.update({
        "WATTBUS_RUN": str(run_dir),
        "WATTBUS_ROOT": str(root),
        "WATTBUS_VENV": str(Path(sys.executable).parent.parent),
        "WATTBUS_CONFIG": str(config),
        "WATTBUS_BUS_PORT": str(port),
        "WATTBUS_BUS_HOST": "127.0.0.1",
    })
    programs = sorted(p.parent.name for p in root.glob("services/*/supervisor.conf"))
    print(banner(port, config, broker.secrets_dir, run_dir, conf, programs, profile), flush=True)
    if prepare_only:
        return 0
    supervisord = Path(sys.executable).parent / "supervisord"
    os.execve(str(supervisord), [str(supervisord), "-c", str(conf)], env)
