"""One poll loop per ECU: info, real-time data and signal strength feed every device behind it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wattbus import apsystems, topics
from wattbus import messages as m
from wattbus.apsystems import EcuInfo, decode_info
from wattbus.runner import DeviceChannel, ServiceContext

from . import apsout, model, sun
from .client import EcuClient, EcuConnectionError, EcuUnreachable, Timing
from .config import Config, EcuConfig
from .decode import InverterData, RealtimeData, SignalData, decode_realtime, decode_signal


class EcuPoller:
    def __init__(self, ctx: ServiceContext[Config], cfg: EcuConfig,
                 on_identified: Callable[[EcuPoller, str], None] | None = None) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.on_identified = on_identified  # told the ECU id once it answered (config pins it)
        self.client = EcuClient(cfg.host, cfg.port, Timing(cfg.answer_delay_s, cfg.pause_between_commands_s,
                                                           cfg.timeout_s))
        self.log = ctx.log.child(f"ecu {cfg.host}:{cfg.port}")
        self.ecu_id: str | None = None
        self.gateway: DeviceChannel | None = None
        self.failures = 0
        self.last_stamp: datetime | None = None
        self.owned: set[str] = set()  # device ids behind this ECU
        self.unchanged = 0  # answers in a row with the same timestamp
        self.discovered: set[str] = set()  # aps2mqtt discovery config topics published
        self.waits = 0  # connection attempts refused before the ECU's first answer
        self.zone: tzinfo = _zone(cfg.timezone) or datetime.now().astimezone().tzinfo or UTC

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while not self.ctx.stopping.is_set():
            pause = await self.quiet_time()
            if pause is None:
                pause = await self.poll_once()
            if not await self.ctx.sleep(pause):
                return

    async def quiet_time(self) -> float | None:
        """Seconds to wait when the ECU must be left alone (maintenance, night), else None."""
        now = datetime.now(UTC)
        c = self.cfg
        if sun.in_window(now, c.maintenance_start, c.maintenance_end, self.zone) and c.maintenance_end:
            self.ctx.counters.inc("maintenance_skips")
            return min(300.0, max(1.0, (sun.window_end(now, c.maintenance_end, self.zone) - now).total_seconds()))
        margin = timedelta(minutes=c.night_margin_min)
        if c.stop_at_night and sun.is_night(now, c.latitude, c.longitude, margin):
            self.ctx.counters.inc("night_skips")
            wake = sun.next_sunrise(now, c.latitude, c.longitude, margin)
            return min(300.0, max(1.0, (wake - now).total_seconds())) if wake else 300.0
        return None

    async def poll_once(self) -> float:
        """Query the ECU once and publish; returns the pause before the next poll."""
        try:
            info = decode_info(await self.client.ask(apsystems.info_query(), apsystems.CMD_INFO))
            rt = decode_realtime(await self.client.ask(apsystems.realtime_query(info.ecu_id), apsystems.CMD_REALTIME))
            signal = SignalData()
            if self.cfg.signal:
                signal = await self._signal(info.ecu_id)
        except EcuUnreachable as exc:
            if (pause := self._first_contact_pause(exc)) is not None:
                return pause
            await self._failed(exc)
            return self.cfg.retry_after_failure_s
        except (apsystems.EcuFrameError, EcuConnectionError) as exc:
            await self._failed(exc)
            return self.cfg.retry_after_failure_s
        self.failures = 0
        self.ctx.counters.inc("polls_ok")
        return self.next_poll(self.publish(info, rt, signal))

    def _first_contact_pause(self, exc: EcuUnreachable) -> float | None:
        """A short, doubling pause while an ECU that never answered refuses connections, else None.

        The bridge and the ECU often start together: `make run` starts the simulator and the bridge
        at the same moment, the bridge dialled within 15 ms and the simulator listened after ~0.5 s
        (measured); a house powers up after an outage. That is not a failed poll worth a minute's wait.
        """
        if self.ecu_id is not None:
            return None
        pause = 0.25 * 2.0 ** self.waits
        if pause >= self.cfg.retry_after_failure_s:
            return None  # it has had its chances: from now on the normal failure logic applies
        if self.waits == 0:
            self.log.info("ECU not accepting connections yet, retrying shortly", error=str(exc))
        self.waits += 1
        self.ctx.counters.inc("connect_waits")
        return pause

    def next_poll(self, stamp: datetime | None) -> float:
        """Seconds to the ECU's next refresh (plus a margin), from the timestamp of its data."""
        interval = self.cfg.poll_interval_s
        if stamp is None:  # unchanged data: the refresh is due any moment, look again a bit later
            return interval if self.unchanged > 2 else max(interval / 5, min(interval, 1.0))
        age = (datetime.now(UTC) - stamp).total_seconds()
        if not 0 <= age <= interval:  # ECU clock or zone off: plain interval
            return interval
        return max(interval / 5, interval - age + self.cfg.refresh_margin_s)

    async def _signal(self, ecu_id: str) -> SignalData:
        # Signal strength is a nice-to-have: a bad answer here must not discard the power values.
        try:
            return decode_signal(await self.client.ask(apsystems.signal_query(ecu_id), apsystems.CMD_SIGNAL))
        except (apsystems.EcuFrameError, EcuConnectionError) as exc:
            self.ctx.counters.inc("signal_failed")
            self.log.warning("signal strength query failed", error=str(exc))
            return SignalData()

    async def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.ctx.counters.inc("frames_rejected" if isinstance(exc, apsystems.EcuFrameError) else "polls_failed")
        self.log.warning("ECU poll failed", error=str(exc), consecutive=self.failures)
        if self.failures < self.cfg.restart_after_failures:
            return
        for channel in self._channels():
            channel.set_online(False)
        if self.failures == self.cfg.restart_after_failures and self.cfg.auto_restart:
            result = await self.restart()
            self.log.warning("automatic ECU restart", status=result.status, message=result.message)

    def _channels(self) -> list[DeviceChannel]:
        return [self.ctx.devices[i] for i in sorted(self.owned) if i in self.ctx.devices]

    def _channel(self, meta: m.DeviceMeta) -> DeviceChannel:
        """The device's channel, announced once (and again when its model changes)."""
        channel = self.ctx.devices.get(meta.device_id)
        if channel is None or channel.meta.model != meta.model or channel.meta.firmware != meta.firmware:
            channel = self.ctx.device(meta)
        self.owned.add(meta.device_id)
        return channel

    # ------------------------------------------------------------------ restart

    async def restart(self) -> m.CommandResult:
        """Restart the ECU the way its web UI does (re-applying its WiFi settings); ECU-C and ECU-R 2162 only."""
        if self.ecu_id is None:
            return m.CommandResult(status="refused", command="restart", message="ECU id not known yet")
        name, can_restart = apsystems.ecu_model(self.ecu_id)
        target = apsystems.ecu_device_id(self.ecu_id)
        if not can_restart:
            return m.CommandResult(status="refused", command="restart", target=target,
                                   message=f"{name} ({self.ecu_id[:4]}...) cannot restart remotely; power-cycle it")
        url = f"http://{self.cfg.host}:{self.cfg.http_port}/index.php/management/set_wlan_ap"
        form = {"SSID": self.cfg.wifi_ssid, "channel": "0", "method": "2", "psk_wep": "",
                "psk_wpa": self.cfg.wifi_password}
        headers = {"X-Requested-With": "XMLHttpRequest"}
        # Imported here: a restart is rare, and aiohttp costs ~9 MB RSS in every process that imports it.
        from wattbus import http_session

        try:
            async with http_session.session(timeout_s=30) as http:
                resp = await http_session.request(http, "POST", url, data=form, headers=headers)
        except http_session.HttpError as exc:  # refused, timeout, broken answer; the message names the URL
            self.ctx.counters.inc("restart_failed")
            return m.CommandResult(status="failed", command="restart", target=target, message=str(exc))
        if resp.status >= 400:
            return m.CommandResult(status="failed", command="restart", target=target,
                                   message=f"{url} answered HTTP {resp.status}")
        self.ctx.counters.inc("restarts")
        return m.CommandResult(status="ok", command="restart", target=target, message=f"{name} restart requested")

    # ------------------------------------------------------------------ publishing

    def publish(self, info: EcuInfo, rt: RealtimeData, signal: SignalData) -> datetime | None:
        """Publish new data; returns its timestamp (UTC), or None when the ECU has not refreshed."""
        if self.ecu_id is None:
            if info.timezone and self.cfg.timezone is None:
                self.zone = _zone(info.timezone) or self.zone
            self.log.info("ECU answering", ecu=info.ecu_id, model=apsystems.ecu_model(info.ecu_id)[0],
                          firmware=info.firmware, inverters=rt.count, timezone=str(self.zone))
        if self.ecu_id != info.ecu_id and self.on_identified is not None:
            self.on_identified(self, info.ecu_id)
        self.ecu_id = info.ecu_id
        for problem in (*rt.problems, *signal.problems):
            self.ctx.counters.inc("records_rejected")
            self.log.warning("ECU answer partly unusable", ecu=info.ecu_id, problem=problem)
        if rt.timestamp is not None and rt.timestamp == self.last_stamp:
            self.ctx.counters.inc("unchanged_answers")  # the ECU has not refreshed yet: nothing new
            self.unchanged += 1
            return None
        self.unchanged = 0
        self.last_stamp = rt.timestamp
        stamp = rt.timestamp.replace(tzinfo=self.zone).astimezone(UTC) if rt.timestamp else datetime.now(UTC)
        gid = apsystems.ecu_device_id(info.ecu_id)
        ecu_name, _ = apsystems.ecu_model(info.ecu_id)
        self.gateway = self._channel(m.DeviceMeta(
            device_id=gid, kind="gateway", source=self.ctx.name, protocol="aps-ecu", manufacturer="APsystems",
            model=ecu_name, serial=info.ecu_id, firmware=info.firmware, name=self.cfg.name,
            address=f"tcp://{self.cfg.host}:{self.cfg.port}", capabilities=["restart"]))
        self.gateway.publish_reading(model.gateway_reading(gid, info, stamp))
        for inv in rt.inverters:
            self._publish_inverter(gid, inv, signal.strength_pct.get(inv.uid), stamp)
        self._publish_aps2mqtt(info, rt, signal)
        self.ctx.bus.publish(topics.device_native(self.ctx.name, gid, "aps2mqtt"),
                             {"ecu": apsout.ecu_doc(info, rt), "inverters": [
                                 apsout.inverter_doc(i, signal.strength_pct.get(i.uid)) for i in rt.inverters]})
        self.ctx.counters.inc("inverters_published", len(rt.inverters))
        return stamp

    def _publish_aps2mqtt(self, info: EcuInfo, rt: RealtimeData, signal: SignalData) -> None:
        cfg = self.ctx.config
        if not (cfg.aps2mqtt_topics or cfg.aps2mqtt_discovery):
            return
        if cfg.aps2mqtt_discovery:
            configs = apsout.discovery(cfg.aps2mqtt_prefix, cfg.aps2mqtt_discovery_prefix, info, rt)
            if configs.keys() != self.discovered:  # first poll, or the ECU lists other inverters now
                for topic, payload in configs.items():
                    self.ctx.bus.publish(topic, payload, retain=True)
                self.discovered = set(configs)
        for topic, value in apsout.value_topics(cfg.aps2mqtt_prefix, info, rt, signal).items():
            self.ctx.bus.publish(topic, value, retain=cfg.aps2mqtt_retain)
        self.ctx.bus.publish(apsout.status_topic(cfg.aps2mqtt_prefix), "online", retain=True)

    def _publish_inverter(self, gid: str, inv: InverterData, signal_pct: int | None, stamp: datetime) -> None:
        iid = model.inverter_device_id(inv.uid)
        channel = self._channel(m.DeviceMeta(
            device_id=iid, kind="inverter", source=self.ctx.name, protocol="aps-ecu", manufacturer="APsystems",
            model=inv.model, serial=inv.uid, parent_id=gid))
        reading = model.inverter_reading(iid, inv, signal_pct, stamp)
        if not inv.online:
            # The ECU lost the inverter (or it sleeps): say so, and publish no values for it.
            channel.set_online(False)
            self.ctx.bus.publish(topics.device_reading(self.ctx.name, iid), reading)
            return
        channel.publish_reading(reading)
        for panel in model.string_readings(inv, stamp):
            pch = self._channel(m.DeviceMeta(
                device_id=panel.device_id, kind="string", source=self.ctx.name, protocol="aps-ecu",
                manufacturer="APsystems", serial=f"{inv.uid}-{panel.index}", parent_id=iid))
            pch.publish_reading(panel)


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
