"""Damaged responses straight into the response reader (a real asyncio.StreamReader fed the bytes,
then EOF): whatever a broken device sends, the reader returns a response or raises HttpError (or
the internal signal for a connection closed before any byte) -- never another exception, never
more body than the cap."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wattbus.http_wire import HttpError, HttpResponse, ResponseReader, StaleConnection

SEEDS = [case["wire"].encode("latin-1")
         for case in json.loads((Path(__file__).parent / "data" / "responses.json").read_text()).values()]
MAX_BODY = 2048


def outcome(raw: bytes, method: str = "GET") -> HttpResponse | Exception:
    async def read() -> HttpResponse:
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(raw)
        reader.feed_eof()
        resp, _keep = await ResponseReader(reader, f"{method} http://127.0.0.1/x", MAX_BODY).read(method, "u")
        return resp

    try:
        return asyncio.run(read())
    except (HttpError, StaleConnection) as exc:
        return exc


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "flip" and where < len(raw):
            raw[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[where:]
        elif action == "insert":
            raw[where:where] = draw(st.sampled_from([b"\r\n", b"\n", b":", b";", b" ", b"0\r\n\r\n", b"\x00", b"ff"]))
        elif where < len(raw):
            del raw[where:where + draw(st.integers(1, 8))]
    return bytes(raw)


def test_seeds_cover_good_and_broken_answers() -> None:
    results = [outcome(raw) for raw in SEEDS]
    assert sum(isinstance(r, HttpResponse) for r in results) >= 10
    assert sum(isinstance(r, HttpError) for r in results) >= 10


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(), st.sampled_from(["GET", "HEAD", "POST"]))
def test_damaged_answers(raw: bytes, method: str) -> None:
    result = outcome(raw, method)
    if isinstance(result, HttpResponse):
        assert len(result.body) <= MAX_BODY and 100 <= result.status <= 999
    else:
        assert isinstance(result, StaleConnection) or str(result).startswith(f"{method} http://127.0.0.1/x: ")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(raw: bytes) -> None:
    result = outcome(raw)
    assert isinstance(result, HttpResponse | HttpError | StaleConnection)
