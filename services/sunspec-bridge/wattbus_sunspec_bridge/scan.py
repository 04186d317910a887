"""Find SunSpec devices behind a Modbus endpoint (wattbus.sunspec: marker, model chain) and read them.

Detection: the `SunS` marker at one of the base addresses (40000, 0, 50000), then `ID, L` headers
until 0xFFFF. Reads go in blocks of up to 125 registers, so a scan costs a
handful of requests, and a poll reads all models in ceil(span / 125) requests.
"""

from __future__ import annotations

from wattbus.sunspec import DEFAULT_BASES, Block, DeviceMap, NotSunSpec, is_marker, model_chain

from .decode import DecodedModel, decode_model
from .link import MAX_READ, Link, LinkError
from .models import ModelError, model_def

__all__ = ["DeviceMap", "NotSunSpec", "find_base", "read_models", "scan"]


class _Reader:
    """Reads ahead in 125-register blocks; shrinks a read that runs past the end of the map."""

    def __init__(self, link: Link, unit: int, timeout_s: float | None) -> None:
        self.link, self.unit, self.timeout_s = link, unit, timeout_s
        self.start = 0
        self.cache: list[int] = []

    async def get(self, address: int, count: int) -> list[int]:
        out: list[int] = []
        while count > 0:
            offset = address - self.start
            if 0 <= offset < len(self.cache):
                take = self.cache[offset:offset + count]
                out.extend(take)
                address += len(take)
                count -= len(take)
                continue
            try:
                self.cache = await self.link.read(self.unit, address, MAX_READ, timeout_s=self.timeout_s)
            except LinkError as exc:
                if exc.exception_code is None:
                    raise
                # Illegal address: the read-ahead ran past the map's end; read what we need only.
                self.cache = await self.link.read(self.unit, address, min(count, MAX_READ), timeout_s=self.timeout_s)
            self.start = address
        return out


async def find_base(link: Link, unit: int, bases: tuple[int, ...] = DEFAULT_BASES,
                    timeout_s: float | None = None) -> int:
    reasons = []
    for base in bases:
        try:
            regs = await link.read(unit, base, 2, timeout_s=timeout_s)
        except LinkError as exc:
            if exc.exception_code is None:
                raise  # no answer at all: a link problem, not a verdict on SunSpec
            reasons.append(str(exc))
            continue
        if is_marker(regs):
            return base
        reasons.append(f"{link.endpoint} unit {unit} @{base}: {regs[0]:04x}{regs[1]:04x} is not 'SunS'")
    raise NotSunSpec("; ".join(reasons) or f"{link.endpoint} unit {unit}: no SunSpec marker")


async def scan(link: Link, unit: int, bases: tuple[int, ...] = DEFAULT_BASES,
               timeout_s: float | None = None) -> DeviceMap:
    """Detect the base and walk the model chain of one unit; raises NotSunSpec or LinkError."""
    base = await find_base(link, unit, bases, timeout_s)
    reader = _Reader(link, unit, timeout_s)

    async def header(address: int, count: int) -> list[int] | None:
        try:
            return await reader.get(address, count)
        except LinkError as exc:
            if exc.exception_code is None:
                raise  # no answer: a link problem, not the end of the map
            return None  # an exception answer: the map ends here

    blocks = await model_chain(header, base + 2)
    if not blocks or blocks[0].model_id != 1:
        raise NotSunSpec(f"{link.endpoint} unit {unit}: SunS at {base} but no common model (1) after it")
    return DeviceMap(unit, base, tuple(blocks))


def _ranges(blocks: list[Block], max_gap: int = 0) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for block in sorted(blocks, key=lambda b: b.address):
        if merged and block.address - merged[-1][1] <= max_gap:
            merged[-1][1] = max(merged[-1][1], block.end)
        else:
            merged.append([block.address, block.end])
    return [(a, b) for a, b in merged]


async def read_models(link: Link, dmap: DeviceMap, model_ids: set[int] | None = None,
                      timeout_s: float | None = None) -> tuple[list[DecodedModel], list[str]]:
    """Read and decode the device's models (all, or those in model_ids) in as few requests as possible."""
    wanted = [b for b in dmap.blocks if model_ids is None or b.model_id in model_ids or b.model_id == 1]
    image: dict[int, int] = {}
    for start, end in _ranges(wanted, max_gap=16):
        regs = await link.read(dmap.unit, start, end - start, timeout_s=timeout_s)
        image.update(zip(range(start, end), regs, strict=True))
    decoded: list[DecodedModel] = []
    problems: list[str] = []
    for block in wanted:
        try:
            mdef = model_def(block.model_id)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        regs = [image[a] for a in range(block.address, block.end)]
        model = decode_model(mdef, block.address, regs)
        problems.extend(model.errors)
        decoded.append(model)
    return decoded, problems
