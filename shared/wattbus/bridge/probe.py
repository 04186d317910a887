"""`probe_device` through the adapter: the setup page's "add by hand" check reads a device entry once
with the same adapter the poll loop uses, and announces nothing. The runner imports the bridge's
`<package>.probe.probe`; a bridge builds that from these pieces."""

from __future__ import annotations

from typing import Any, TypeVar

from .. import messages as m
from ..config import ConfigError, convert
from ..runner import ServiceContext
from .adapter import Adapter

T = TypeVar("T")


def entry(ctx: ServiceContext[Any], raw: dict[str, Any], entry_type: type[T]) -> T | m.CommandResult:
    """The probe's entry decoded like a config list item, or the `invalid` answer naming the key."""
    try:
        return convert(f"{ctx.name}.devices", raw, entry_type, dict.fromkeys(raw, "probe"))
    except ConfigError as exc:
        return invalid(ctx, str(exc))


def invalid(ctx: ServiceContext[Any], message: str) -> m.CommandResult:
    ctx.counters.inc("probes_invalid")
    return m.CommandResult(status="invalid", message=message)


async def sample(adapter: Adapter) -> tuple[list[m.DeviceMeta], list[m.ReadingBase]]:
    """Identify and read once, then close: what the poll loop would announce and publish first."""
    try:
        await adapter.identify()
        readings = await adapter.read()
        return list(adapter.metas), readings
    finally:
        await adapter.close()


def result(ctx: ServiceContext[Any], where: str, devices: list[m.DeviceMeta], readings: list[m.ReadingBase],
           reasons: list[str]) -> m.CommandResult:
    """`ok` with what answered (and what did not), or `failed` with why nothing did."""
    if not devices:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=f"{where}: {'; '.join(reasons or ['no answer'])}")
    note = f" (not answering: {'; '.join(reasons)})" if reasons else ""
    return m.CommandResult(status="ok", devices=devices, readings=readings,  # type: ignore[arg-type]
                           message=f"{where}: {len(devices)} device(s) answered{note}")
