"""Seeds for the fuzzers: the real captures other areas recorded (tests/<area>/data), loaded the
way each service reads them, plus hypothesis strategies that damage them like a bad line would."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from wattbus.apsystems import parse_hex_or_raw
from wattbus_giv_bridge.cli import parse_line
from wattbus_sml_reader.transport import load_capture

from tests.support.servers import ROOT

TESTS = ROOT / "tests"


def fuzz_settings(examples: int = 120) -> settings:
    """Bounded and derandomized so `make test` stays fast and repeatable; reliability/run.py raises
    the count with WATTBUS_FUZZ_SCALE and explores with random seeds."""
    scale = float(os.environ.get("WATTBUS_FUZZ_SCALE", "1"))
    return settings(max_examples=max(10, int(examples * scale)), deadline=None, database=None, derandomize=scale <= 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def meter_captures(fmt: str) -> list[bytes]:
    return [load_capture(p) for p in sorted((TESTS / "sml_reader" / "data" / fmt).glob("*"))]


def ecu_answers() -> list[bytes]:
    return [parse_hex_or_raw(p.read_bytes()) for p in sorted((TESTS / "ecu_bridge" / "data").glob("*.hex"))]


def giv_frames(limit_per_file: int = 40) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted((TESTS / "giv_bridge" / "data").glob("*.log")):
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        out += [parse_line(line)[2] for line in lines[:limit_per_file]]
    return out


def device_json(prefix: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((TESTS / "goe_shelly_bridge" / "data").glob(f"{prefix}*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "response" in doc:
            docs.append(doc)
    return docs


@st.composite
def damaged(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real capture with a few line faults: flipped bytes, cuts, inserted noise, repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut_tail", "cut_head", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut_tail":
            del data[at:]
        elif op == "cut_head":
            del data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at: at + draw(st.integers(1, 16))]
        elif op == "repeat":
            data[at:at] = data[at: at + draw(st.integers(1, 64))]
    return bytes(data)


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    """Split data like a serial port or TCP socket hands it over: arbitrary read sizes."""
    out, pos, index = [], 0, 0
    while pos < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        out.append(data[pos: pos + size])
        pos += size
        index += 1
    return out


JSON_LEAF = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8)
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.text(max_size=6), inner, max_size=5), max_leaves=12)


@st.composite
def damaged_doc(draw: st.DrawFn, seeds: list[dict[str, Any]], key: str) -> Any:
    """A recorded JSON answer with some values replaced by anything JSON can carry (or keys removed)."""
    doc = json.loads(json.dumps(draw(st.sampled_from(seeds))[key]))
    for _ in range(draw(st.integers(1, 5))):
        target, path = doc, []
        while isinstance(target, (dict, list)) and target and draw(st.booleans()):
            keys = list(target.keys()) if isinstance(target, dict) else list(range(len(target)))
            step = draw(st.sampled_from(keys))
            path.append(step)
            parent, target = target, target[step]
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_ANY)
    return doc


def data_path(name: str) -> Path:
    return Path(__file__).parent / "data" / name
