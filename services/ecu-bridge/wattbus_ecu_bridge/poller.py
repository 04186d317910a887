"""The toolkit's poll loop on an ECU's schedule.

An ECU refreshes its data every few minutes and must be left alone in its nightly maintenance
window (and, if configured, at night): each poll is timed to just after its next refresh, skipped
in a quiet time, and after a failure retried at `retry_after_failure_s`. After
`restart_after_failures` failures in a row its devices go offline and, with `auto_restart`, the ECU
is restarted once.
"""

from __future__ import annotations

from wattbus import apsystems
from wattbus.bridge import Poller
from wattbus.runner import ServiceContext

from .adapter import EcuAdapter
from .config import Config


class EcuPoller(Poller):
    def __init__(self, ctx: ServiceContext[Config], adapter: EcuAdapter) -> None:
        cfg = adapter.cfg
        super().__init__(ctx, adapter, interval_s=cfg.poll_interval_s, offline_after=cfg.restart_after_failures,
                         max_backoff_s=cfg.retry_after_failure_s, identified=bool(adapter.metas))
        self.ecu = adapter

    def delay_s(self) -> float:
        return self.ecu.cfg.retry_after_failure_s if self.failures else self.ecu.next_poll()

    async def poll_once(self) -> float:
        if self.ecu.restarted:  # the read-back after a restart command: the ECU is rebooting, let it
            self.ecu.restarted = False
            return self.delay_s()
        pause = self.ecu.quiet_time()
        if pause is not None:
            return pause
        delay = await super().poll_once()
        cfg = self.ecu.cfg
        if self.failures == cfg.restart_after_failures and cfg.auto_restart:
            result = await self.ecu.restart()
            self.ecu.log.warning("automatic ECU restart", status=result.status, message=result.message)
        return delay

    def failed(self, error: Exception) -> None:
        self.ctx.counters.inc("frames_rejected" if isinstance(error, apsystems.EcuFrameError) else "polls_failed")
        super().failed(error)
