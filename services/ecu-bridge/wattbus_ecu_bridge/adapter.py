"""The bridge's adapter (wattbus.bridge.Adapter): one APsystems ECU and the inverters and panels behind it.

`identify` asks the ECU for its info (its id tells the model); `read` asks info, real-time data and
signal strength and maps them onto the contract: the ECU as a gateway, each inverter (a silent one
with `online = False`, published offline and without values) and each panel. An answer with the
timestamp of the last one means the ECU has not refreshed yet: nothing new is published. Beside
the readings: the aps2mqtt document on the gateway's native topic, and aps2mqtt's own topics when
configured. `restart` re-applies the ECU's WiFi settings through its web UI (ECU-C, ECU-R 2162).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wattbus import apsystems, topics
from wattbus import messages as m
from wattbus.apsystems import EcuInfo, decode_info
from wattbus.bridge import answer
from wattbus.runner import ServiceContext

from . import apsout, model, sun
from .client import EcuClient, EcuConnectionError, Timing
from .config import Config, EcuConfig
from .decode import RealtimeData, SignalData, decode_realtime, decode_signal


class EcuAdapter:
    commands: tuple[type[m.CommandBase], ...] = (m.Restart,)
    offline_commands = commands  # the restart goes to its web UI: also when its data port is silent
    errors: tuple[type[Exception], ...] = (apsystems.EcuFrameError, EcuConnectionError)

    def __init__(self, ctx: ServiceContext[Config], cfg: EcuConfig, publish_native: bool = True) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.publish_native = publish_native  # off for a probe: it publishes nothing
        self.client = EcuClient(cfg.host, cfg.port, Timing(cfg.answer_delay_s, cfg.pause_between_commands_s,
                                                           cfg.timeout_s))
        self.log = ctx.log.child(f"ecu {cfg.host}:{cfg.port}")
        self.metas: list[m.DeviceMeta] = []
        self.ecu_id: str | None = None
        self.zone: tzinfo = _zone(cfg.timezone) or datetime.now().astimezone().tzinfo or UTC
        self.last_stamp: datetime | None = None  # the ECU's own (local) timestamp of its last data
        self.stamp: datetime | None = None  # UTC time of the data the last read published; None: unchanged
        self.unchanged = 0  # answers in a row with the same timestamp
        self.discovered: set[str] = set()  # aps2mqtt discovery config topics published
        self.restarted = False  # a restart command just went out: the ECU needs a while
        self._info: EcuInfo | None = None  # asked by identify, used by the read right after it

    @property
    def device_id(self) -> str:
        return self.metas[0].device_id if self.metas else ""

    async def identify(self) -> list[m.DeviceMeta]:
        info = decode_info(await self.client.ask(apsystems.info_query(), apsystems.CMD_INFO))
        if self.ecu_id is None:
            if info.timezone and self.cfg.timezone is None:
                self.zone = _zone(info.timezone) or self.zone
            self.log.info("ECU answering", ecu=info.ecu_id, model=apsystems.ecu_model(info.ecu_id)[0],
                          firmware=info.firmware, timezone=str(self.zone))
        self._info, self.ecu_id = info, info.ecu_id
        self._meta(self._gateway(info))
        return self.metas

    def _gateway(self, info: EcuInfo) -> m.DeviceMeta:
        return m.DeviceMeta(device_id=apsystems.ecu_device_id(info.ecu_id), kind="gateway", source=self.ctx.name,
                            protocol="aps-ecu", manufacturer="APsystems", model=apsystems.ecu_model(info.ecu_id)[0],
                            serial=info.ecu_id, firmware=info.firmware, name=self.cfg.name,
                            address=f"tcp://{self.cfg.host}:{self.cfg.port}", capabilities=["restart"])

    def _meta(self, meta: m.DeviceMeta) -> None:
        """Add a device, or replace its meta (another model or firmware: announced again)."""
        if meta.kind == "gateway" and self.metas and self.metas[0].device_id != meta.device_id:
            self.metas = []  # another ECU answers at this address: its devices replace the old ones
        for i, known in enumerate(self.metas):
            if known.device_id == meta.device_id:
                self.metas[i] = meta
                return
        self.metas.append(meta)

    async def read(self) -> list[m.ReadingBase]:
        if self._info is None:
            await self.identify()
        info, self._info = self._info, None
        assert info is not None
        rt = decode_realtime(await self.client.ask(apsystems.realtime_query(info.ecu_id), apsystems.CMD_REALTIME))
        signal = await self._signal(info.ecu_id) if self.cfg.signal else SignalData()
        self.ctx.counters.inc("polls_ok")
        for problem in (*rt.problems, *signal.problems):
            self.ctx.counters.inc("records_rejected")
            self.log.warning("ECU answer partly unusable", ecu=info.ecu_id, problem=problem)
        if rt.timestamp is not None and rt.timestamp == self.last_stamp:
            self.ctx.counters.inc("unchanged_answers")  # the ECU has not refreshed yet: nothing new
            self.unchanged += 1
            self.stamp = None
            return []
        self.unchanged, self.last_stamp = 0, rt.timestamp
        stamp = rt.timestamp.replace(tzinfo=self.zone).astimezone(UTC) if rt.timestamp else datetime.now(UTC)
        self.stamp = stamp
        return self._readings(info, rt, signal, stamp)

    def _readings(self, info: EcuInfo, rt: RealtimeData, signal: SignalData, stamp: datetime) -> list[m.ReadingBase]:
        gid = apsystems.ecu_device_id(info.ecu_id)
        self._meta(self._gateway(info))
        out: list[m.ReadingBase] = [model.gateway_reading(gid, info, stamp)]
        for inv in rt.inverters:
            iid = model.inverter_device_id(inv.uid)
            self._meta(m.DeviceMeta(device_id=iid, kind="inverter", source=self.ctx.name, protocol="aps-ecu",
                                    manufacturer="APsystems", model=inv.model, serial=inv.uid, parent_id=gid))
            # A silent inverter (lost by the ECU, or asleep): online = False, published offline, no values.
            out.append(model.inverter_reading(iid, inv, signal.strength_pct.get(inv.uid), stamp))
            if not inv.online:
                continue
            for panel in model.string_readings(inv, stamp):
                self._meta(m.DeviceMeta(device_id=panel.device_id, kind="string", source=self.ctx.name,
                                        protocol="aps-ecu", manufacturer="APsystems",
                                        serial=f"{inv.uid}-{panel.index}", parent_id=iid))
                out.append(panel)
        if self.publish_native:
            self._publish_aps2mqtt(info, rt, signal)
            self.ctx.bus.publish(topics.device_native(self.ctx.name, gid, "aps2mqtt"),
                                 {"ecu": apsout.ecu_doc(info, rt), "inverters": [
                                     apsout.inverter_doc(i, signal.strength_pct.get(i.uid)) for i in rt.inverters]})
        self.ctx.counters.inc("inverters_published", len(rt.inverters))
        return out

    async def _signal(self, ecu_id: str) -> SignalData:
        # Signal strength is a nice-to-have: a bad answer here must not discard the power values.
        try:
            return decode_signal(await self.client.ask(apsystems.signal_query(ecu_id), apsystems.CMD_SIGNAL))
        except (apsystems.EcuFrameError, EcuConnectionError) as exc:
            self.ctx.counters.inc("signal_failed")
            self.log.warning("signal strength query failed", error=str(exc))
            return SignalData()

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

    # ------------------------------------------------------------------ schedule

    def quiet_time(self) -> float | None:
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

    def next_poll(self) -> float:
        """Seconds to the ECU's next refresh (plus a margin), from the timestamp of its last data."""
        interval = self.cfg.poll_interval_s
        if self.stamp is None:  # unchanged data: the refresh is due any moment, look again a bit later
            return interval if self.unchanged > 2 else max(interval / 5, min(interval, 1.0))
        age = (datetime.now(UTC) - self.stamp).total_seconds()
        if not 0 <= age <= interval:  # ECU clock or zone off: plain interval
            return interval
        return max(interval / 5, interval - age + self.cfg.refresh_margin_s)

    # ------------------------------------------------------------------ restart

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        result = await self.restart()
        self.restarted = result.status == "ok"
        return answer(command, result.target or self.device_id, result.status, result.message)

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

    async def close(self) -> None:
        """Every command has its own connection: nothing stays open."""


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
