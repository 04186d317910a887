"""One sweep: every (host, port) candidate in scope, at bounded concurrency and connection rate.

Each candidate gets exactly one TCP connection; the protocol probe runs on it and it is closed.
Absent hosts cost one connect timeout, refused ports nothing, so a /24 takes about
ceil(candidates / concurrency) x connect_timeout_s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from wattbus.counters import Counters
from wattbus.log import Logger

from . import probes
from .config import Config, Scope
from .found import Found
from .modbus_wire import WireError


@dataclass(frozen=True, slots=True)
class Candidate:
    host: str
    port: int
    probe: str  # "sunspec" | "8899"


@dataclass
class SweepResult:
    found: list[Found] = field(default_factory=list)
    candidates: int = 0
    open_ports: int = 0
    duration_s: float = 0.0


class Pacer:
    """Spaces connection attempts 1/rate apart (a token bucket of depth one)."""

    def __init__(self, rate_per_s: float) -> None:
        self.interval = 1.0 / rate_per_s
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            if self.next_at > now:
                await asyncio.sleep(self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval


def candidates(config: Config, scope: Scope, skip: frozenset[tuple[str, int]] = frozenset()) -> list[Candidate]:
    out: list[Candidate] = []
    for host in scope.hosts():
        out.extend(Candidate(host, port, "sunspec") for port in config.modbus_ports if (host, port) not in skip)
        out.extend(Candidate(host, port, "8899") for port in config.aps_giv_ports if (host, port) not in skip)
    return out


async def sweep(config: Config, scope: Scope, counters: Counters, log: Logger,
                skip: frozenset[tuple[str, int]] = frozenset()) -> SweepResult:
    """skip: (host, port) pairs not to connect to (devices a bridge is polling right now)."""
    todo = candidates(config, scope, skip)
    result = SweepResult(candidates=len(todo))
    queue: asyncio.Queue[Candidate] = asyncio.Queue()
    for candidate in todo:
        queue.put_nowait(candidate)
    pacer = Pacer(config.rate_per_s)
    started = time.monotonic()

    async def worker() -> None:
        while not queue.empty():
            candidate = queue.get_nowait()
            await pacer.wait()
            result.found.extend(await probe_candidate(candidate, config, counters, log, result))

    workers = [asyncio.create_task(worker()) for _ in range(min(config.concurrency, len(todo)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    result.duration_s = time.monotonic() - started
    counters.inc("sweeps")
    return result


async def probe_candidate(candidate: Candidate, config: Config, counters: Counters, log: Logger,
                          result: SweepResult | None = None) -> list[Found]:
    """Connect once; run the probe for the candidate's port kind; always close."""
    counters.inc("connects")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(candidate.host, candidate.port), config.connect_timeout_s)
    except (TimeoutError, OSError):
        return []  # absent host or closed port: the common case, not an error
    if result is not None:
        result.open_ports += 1
    timeouts = probes.ProbeTimeouts(config.answer_timeout_s, config.ecu_answer_timeout_s)
    try:
        if candidate.probe == "sunspec":
            link = probes.ModbusLink(reader, writer)
            return await probes.probe_sunspec(link, candidate.host, candidate.port, config.sunspec_unit_ids,
                                              config.sunspec_bases, config.answer_timeout_s, counters)
        found = await probes.probe_8899(reader, writer, candidate.host, candidate.port, timeouts, counters, log)
        return [found] if found else []
    except WireError as exc:
        counters.inc("answers_rejected")
        log.info("open port answers garbage", host=candidate.host, port=candidate.port, probe=candidate.probe,
                 error=str(exc))
    except (asyncio.IncompleteReadError, OSError) as exc:
        counters.inc("probe_connection_lost")
        log.info("connection lost while probing", host=candidate.host, port=candidate.port, error=repr(exc))
    finally:
        await probes.close(writer)
    return []
