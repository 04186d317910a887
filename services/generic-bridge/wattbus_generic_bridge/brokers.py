"""MQTT devices on another broker than wattbus's own (a heat pump's, a meter's, a charger's broker).

A device entry's `broker` table names it; devices with the same broker table share one connection
(paho-mqtt through wattbus.bus, as every service connects). The password comes from `password_file`
(a docker secret), or as `password` in the table when the setup page added the device (the config's
secrets are write-only there, as a device's HTTP password is); it never appears in a log line, the
meta, the status or a probe answer: the broker is shown as `mqtt[s]://user@host:port`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta
from wattbus.bus import Bus
from wattbus.config import BusConfig, ConfigError, ConfigStruct
from wattbus.log import Logger


class BrokerConfig(ConfigStruct, kw_only=True):
    host: str
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None  # 1883, or 8883 with tls
    username: str | None = None
    password_file: str | None = None  # a file holding the password (a docker secret) ...
    password: str | None = None  # ... or the password itself (the setup page's form; shown as "set")
    tls: bool = False
    ca_file: str | None = None  # the broker's CA (PEM); without it the system's CAs
    cert_file: str | None = None  # a client certificate, for brokers that want one
    key_file: str | None = None
    client_id: str | None = None  # default: wattbus-generic-bridge-<instance>-<host>
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30

    @property
    def url(self) -> str:
        """Where it is, for people: no password, ever."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.effective_port}"

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    def client_key(self) -> tuple[str, int, str]:
        """Which broker and under which client id this table connects; the default id is the same for
        every table naming this host (the instance is the service's), so two such tables share it."""
        return self.host.lower(), self.effective_port, self.client_id or f"<default for {self.host}>"

    def check(self, where: str) -> None:
        """Files that cannot be read stop the start, naming the key (not the file's content)."""
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            if path is None:
                continue
            try:
                Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{where}.broker.{key} = {path!r}: cannot read it ({exc.strerror})") from None
        if self.password is not None and self.password_file is not None:
            raise ConfigError(f"{where}.broker: give password or password_file, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(f"{where}.broker: a client certificate needs both cert_file and key_file")
        if not self.tls and any((self.ca_file, self.cert_file)):
            raise ConfigError(f"{where}.broker: ca_file/cert_file are TLS settings; set tls = true")


def client_id_clashes(entries: list[tuple[str, BrokerConfig]]) -> str | None:
    """Two different broker tables connecting to one broker with one client id would knock each other off
    (a broker drops the older session of a client id): what clashes, naming both entries, or None.
    Equal tables share one connection and are no clash."""
    seen: dict[tuple[str, int, str], tuple[str, BrokerConfig]] = {}
    for where, cfg in entries:
        first = seen.setdefault(cfg.client_key(), (where, cfg))
        if first[1] != cfg:
            shown = f"client_id {cfg.client_id!r}" if cfg.client_id else \
                "the default client_id (wattbus-generic-bridge-<instance>-<host>)"
            return (f"{where}.broker: {shown} on {cfg.url} is also {first[0]}'s, whose broker table differs: two "
                    "connections with one client id knock each other off the broker; give each table a "
                    "client_id of its own, or make the tables equal to share one connection")
    return None


class Brokers:
    """One started Bus per other broker, made on first use inside the running loop."""

    def __init__(self, instance: str, log: Logger) -> None:
        self.instance = instance
        self.log = log
        self._buses: dict[tuple[object, ...], Bus] = {}  # the broker table's values -> its connection

    async def bus(self, cfg: BrokerConfig) -> Bus:
        key = msgspec.structs.astuple(cfg)
        bus = self._buses.get(key)
        if bus is None:
            config = BusConfig(host=cfg.host, port=cfg.effective_port, username=cfg.username,
                               password=cfg.password, password_file=cfg.password_file, tls=cfg.tls, ca_file=cfg.ca_file,
                               cert_file=cfg.cert_file, key_file=cfg.key_file, keepalive_s=cfg.keepalive_s,
                               reconnect_max_s=30.0)
            client_id = cfg.client_id or f"wattbus-generic-bridge-{self.instance}-{cfg.host}"[:64]
            bus = self._buses[key] = Bus(config, "generic-bridge", self.instance, client_id=client_id,
                                         log=self.log.child("broker"))
            self.log.info("connecting to another broker", broker=cfg.url, client_id=client_id)
            await bus.start()
        return bus

    async def close(self) -> None:
        for bus in self._buses.values():
            await bus.stop()
        self._buses.clear()
