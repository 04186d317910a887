"""`wattbus-sml-reader decode FILE --format sml|dsmr|iec`: a capture's readings as JSON lines."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from wattbus import topics
from wattbus.config import LoadedConfig

from .config import MeterConfig
from .mapping import Mapper
from .meter import FrameDecoder
from .transport import load_capture
from .values import FORMATS, DecodedFrame, FrameError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="capture: raw bytes, or hex text when it ends in .hex")
    parser.add_argument("--format", choices=FORMATS, default="sml")
    parser.add_argument("--crc", choices=("x25", "kermit"), default="x25", help="SML frame CRC variant")


def frame_document(frame: DecodedFrame, mapper: Mapper) -> dict[str, Any]:
    device_id = topics.slug(frame.manufacturer, frame.serial) if frame.serial else "meter-capture"
    stamp = frame.timestamp or datetime.now(UTC)
    mapped = mapper.reading(frame, device_id, stamp)
    return {
        "format": frame.format, "bytes": frame.size, "manufacturer": frame.manufacturer, "model": frame.model,
        "serial": frame.serial,
        "obis": {code: {"value": v.value, "unit": v.unit, "status": v.status} for code, v in frame.values.items()},
        "reading": msgspec.to_builtins(mapped.reading), "problems": mapped.problems,
    }


def handle(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    path = Path(args.file)
    try:
        data = load_capture(path)
    except OSError as exc:
        print(f"decode: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"decode: {path} is not valid hex: {exc}", file=sys.stderr)
        return 2
    decoder = FrameDecoder(MeterConfig(key="capture", format=args.format, port=f"file://{path}", crc=args.crc))
    mapper = Mapper()
    good = bad = 0
    encoder = msgspec.json.Encoder()
    for item in decoder.feed(data):
        if isinstance(item, FrameError):
            bad += 1
            print(f"{path}: {args.format} frame rejected ({item.kind}): {item}", file=sys.stderr)
            continue
        good += 1
        sys.stdout.write(encoder.encode(frame_document(item, mapper)).decode() + "\n")
    for item in decoder.feed(b""):
        if isinstance(item, FrameError):
            bad += 1
    print(f"{path}: {good} frames decoded, {bad} rejected", file=sys.stderr)
    return 0 if good else 1
