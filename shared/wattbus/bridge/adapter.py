"""The `Adapter` protocol: one device as the toolkit drives it, and the checks on what it claims."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec

from .. import messages as m


class Adapter(Protocol):
    """One device (with any child devices it reports, such as an inverter's strings).

    `identify` finds out what the device is (network I/O) and returns its metas; `metas` is what
    it is now (`read` may add children or change identity, e.g. a swapped inverter with another
    serial); `read` returns readings, each for one of the metas' device ids; `execute` applies one
    typed command and answers with what the device reports afterwards; `close` releases the
    transport. `identify` and `read` raise one of `errors` when the device fails to answer.
    """

    commands: tuple[type[m.CommandBase], ...]  # the commands `execute` handles
    errors: tuple[type[Exception], ...]  # what a failed identify/read raises
    metas: list[m.DeviceMeta]

    async def identify(self) -> list[m.DeviceMeta]: ...

    async def read(self) -> list[m.ReadingBase]: ...

    async def execute(self, command: m.CommandBase) -> m.CommandResult: ...

    async def close(self) -> None: ...


def tag(command: m.CommandBase | type[m.CommandBase]) -> str:
    value = command.__struct_config__.tag
    if isinstance(value, str):
        return value
    return command.__name__ if isinstance(command, type) else type(command).__name__


def tags(commands: Iterable[type[m.CommandBase]]) -> list[str]:
    return [tag(command) for command in commands]


def check_capabilities(meta: m.DeviceMeta, commands: Iterable[type[m.CommandBase]]) -> tuple[m.DeviceMeta, list[str]]:
    """The meta without capabilities its adapter cannot execute, and those it claimed anyway: a
    capability on the bus is a promise the command router must keep."""
    handled = set(tags(commands))
    unknown = [c for c in meta.capabilities if c not in handled]
    if not unknown:
        return meta, []
    kept = [c for c in meta.capabilities if c in handled]
    return msgspec.structs.replace(meta, capabilities=kept), unknown


def answer(command: m.CommandBase, target: str, status: m.CommandStatus, message: str = "",
           applied: dict[str, m.ExtraValue] | None = None) -> m.CommandResult:
    return m.CommandResult(status=status, command=tag(command), target=target, request_id=command.request_id,
                           message=message, applied=applied or {})
