"""The incoming side of the bus client: subscriptions, routing and calling handlers in order.

paho's read callback appends each message to an inbox; `drain` delivers it within the same loop
pass (one wake-up per message). An async handler is awaited by the dispatcher task, which keeps
delivering until the inbox is empty, so every handler sees messages in the order they arrived.
A payload that does not decode is counted and logged, never handed to the handler.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import paho.mqtt.client as mqtt

from . import codec, topics
from .counters import Counters
from .log import Logger

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    topic: str
    payload: T
    retained: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None


Handler = Callable[[Message[Any]], Awaitable[None] | None]
Delivery = tuple[mqtt.MQTTMessage, str | None, bytes | None]  # message, response topic, correlation


@dataclass(slots=True, eq=False)
class Subscription:
    """One handler on one filter: what `Bus.subscribe` returns and `Bus.unsubscribe` takes."""

    subscription: str
    payload_type: Any  # a Struct/Union type, or bytes for raw payloads
    handler: Handler
    qos: int
    levels: tuple[str, ...] = ()
    active: bool = True  # False once unsubscribed: a message already being delivered skips it

    def __post_init__(self) -> None:
        self.levels = tuple(topics.filter_of(self.subscription).split("/"))

    def matches(self, topic: str) -> bool:
        return _matches(self.levels, topic)


def _matches(levels: tuple[str, ...], topic: str) -> bool:
    """MQTT filter matching (`+` one level, `#` the rest) without paho's per-call matcher."""
    parts = topic.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            return not (index == 0 and topic.startswith("$"))
        if index >= len(parts) or (level != "+" and level != parts[index]):
            return False
    return len(parts) == len(levels)


MAX_IDENT = 268_435_455  # the largest MQTT v5 subscription identifier
# Per filter, the identifiers of older SUBSCRIBEs, whose messages may still be on their way (sent
# before the broker took the newer one, or resent from a persistent session after a reconnect): a
# message with a forgotten identifier is dropped, so keep plenty (a few KiB for a service).
KEPT_IDENTS = 64


@dataclass(slots=True, eq=False)
class Filter:
    """One broker subscription and every handler on it, in the order they were added.

    The broker keeps one subscription per filter and client (a second SUBSCRIBE replaces the
    first), so handlers share it and the bus fans each message out to all of them. Each SUBSCRIBE
    carries a fresh subscription identifier and the broker resends the retained messages with
    it (RETAIN set, which live messages never have without retain-as-published): `audience`
    says who gets those, so a handler added later gets them and the ones that had them do not.
    """

    subscription: str
    levels: tuple[str, ...]
    handlers: list[Subscription]
    qos: int = 0  # as sent to the broker: the strongest any handler asked for
    # identifier -> the handlers that SUBSCRIBE resent retained messages for (None: all of them)
    audience: dict[int, tuple[Subscription, ...] | None] = field(default_factory=dict)

    def receivers(self, ident: int | None, retained: bool) -> list[Subscription]:
        wanted = self.audience.get(ident) if retained and ident is not None else None
        if wanted is None:
            return list(self.handlers)
        return [sub for sub in self.handlers if sub in wanted]


class Routes:
    """The bus's filters, by filter and by subscription identifier; what each message is for."""

    def __init__(self) -> None:
        self.filters: dict[str, Filter] = {}
        self._by_ident: dict[int, Filter] = {}
        self._last_ident = 0

    def add(self, sub: Subscription) -> Filter:
        filt = self.filters.get(sub.subscription)
        if filt is None:
            filt = self.filters[sub.subscription] = Filter(sub.subscription, sub.levels, [])
        filt.handlers.append(sub)
        return filt

    def remove(self, sub: Subscription) -> Filter | None:
        """Take sub off its filter; the filter is returned when its last handler went."""
        sub.active = False
        filt = self.filters.get(sub.subscription)
        if filt is None or sub not in filt.handlers:
            return None
        filt.handlers.remove(sub)
        if filt.handlers:
            return None
        del self.filters[sub.subscription]
        for ident in filt.audience:
            self._by_ident.pop(ident, None)
        return filt

    def strongest(self, filt: Filter) -> int:
        return max((sub.qos for sub in filt.handlers), default=0)

    def new_ident(self, filt: Filter, audience: tuple[Subscription, ...] | None) -> int:
        """The identifier of the next SUBSCRIBE of filt, and who gets the retained messages it brings."""
        self._last_ident = self._last_ident % MAX_IDENT + 1
        ident = self._last_ident
        stale = self._by_ident.pop(ident, None)  # after a wrap-around: an identifier long out of use
        if stale is not None:
            stale.audience.pop(ident, None)
        self._by_ident[ident] = filt
        filt.audience[ident] = audience
        while len(filt.audience) > KEPT_IDENTS:
            self._by_ident.pop(next(iter(filt.audience)), None)
            del filt.audience[next(iter(filt.audience))]
        return ident

    def route(self, topic: str, retained: bool, idents: list[int] | None) -> list[Subscription]:
        """The handlers a message is for. Mosquitto sends one copy per matching subscription, each
        with its own identifier (another broker may send one copy with all of them): either way
        each filter's handlers get it once per copy meant for that filter."""
        if not idents:  # a broker without subscription identifiers: match the filters ourselves
            return [sub for filt in self.filters.values() if _matches(filt.levels, topic)
                    for sub in filt.receivers(None, retained)]
        seen: list[Filter] = []
        subs: list[Subscription] = []
        for ident in idents:
            filt = self._by_ident.get(ident)
            if filt is not None and filt not in seen:
                seen.append(filt)
                subs.extend(filt.receivers(ident, retained))
        return subs


class Dispatcher:
    """Hands each incoming message to the handlers of the subscriptions it came through."""

    def __init__(self, routes: Routes, counters: Counters, log: Logger) -> None:
        self.routes = routes  # the bus's: subscriptions added later are seen here too
        self.counters = counters
        self.log = log
        # paho's read callback appends here; drain delivers right after the read, and the
        # dispatcher task takes over while an async handler is being awaited (order is kept).
        self._inbox: deque[mqtt.MQTTMessage] = deque()
        self._inbox_ready = asyncio.Event()
        self._awaiting = False
        self._carried: tuple[Awaitable[Any], str, list[Subscription], Delivery] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str) -> None:
        self._task = asyncio.create_task(self._dispatch(), name=name)

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.append(message)

    def drain(self) -> None:
        """Deliver what paho just read within the same loop pass (one wake-up per message)."""
        while self._inbox and not self._awaiting:
            raw = self._inbox.popleft()
            delivery, subs = self._route(raw)
            for index, sub in enumerate(subs):
                pending = self._call(sub, raw, delivery)
                if pending is not None:  # an async handler: the dispatcher awaits it, then goes on
                    self._awaiting = True
                    self._carried = (pending, raw.topic, subs[index + 1:], delivery)
                    self._inbox_ready.set()
                    break

    def _route(self, raw: mqtt.MQTTMessage) -> tuple[Delivery, list[Subscription]]:
        self.counters.inc("messages_in")
        props = getattr(raw, "properties", None)
        delivery = (raw, getattr(props, "ResponseTopic", None) if props else None,
                    getattr(props, "CorrelationData", None) if props else None)
        idents = getattr(props, "SubscriptionIdentifier", None) if props else None
        return delivery, self.routes.route(raw.topic, bool(raw.retain), idents)

    async def _dispatch(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            if self._carried is not None:
                pending, topic, rest, delivery = self._carried
                self._carried = None
                await self._finish(pending, topic)
                for sub in rest:
                    await self._finish(self._call(sub, delivery[0], delivery), topic)
            while self._inbox:
                raw = self._inbox.popleft()
                delivery, subs = self._route(raw)
                for sub in subs:
                    await self._finish(self._call(sub, raw, delivery), raw.topic)
            self._awaiting = False  # no await since the inbox was seen empty: drain takes over

    def _call(self, sub: Subscription, raw: mqtt.MQTTMessage, delivery: Delivery) -> Awaitable[Any] | None:
        """Decode for sub and call its handler; an awaitable result is returned to be awaited."""
        if not sub.active:  # unsubscribed while this message was on its way to it
            return None
        if sub.payload_type is bytes:
            payload: Any = raw.payload
        else:
            try:
                payload = codec.decode(bytes(raw.payload), sub.payload_type)
            except codec.PayloadError as exc:
                count = self.counters.inc("rejected")
                if count <= 20 or count % 100 == 0:
                    self.log.warning("rejected malformed payload", topic=raw.topic, error=str(exc),
                                     rejected_total=count)
                return None
        try:
            result = sub.handler(Message(raw.topic, payload, bool(raw.retain), delivery[1], delivery[2]))
        except Exception as exc:
            self.counters.inc("handler_errors")
            self.log.exception("handler failed", topic=raw.topic, error=repr(exc))
            return None
        return result if inspect.isawaitable(result) else None

    async def _finish(self, pending: Awaitable[Any] | None, topic: str) -> None:
        if pending is None:
            return
        try:
            await pending
        except Exception as exc:
            self.counters.inc("handler_errors")
            self.log.exception("handler failed", topic=topic, error=repr(exc))
