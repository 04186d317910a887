"""influxdb-client as the writer uses it: one client (one urllib3 connection pool) per sink.

- `api = "v2"` (InfluxDB 2.x/3.x, VictoriaMetrics, InfluxDB 1.8+): the client's write service
  (`/api/v2/write`) with its token header and `Content-Encoding: gzip` when `gzip` is on. The body
  is compressed here at level 1: the client's own gzip is level 9, 24 ms per 5000-line batch,
  as much CPU per reading as the rest of the writer (level 1: 1 ms, 28 kB instead of 21 kB).
- `api = "v1"` (InfluxDB 1.x, the Home Assistant add-on): `/write` with database, retention policy
  and Basic auth, through the same client's `call_api` -- InfluxDB before 1.8 (Debian ships 1.6)
  has no v2 API. CREATE DATABASE goes to `/query` the same way.
- Retries: influxdb-client's WritesRetry (exponential back-off with jitter, 429 and 5xx, the
  server's Retry-After honoured), made afresh for every request: its total-time budget counts from
  when it is made, so the one instance the client's `retries=` option keeps would stop retrying
  for good once a long-running writer is older than that budget. influxdb-client's own batching
  writer does the same (a new retry per request through the write service). `WriteApi.write`
  is not used: in synchronous mode it takes no per-request retry, and its batching mode merges
  and acknowledges batches on its own thread, where the writer needs to know that *this* batch
  is stored before its readings are acknowledged on the bus.

The calls block (urllib3); the sink runs them in a worker thread. influxdb-client is imported
only when a sink opens (its generated API costs ~16 MB and 0.2 s to import).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.retry import WritesRetry
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService
from urllib3.exceptions import HTTPError, MaxRetryError, ResponseError

from .config import Config
from .sink import Outcome, Result, outcome_of

WRITE_RETRIES = 3  # after the first attempt; the pipeline's spool and back-off take over after that
TEXT = "text/plain; charset=utf-8"


class CappedRetry(WritesRetry):  # type: ignore[misc]  # influxdb-client's classes are unannotated
    """WritesRetry whose wait for a Retry-After is capped at max_retry_delay (a write thread asleep
    for an hour on a server's say-so would hold every unacknowledged reading in memory meanwhile),
    and which gives up at once when the writer stops (`stopping`): a request cannot be cancelled
    from the event loop, and the process waits for its worker thread before it exits."""

    stopping: threading.Event | None = None

    def new(self, **kw: Any) -> CappedRetry:
        new: CappedRetry = super().new(**kw)  # type: ignore[no-untyped-call]
        new.stopping = self.stopping
        return new

    def get_retry_after(self, response: Any) -> float | None:
        after: float | None = super().get_retry_after(response)  # type: ignore[no-untyped-call]
        return None if after is None else min(after, float(self.max_retry_delay))

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> CappedRetry:
        if self.stopping is not None and self.stopping.is_set():
            raise MaxRetryError(_pool, url, error or ResponseError("the writer is stopping"))
        new: CappedRetry = super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[no-untyped-call]
        return new

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if self.respect_retry_after_header and response else None
        if wait is None:
            wait = self.get_backoff_time()  # type: ignore[no-untyped-call]
        if self.stopping is not None:
            self.stopping.wait(wait)  # woken by the stop; the next increment() gives up
        elif wait > 0:
            time.sleep(wait)


class InfluxHttp:
    def __init__(self, config: Config, on_retry: Callable[[], object] | None) -> None:
        self.config = config
        self.on_retry = on_retry
        self.stopping = threading.Event()
        timeout_ms = int(config.timeout_s * 1000)
        if config.api == "v2":
            self.client = InfluxDBClient(url=config.url, token=config.resolved_token() or "", org=config.org,
                                         timeout=timeout_ms)
        else:
            password = config.resolved_password()
            basic = f"{config.username}:{password or ''}" if config.username else ""
            # auth_basic: influxdb-client sends the token as `Authorization: Basic base64(token)`.
            self.client = InfluxDBClient(url=config.url, token=basic, timeout=timeout_ms, auth_basic=bool(basic))
        # influxdb-client's generated API is unannotated: typed as Any here, once.
        self.api: Any = self.client.api_client
        self.service: Any = WriteService(self.api)  # type: ignore[no-untyped-call]
        self.v1_params = [("db", config.database), ("precision", "ns")]
        if config.retention_policy:
            self.v1_params.append(("rp", config.retention_policy))

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def stop_retrying(self) -> None:
        """From any thread: the request under way makes no further attempt, later ones make one."""
        self.stopping.set()

    def _retries(self, retry: bool) -> CappedRetry:
        cfg = self.config
        retries = CappedRetry(total=WRITE_RETRIES if retry and not self.stopping.is_set() else 0,
                              retry_interval=cfg.retry_min_s, max_retry_delay=cfg.retry_max_s,
                              max_retry_time=cfg.timeout_s, exponential_base=2, retry_callback=self._retried,
                              allowed_methods=["POST"], raise_on_status=False)
        retries.stopping = self.stopping
        return retries

    def _retried(self, _error: Exception) -> int:  # influxdb-client's callback type; the value is unused
        if self.on_retry is not None:
            self.on_retry()
        return 0

    def write(self, body: bytes, retry: bool) -> Result:
        urlopen_kw = {"retries": self._retries(retry)}
        encoding = {"Content-Encoding": "gzip"} if self.config.gzip else {}
        if encoding:
            body = gzip.compress(body, 1)
        try:
            if self.config.api == "v2":
                extra = {"content_encoding": "gzip"} if encoding else {}  # a None would be sent as "None"
                self.service.post_write(org=self.config.org, bucket=self.config.bucket, body=body,
                                        precision=WritePrecision.NS, content_type=TEXT, urlopen_kw=urlopen_kw, **extra)
            else:
                headers = {"Content-Type": TEXT, **encoding}
                self.api.call_api("/write", "POST", query_params=self.v1_params, header_params=headers,
                                                body=body, auth_settings=[], _return_http_data_only=True,
                                                urlopen_kw=urlopen_kw)
        except ApiException as exc:
            return _refused(exc)
        except (HTTPError, OSError) as exc:  # refused, timed out, broken answer (retries used up)
            return Result(Outcome.UNAVAILABLE, None, f"{type(exc).__name__}: {exc}")
        return Result(Outcome.OK, 204)

    def create_database(self) -> Result:
        name = self.config.database.replace('"', r"\"")
        try:
            resp = self.api.call_api(
                "/query", "POST", header_params={"Content-Type": "application/x-www-form-urlencoded"},
                post_params=[("q", f'CREATE DATABASE "{name}"')], auth_settings=[], _return_http_data_only=True,
                _preload_content=False, urlopen_kw={"retries": self._retries(False)})
            text = resp.data.decode(errors="replace").strip()[:500]
            resp.release_conn()
        except ApiException as exc:
            return _refused(exc)
        except (HTTPError, OSError) as exc:
            return Result(Outcome.UNAVAILABLE, None, f"{type(exc).__name__}: {exc}")
        if '"error"' in text:  # InfluxQL answers 200 with the statement's error inside
            return Result(Outcome.UNAVAILABLE, 200, text)
        return Result(Outcome.OK, 200)


def _refused(exc: ApiException) -> Result:
    status = int(exc.status or 0)
    message = str(exc.message if exc.response is not None else exc.reason).strip()[:500]
    if not status:  # influxdb-client reports a TLS failure as status 0
        return Result(Outcome.UNAVAILABLE, None, message)
    return Result(outcome_of(status), status, message)
