"""The command line beyond running the service: `wattbus-giv-bridge decode FILE`, captured frames
(hex, one per line) to JSON lines.

A line is `[timestamp] [rx|tx] HEX`; `rx` (or no direction) decodes answer layouts, `tx` request
layouts. Each line is one frame by default; `--stream` feeds the lines of each direction through
the reassembler instead (for captures of raw TCP reads, where frames are split or joined).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import Any

from wattbus import givenergy as f
from wattbus.config import LoadedConfig

from . import regmap

DIRECTIONS = {"rx": True, "tx": False, "<": True, ">": False}
MAP_FOR_ADDRESS = {**{a: "battery" for a in range(0x32, 0x38)}, **{a: "meter" for a in range(1, 9)}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="capture file, or - for stdin")
    parser.add_argument("--stream", action="store_true", help="reassemble frames split or joined across lines")
    parser.add_argument("--values", action="store_true", help="add named values from the register maps")


def _frame_doc(frame: f.Frame, values: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(frame).__name__, **dataclasses.asdict(frame)}
    if isinstance(frame, f.ReadResponse):
        doc["values"] = list(frame.values)
        if values:
            name = MAP_FOR_ADDRESS.get(frame.address, "inverter")
            cache = regmap.RegisterCache()
            cache.update("hr" if frame.function == f.READ_HOLDING else "ir", frame.base, frame.values)
            decoded = regmap.load(name).decode(cache)
            doc["named"] = {k: v for k, v in decoded.items() if v is not None}
    return doc


def parse_line(line: str) -> tuple[str | None, bool, bytes]:
    """Split `[timestamp] [direction] hex`; raises ValueError naming what is wrong."""
    parts = line.split()
    timestamp: str | None = None
    from_dongle = True
    hex_parts: list[str] = []
    for part in parts:
        low = part.lower()
        if not hex_parts and low in DIRECTIONS:
            from_dongle = DIRECTIONS[low]
        elif not hex_parts and timestamp is None and any(c in part for c in ":T-") and not _is_hex(part):
            timestamp = part
        else:
            hex_parts.append(part)
    text = "".join(hex_parts).removeprefix("0x")
    if not text:
        raise ValueError("no hex data")
    try:
        return timestamp, from_dongle, bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not hex: {text[:40]!r}") from None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def decode_lines(lines: Iterator[str], stream: bool = False, values: bool = False) -> Iterator[dict[str, Any]]:
    streams = {True: f.FrameStream(from_dongle=True), False: f.FrameStream(from_dongle=False)}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            timestamp, from_dongle, raw = parse_line(line)
        except ValueError as exc:
            yield {"line": number, "error": "bad_line", "reason": str(exc)}
            continue
        base = {"line": number, "timestamp": timestamp, "direction": "rx" if from_dongle else "tx"}
        results: list[tuple[f.Frame | f.FrameError, bytes]]
        if stream:
            results = list(streams[from_dongle].feed(raw))
        else:
            try:
                results = [(f.decode(raw, from_dongle=from_dongle), raw)]
            except f.FrameError as exc:
                results = [(exc, raw)]
        for frame, data in results:
            if isinstance(frame, f.FrameError):
                yield {**base, "error": frame.reason, "reason": frame.detail, "hex": data.hex()}
            else:
                yield {**base, **_frame_doc(frame, values)}


def run(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    try:
        handle = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        print(f"wattbus-giv-bridge decode: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    good = bad = 0
    with handle:
        for doc in decode_lines(iter(handle), args.stream, args.values):
            if "error" in doc:
                bad += 1
            else:
                good += 1
            print(json.dumps(doc, ensure_ascii=False, default=str))
    print(f"decoded {good} frames, rejected {bad}", file=sys.stderr)
    return 0 if good or not bad else 1
