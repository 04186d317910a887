"""The client against recorded-format responses (tests/http_client/data/responses.json) served by a
raw socket server: whole, and split byte by byte. Every broken answer is one HttpError naming the
method, the URL and what is wrong; the good ones decode to their status and body."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from wattbus.http_client import HttpClient, HttpError

from .rawserver import RawServer, raw_server

CASES: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "responses.json").read_text())
MAX_BODY = 4096


def test_every_case_is_well_formed() -> None:
    assert len(CASES) >= 30
    for name, case in CASES.items():
        assert isinstance(case["wire"], str), name
        assert ("error" in case) != ("status" in case), f"{name}: exactly one of status / error"


def _answer(server_box: list[RawServer], wire: bytes, bytewise: bool) -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server_box[0].read_request(reader)
        if bytewise:
            for i in range(len(wire)):
                writer.write(wire[i:i + 1])
                await writer.drain()
                await asyncio.sleep(0)
        else:
            writer.write(wire)
            await writer.drain()
        # Close after the answer: read-to-close bodies end here, keep-alive ones do not notice.
    return handler


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_recorded_response(name: str, bytewise: bool) -> None:
    case = CASES[name]
    wire = case["wire"].encode("latin-1")
    box: list[RawServer] = []
    async with raw_server(_answer(box, wire, bytewise)) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=20, max_body_bytes=MAX_BODY) as client:
            if "error" in case:
                with pytest.raises(HttpError) as caught:
                    await client.get("/status", params={"filter": "sse"})
                message = str(caught.value)
                assert message.startswith(f"GET {server.url}/status?filter=sse: "), message
                assert case["error"] in message, message
                assert client.idle_connections() == 0  # a broken connection is never reused
                return
            resp = await client.get("/status", params={"filter": "sse"})
            assert (resp.status, resp.body.decode("latin-1")) == (case["status"], case["body"])
            if "header" in case:
                assert resp.headers[case["header"][0]] == case["header"][1]
            assert client.idle_connections() == (1 if case["keep_alive"] else 0)
    assert server.requests[0].startswith(b"GET /status?filter=sse HTTP/1.1\r\nHost: 127.0.0.1:")
