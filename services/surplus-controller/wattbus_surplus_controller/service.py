"""The bus side: readings in, one decision per fresh grid reading, commands and state out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.commands import RecentCommands, request_key
from wattbus.runner import ServiceContext

from .choices import applied, apply_choice
from .config import Config
from .judged import Judged
from .limits import ChargerLimits
from .model import ChargerView, LoadpointChoices, Setting
from .persist import StateFile
from .plan import Planner, VehicleView, as_now, max_power_w, plan_current_a, state_fields, takes_over
from .relays import RelayView, SurplusRelay
from .session import Session, status
from .site import Site
from .strategy import Loadpoint
from .tracking import CHARGING, CURRENT, PHASES, Sent, adopt_readings

ALL_RESULTS = f"{topics.PREFIX}/device/+/+/result"
SERVICE_AVAILABILITY = f"{topics.PREFIX}/service/+/+/availability"
COMMAND_TIMEOUT_S = 15.0


@dataclass
class Pending:
    """A command waiting for its result: to whom, and for which loadpoint (None: a relay)."""

    ref: str
    loadpoint: str | None
    tag: str


def split_ref(ref: str) -> tuple[str, str]:
    source, device_id = ref.split("/", 1)
    return source, device_id


class Controller:
    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.site = Site(cfg)
        self.store = StateFile(cfg.state_file)
        stored, problem = self.store.load()
        if problem:
            ctx.counters.inc("state_file_rejected")
            ctx.log.warning("state file unusable", problem=problem)
        self.loadpoints: list[Loadpoint] = []
        for lp_cfg in sorted(cfg.loadpoints, key=lambda c: -c.priority):
            settings = LoadpointChoices(lp_cfg.mode, lp_cfg.min_current_a, lp_cfg.max_current_a, lp_cfg.plan_soc_pct,
                                lp_cfg.plan_time, lp_cfg.plan_min_soc_pct)
            saved = stored.get(lp_cfg.id)
            if saved is not None and saved.mode in ("off", "now", "minpv", "pv"):
                plan = (saved.plan_soc_pct, saved.plan_time, saved.plan_min_soc_pct) if saved.plan_set else (
                    settings.plan_soc_pct, settings.plan_time, settings.plan_min_soc_pct)
                settings = LoadpointChoices(saved.mode, saved.min_current_a, saved.max_current_a, *plan)  # type: ignore[arg-type]
            self.loadpoints.append(Loadpoint(lp_cfg, settings))
        self.relays = [SurplusRelay(r) for r in sorted(cfg.relays, key=lambda r: -r.priority)]
        self.sent: dict[str, Sent] = {lp.cfg.id: Sent() for lp in self.loadpoints}
        self.sessions: dict[str, Session] = {lp.cfg.id: Session() for lp in self.loadpoints}
        self.planners = {lp.cfg.id: Planner(lp.cfg) for lp in self.loadpoints}
        self.vehicles: dict[str, VehicleView] = {}  # by device ref, the loadpoints' vehicles
        self.plan_state: dict[str, dict[str, Any]] = {}  # the plan's part of each LoadpointState
        self.relay_sent: dict[str, tuple[bool | None, float]] = {r.cfg.id: (None, float("-inf")) for r in self.relays}
        self._requests = 0
        self._pending: dict[str, Pending] = {}
        self._online: dict[str, bool] = {}  # availability topic -> last seen online
        self._stale_alert: str | None = None
        self.recent = RecentCommands(ctx.counters)  # a redelivered loadpoint command is answered, not re-applied
        self.judged = Judged(ctx, self.on_judged)
        self.limits = ChargerLimits(ctx.log)  # the current range each charger's bridge accepts
        self.site.judged_offline = self.judged.reason

    def start(self) -> None:
        bus = self.ctx.bus
        # QoS 0: only the latest value counts and a lost one is replaced within a poll (staleness is
        # watched); saves the PUBACK round trip for every reading on the bus.
        bus.subscribe(topics.ALL_READINGS, m.Reading, self.on_reading, qos=0)
        bus.subscribe(ALL_RESULTS, m.CommandResult, self.on_result)
        # a bridge (re)starting misses what was sent before it subscribed: re-send when it is back
        bus.subscribe(SERVICE_AVAILABILITY, bytes, self.on_availability)
        bus.subscribe(topics.ALL_DEVICE_AVAILABILITY, bytes, self.on_availability)
        for lp in self.loadpoints:
            bus.subscribe(topics.loadpoint_command(lp.cfg.id), m.Command, self.on_loadpoint_command)
        self.judged.start()

    # ------------------------------------------------------------------ readings

    def on_reading(self, msg: Message[m.Reading]) -> None:
        parsed = topics.parse(msg.topic)
        ref = f"{parsed.source}/{parsed.ident}"
        reading = msg.payload
        cfg = self.ctx.config
        interesting = ref == cfg.grid_meter or ref == cfg.battery or ref in self.site.chargers \
            or any(ref == lp.cfg.charger for lp in self.loadpoints) or any(ref == r.cfg.device for r in self.relays)
        if isinstance(reading, m.VehicleReading) and any(ref == lp.cfg.vehicle for lp in self.loadpoints):
            # the car's word stands until its next one (cars report on change and sleep): no cycle
            self.vehicles[ref] = VehicleView(reading.soc_pct, reading.capacity_wh, reading.limit_soc_pct)
            return
        if not interesting:
            return
        now = self.site.arrived(reading)
        if ref == cfg.grid_meter:
            if not isinstance(reading, m.MeterReading) or reading.power_w is None:
                self._reject(ref, f"grid meter sent a {reading.__struct_config__.tag} reading without power_w")
                return
            self.site.grid_w, self.site.grid_at = reading.power_w, now
            self.cycle(now)
            return
        if ref == cfg.battery:
            if not isinstance(reading, m.BatteryReading):
                self._reject(ref, f"battery sent a {reading.__struct_config__.tag} reading")
                return
            self.site.note_battery(now, reading.power_w, reading.soc_pct)
        elif isinstance(reading, m.ChargerReading):
            self.site.chargers[ref] = ChargerView(reading.power_w, reading.state, reading.set_current_a,
                                                  reading.phases_active, reading.enabled, now,
                                                  reading.session_energy_wh)
            self.limits.note(ref, reading)
            for lp in self.loadpoints:
                if lp.cfg.charger == ref:
                    self.sessions[lp.cfg.id].note(now, self.site.chargers[ref])
        elif isinstance(reading, m.RelayReading):
            self.site.relays[(ref, reading.channel)] = RelayView(reading.on, reading.power_w, reading.temperature_c)
        else:
            self._reject(ref, f"unexpected {reading.__struct_config__.tag} reading for a charger or relay")
            return
        if self.site.grid_problem(now) is not None:
            self.cycle(now)  # the meter is silent: other devices' readings still move the safety net

    def _reject(self, ref: str, why: str) -> None:
        count = self.ctx.counters.inc("readings_rejected")
        if count <= 20 or count % 100 == 0:
            self.ctx.log.warning("reading not usable", device=ref, problem=why, rejected_total=count)

    def on_availability(self, msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        online = msg.payload.strip() == m.ONLINE.encode()
        was = self._online.get(msg.topic)
        self._online[msg.topic] = online
        if not online or was is True:
            return
        # wattbus/v1/service/<source>/<instance>/availability names the bridge (the service),
        # wattbus/v1/device/<source>/<id>/availability one device of it
        wide, source = parsed.area == "service", parsed.source
        self._send_again(lambda ref: split_ref(ref) == (source, parsed.ident) or (wide and split_ref(ref)[0] == source),
                         msg.topic)
        if self.site.grid_problem(self.site.now()) is None:
            self.cycle(self.site.now())

    def on_judged(self, back: list[str]) -> None:
        """A device we depend on was judged online or offline, or another replica took it over."""
        self._send_again(lambda ref: ref in back, "judged online again or taken over (liveness)")
        if self.site.grid_at is not None:  # not before the first meter reading: no decision without it
            self.cycle(self.site.now())

    def _send_again(self, matches: Callable[[str], bool], why: str) -> None:
        for lp in (lp for lp in self.loadpoints if matches(lp.cfg.charger)):
            self.ctx.counters.inc("resends_on_online")
            self.ctx.log.info("charger's bridge online: sending its setting again", loadpoint=lp.cfg.id, topic=why)
            self.sent[lp.cfg.id].forget()
        for relay in (r for r in self.relays if matches(r.cfg.device)):
            self.relay_sent[relay.cfg.id] = (None, float("-inf"))

    def on_result(self, msg: Message[m.CommandResult]) -> None:
        result = msg.payload
        pending = self._pending.pop(result.request_id, None) if result.request_id is not None else None
        if pending is None:
            return
        self._count_result(result, pending)

    def _count_result(self, result: m.CommandResult, pending: Pending) -> None:
        if result.status == "ok":
            self.ctx.counters.inc("commands_ok")
            return
        self.ctx.counters.inc(f"commands_{result.status}")
        self.ctx.log.warning("command not applied", command=result.command or pending.tag, target=pending.ref,
                             status=result.status, reason=result.message or "(no reason given)")
        lp = next((lp for lp in self.loadpoints if lp.cfg.id == pending.loadpoint), None)
        if lp is None:
            return  # a relay: its readings show the mismatch, and _apply_relay re-sends after 30 s
        now = self.site.now()
        sent = self.sent[lp.cfg.id]
        view = self.site.chargers.get(lp.cfg.charger, ChargerView())
        if result.status == "timeout":
            sent.forget()  # maybe lost on the way: the next decision sends the setting again
            return
        # refused: the charger kept its value. Believe its readings now, plan from them, and do
        # not repeat this command before resync_s (a bridge that keeps refusing gets no storm)
        sent.from_readings(view, now)
        sent.blocked[pending.tag] = now + lp.cfg.resync_s
        adopt_readings(lp.setting, view, pending.tag)
        self.ctx.log.info("loadpoint re-synced from the charger's readings", loadpoint=lp.cfg.id,
                          enabled=view.enabled, current_a=view.set_current_a, phases=view.phases)

    # ------------------------------------------------------------------ one decision

    def cycle(self, now: float) -> None:
        site = self.site
        views = {lp.cfg.id: site.chargers.get(lp.cfg.charger, ChargerView()) for lp in self.loadpoints}
        relay_views = {r.cfg.id: site.relays.get((r.cfg.device, r.cfg.channel), RelayView()) for r in self.relays}
        consumers = sum(v.power_w or 0.0 for v in views.values())
        consumers += sum(r.draw_w(relay_views[r.cfg.id]) for r in self.relays)
        remaining = site.available_w(now, consumers)
        # relays held on by their minimum on time keep drawing whatever the car does: not available
        committed = sum(r.committed_w(now, relay_views[r.cfg.id]) for r in self.relays)
        if remaining is not None:
            remaining -= committed
        buffered, lendable = max(site.buffered_w(now), site.assist_w(now)), site.lendable_wh(now)
        problem = site.grid_problem(now)
        import_w = max(0.0, site.grid_w or 0.0) if problem is None else 0.0
        self._alert(problem)
        self.ctx.counters.inc("cycles")
        room = site.battery_room(now)
        for lp in self.loadpoints:
            view = views[lp.cfg.id]
            lp.battery_room = room
            vehicle = self.vehicles.get(lp.cfg.vehicle or "")
            chosen = lp.settings
            lp.settings, limited = self.limits.effective(lp.cfg.id, lp.cfg.charger, chosen)  # config ∩ charger
            try:
                plan = self.planners[lp.cfg.id].decide(self.site.now_dt().astimezone(), lp.settings, vehicle,
                                                       max_power_w(lp), plugged=view.state != "idle")
                if takes_over(plan, lp.settings.mode):  # the plan charges: as mode now, at the current it needs
                    lp.settings = as_now(lp.settings, plan_current_a(lp, plan.power_w, remaining))
                setting = lp.decide(now, remaining, view, self.ctx.config.stale_action, problem or "", buffered,
                                    lendable, import_w)
            finally:
                lp.settings = chosen
            if takes_over(plan, chosen.mode) and setting.enabled:
                # "plan: " marks it for status(); the plan's own words are in plan_status
                setting.reason = f"plan: {setting.current_a:g} A on {setting.phases}p, {plan.power_w:.0f} W needed"
            setting.reason += f"; {limited}" if limited else ""
            self.plan_state[lp.cfg.id] = state_fields(lp.cfg, chosen, vehicle, plan)
            buffered = lendable = 0.0  # one loadpoint borrows from the battery, not each of them
            self._apply(lp, setting, view, now)
            self._publish_state(lp, setting, view, remaining, problem)
            if remaining is not None:
                remaining -= lp.expected_power_w()
        if remaining is not None:
            remaining += committed  # the relays share what the loadpoints left, their own draw included
        for relay in self.relays:
            rview = relay_views[relay.cfg.id]
            on = relay.decide(now, remaining, rview)
            self._apply_relay(relay, on, rview, now)
            if remaining is not None:
                remaining -= relay.draw_w(rview)

    def _alert(self, problem: str | None) -> None:
        if problem != self._stale_alert:
            if problem:
                self.ctx.counters.inc("stale_grid_alerts")
                self.ctx.log.warning("grid data stale: safe state", problem=problem,
                                     action=self.ctx.config.stale_action)
            elif self._stale_alert:
                self.ctx.log.info("grid data fresh again")
            self._stale_alert = problem

    def _apply(self, lp: Loadpoint, s: Setting, view: ChargerView, now: float) -> None:
        sent = self.sent[lp.cfg.id]
        commands: list[m.CommandBase] = []
        if s.phases != sent.phases:
            commands.append(m.SetPhases(phases=s.phases))
        if s.enabled and s.current_a != sent.current_a:
            commands.append(m.SetChargeCurrent(current_a=s.current_a))
        if s.enabled != sent.enabled:
            commands.append(m.SetCharging(enabled=s.enabled))
        if not s.enabled:
            commands.reverse()  # stop first
        if not commands and view.at is not None and now - sent.at >= lp.cfg.resync_s and self._differs(s, view):
            self.ctx.counters.inc("resyncs")
            commands = [m.SetPhases(phases=s.phases), m.SetChargeCurrent(current_a=s.current_a),
                        m.SetCharging(enabled=s.enabled)]
        commands = [c for c in commands if not sent.is_blocked(str(c.__struct_config__.tag), now)]
        if not commands:
            return
        self.ctx.log.info("loadpoint setting", loadpoint=lp.cfg.id, enabled=s.enabled, current_a=s.current_a,
                          phases=s.phases, reason=s.reason)
        for command in commands:
            self._send(lp.cfg.charger, command, lp.cfg.id)
            tag = command.__struct_config__.tag
            if tag == PHASES:
                sent.phases = s.phases
            elif tag == CURRENT:
                sent.current_a = s.current_a
            elif tag == CHARGING:
                sent.enabled = s.enabled
        sent.at = now

    @staticmethod
    def _differs(s: Setting, view: ChargerView) -> bool:
        if view.enabled is not None and view.enabled != s.enabled:
            return True
        if s.enabled and view.set_current_a is not None and view.set_current_a != s.current_a:
            return True
        return s.enabled and view.phases is not None and view.phases != s.phases

    def _apply_relay(self, relay: SurplusRelay, on: bool, view: RelayView, now: float) -> None:
        last, at = self.relay_sent[relay.cfg.id]
        mismatch = view.on is not None and view.on != on and now - at >= 30.0
        if on == last and not mismatch:
            return
        self.ctx.log.info("relay setting", relay=relay.cfg.id, on=on, reason=relay.reason)
        self._send(relay.cfg.device, m.SetRelay(on=on, channel=relay.cfg.channel))
        self.relay_sent[relay.cfg.id] = (on, now)

    def _send(self, ref: str, command: m.CommandBase, loadpoint: str | None = None) -> None:
        self._requests += 1
        request_id = f"{self.ctx.name}-{self.ctx.instance}-{self._requests}"
        command = msgspec.structs.replace(command, request_id=request_id)
        source, device_id = split_ref(ref)
        topic = topics.device_command(source, device_id)
        self.ctx.counters.inc("commands_sent")
        pending = Pending(ref, loadpoint, str(command.__struct_config__.tag))
        if self.ctx.config.command_replies == "response_topic":
            asyncio.get_running_loop().create_task(self._request(topic, command, pending))
        else:
            self._pending[request_id] = pending
            if len(self._pending) > 1000:  # bridges that never answer must not grow this forever
                self._pending.pop(next(iter(self._pending)))
            self.ctx.bus.publish(topic, command)

    async def _request(self, topic: str, command: m.CommandBase, pending: Pending) -> None:
        self._count_result(await self.ctx.bus.request(topic, command, timeout=COMMAND_TIMEOUT_S), pending)

    def _publish_state(self, lp: Loadpoint, s: Setting, view: ChargerView, available: float | None,
                       problem: str | None) -> None:
        session = self.sessions[lp.cfg.id]
        state = m.LoadpointState(
            loadpoint_id=lp.cfg.id, mode=lp.settings.mode, charger_id=split_ref(lp.cfg.charger)[1],
            charging=view.state == "charging", set_current_a=s.current_a if s.enabled else None, phases=s.phases,
            power_w=view.power_w, surplus_w=None if available is None else round(available, 1),
            min_current_a=lp.settings.min_current_a, max_current_a=lp.settings.max_current_a,
            phase_switches_last_hour=lp.budget.used(self.site.now()), reason=s.reason,
            timestamp=self.site.now_dt(), alert=problem or self.judged.problem(lp.cfg.charger)
            or self.limits.conflicts.get(lp.cfg.id),
            strategy=self.ctx.config.strategy,
            session_energy_wh=session.session_energy_wh(view), session_duration_s=session.duration_s(self.site.now()),
            status=status(s, view, problem), **self.plan_state.get(lp.cfg.id, {}))
        self.ctx.bus.publish(topics.loadpoint_state(lp.cfg.id), state, retain=True)

    # ------------------------------------------------------------------ loadpoint commands

    def on_loadpoint_command(self, msg: Message[m.Command]) -> None:
        lp_id = topics.parse(msg.topic).ident or ""
        lp = next((lp for lp in self.loadpoints if lp.cfg.id == lp_id), None)
        command = msg.payload
        tag = command.__struct_config__.tag
        fallback = topics.reply(self.ctx.name, self.ctx.instance, "loadpoint")
        key = request_key(msg, command.request_id)
        repeated = self.recent.recall(key)
        if repeated is not None:  # a redelivery after a newer command must not undo it
            self.ctx.bus.respond(msg, repeated, fallback)
            return None

        def answer(status: m.CommandStatus, message: str = "", applied: dict[str, m.ExtraValue] | None = None) -> None:
            if status != "ok":
                self.ctx.counters.inc("loadpoint_commands_rejected")
                self.ctx.log.warning("loadpoint command rejected", loadpoint=lp_id, command=tag, reason=message)
            result = m.CommandResult(status=status, command=str(tag), target=lp_id, request_id=command.request_id,
                                     message=message, applied=applied or {})
            self.recent.remember(key, result)
            self.ctx.bus.respond(msg, result, fallback)

        if lp is None:
            return answer("refused", f"unknown loadpoint {lp_id!r}")
        settings = lp.settings
        outcome, problem = apply_choice(settings, command)
        if outcome != "ok":
            return answer(outcome, problem)
        try:
            self.store.save({p.cfg.id: p.settings for p in self.loadpoints})
        except OSError as exc:
            self.ctx.counters.inc("state_file_errors")
            self.ctx.log.error("cannot save state file", path=str(self.store.path), error=str(exc))
        self.ctx.log.info("loadpoint settings changed", loadpoint=lp_id, mode=settings.mode,
                          min_current_a=settings.min_current_a, max_current_a=settings.max_current_a)
        answer("ok", applied=applied(settings))
        self.cycle(self.site.now())
        return None

    async def watchdog(self) -> None:
        """Wall-clock safety net: with a silent meter no reading triggers a cycle, this does."""
        while await self.ctx.sleep(self.ctx.config.watchdog_interval_s):
            now = self.site.now()
            if self.ctx.config.clock == "wall" and self.site.grid_problem(now) is not None:
                self.cycle(now)

