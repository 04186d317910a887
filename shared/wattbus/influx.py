"""Where an InfluxDB is and how to log in: one shape for every service that talks to it.

The influx-writer stores the readings with these keys (`[influx-writer]`), the http-api reads its
history back with the same keys (`[http-api.influx]`), so the two sections read alike and are
checked alike:

    url = "http://influxdb:8086"
    api = "v1"                      # v1: InfluxDB 1.x /write and /query (database, retention_policy,
    database = "wattbus"            #     username + password or password_file)
    api = "v2"                      # v2: InfluxDB 2.x/3.x (org, bucket, token or token_file)
    token_file = "/run/secrets/influx_token"

Secrets are resolved when a connection opens (`resolved_password`, `resolved_token`), never shown:
`redacted()` is what a log line or an API answer may carry.

msgspec allows one base with fields, so the shape derives from ServiceCommon (instance,
status_interval_s): the writer's Config extends it; in a table nested under another service those
two keys mean nothing and are refused (`check_nested`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from msgspec import Meta

from .config import ConfigError, ServiceCommon

SECRETS = ("password", "token")


class InfluxConnection(ServiceCommon, kw_only=True):
    SECTION: ClassVar[str] = "influx"  # the table these keys are in, for error messages

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    # v1 (InfluxDB 1.x, the Home Assistant add-on, VictoriaMetrics /write)
    database: str = "wattbus"
    retention_policy: str = ""
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    # v2 (InfluxDB 2.x / 3.x, VictoriaMetrics /api/v2/write)
    org: str = ""
    bucket: str = "wattbus"
    token: str | None = None
    token_file: str | None = None
    timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0

    def check_connection(self) -> None:
        where = f"config [{self.SECTION}]"
        if self.api == "v2" and not self.bucket:
            raise ConfigError(f"{where} bucket: the v2 API needs a bucket")
        if self.api == "v1" and not self.database:
            raise ConfigError(f"{where} database: the v1 API needs a database")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where} url = {self.url!r}: use http://host:port or https://...")

    def check_nested(self) -> None:
        """For a table under another service's section: the service keys belong to that section."""
        if self.instance != "main" or self.status_interval_s != 30.0:
            raise ConfigError(f"config [{self.SECTION}] instance / status_interval_s: not used here, "
                              "they belong to the service's own section")

    def resolved_password(self) -> str | None:
        return self.password if self.password is not None else self._secret(self.password_file, "password_file")

    def resolved_token(self) -> str | None:
        return self.token if self.token is not None else self._secret(self.token_file, "token_file")

    def _secret(self, path: str | None, key: str) -> str | None:
        if not path:
            return None
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"config [{self.SECTION}] {key} = {path!r}: cannot read it ({exc.strerror})") from exc

    @property
    def target(self) -> str:
        """Where, without secrets: for logs and answers."""
        name = self.bucket if self.api == "v2" else self.database
        return f"{self.url} ({self.api}, {'bucket' if self.api == 'v2' else 'database'} {name})"

    def redacted(self) -> dict[str, Any]:
        """The keys as a config read may show them: a secret only as set or not."""
        out: dict[str, Any] = {"url": self.url, "api": self.api, "timeout_s": self.timeout_s}
        if self.api == "v2":
            out.update(org=self.org, bucket=self.bucket, token_set=bool(self.token or self.token_file))
        else:
            out.update(database=self.database, retention_policy=self.retention_policy, username=self.username,
                       password_set=bool(self.password or self.password_file))
        return out
