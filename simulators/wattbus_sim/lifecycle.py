"""How every simulator stops: SIGTERM or SIGINT ends it with exit status 0, its servers closed.

A simulator in a container runs as PID 1, and the kernel does not apply a signal's default action
to PID 1: without a handler, `docker stop` waits out its grace period and then kills (exit 137).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_event() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets, for a simulator that runs its own shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_stopped(work: Coroutine[Any, Any, T]) -> T | None:
    """Run work until it returns (its result) or a stop signal comes (None).

    On a signal work is cancelled, so its `finally` blocks close what it opened.
    """
    stop = stop_event()
    task = asyncio.create_task(work)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    return None if task.cancelled() else task.result()


def run(work: Coroutine[Any, Any, T]) -> T | None:
    """asyncio.run(work) for a simulator's main(): until work returns or SIGTERM/SIGINT stops it."""
    # Ctrl-C before the loop's handlers are installed (during start-up) still ends quietly.
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(until_stopped(work))
    work.close()  # never started if the interrupt came before asyncio.run began it
    return None


def interrupt_on_sigterm() -> None:
    """For blocking simulators (no event loop): SIGTERM raises KeyboardInterrupt as Ctrl-C does, so
    their existing clean-up after Ctrl-C runs for `docker stop` too."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
