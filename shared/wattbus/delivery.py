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
from dataclasses import dataclass
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


@dataclass(slots=True)
class Subscription:
    subscription: str
    payload_type: Any  # a Struct/Union type, or bytes for raw payloads
    handler: Handler
    qos: int
    levels: tuple[str, ...] = ()
    ident: int = 0  # MQTT v5 subscription identifier (1, 2, ... in subscribe order)

    def __post_init__(self) -> None:
        self.levels = tuple(topics.filter_of(self.subscription).split("/"))

    def matches(self, topic: str) -> bool:
        """MQTT filter matching (`+` one level, `#` the rest) without paho's per-call matcher."""
        parts = topic.split("/")
        for index, level in enumerate(self.levels):
            if level == "#":
                return not (index == 0 and topic.startswith("$"))
            if index >= len(parts) or (level != "+" and level != parts[index]):
                return False
        return len(parts) == len(self.levels)


class Dispatcher:
    """Hands each incoming message to the handlers of the subscriptions it came through."""

    def __init__(self, subs: list[Subscription], counters: Counters, log: Logger) -> None:
        self.subs = subs  # the bus's list: subscriptions added later are seen here too
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
        # Brokers without subscription identifiers: fall back to filter matching.
        return delivery, [sub for sub in self.subs
                          if ((sub.ident in idents) if idents else sub.matches(raw.topic))]

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
