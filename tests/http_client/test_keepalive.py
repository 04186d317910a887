"""Keep-alive against raw servers that close connections the way embedded devices do: after an
idle pause, or right when the next request arrives (the race a client must retry once), and a
server that never answers (the total timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from wattbus.http_client import HttpClient, HttpError, HttpTimeout

from tests.support.bus_helpers import until

from .rawserver import RawServer, raw_server

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_server_closes_idle_connection() -> None:
    box: list[RawServer] = []

    async def answer_once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await box[0].read_request(reader)
        writer.write(OK)  # keep-alive by HTTP/1.1 default, then closed as an idle-timeout would
        await writer.drain()

    async with raw_server(answer_once_then_close) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=20) as client:
            assert (await client.get("/a")).text() == "ok" and client.idle_connections() == 1
            idle = next(iter(client._idle.values()))[0]
            await until(lambda: idle.reader.at_eof(), 20, "client saw the server's close")
            assert (await client.get("/b")).text() == "ok"
    assert server.connections == 2 and len(server.requests) == 2


async def test_reused_connection_closed_before_response_is_retried_once() -> None:
    box: list[RawServer] = []

    async def answer_first_drop_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await box[0].read_request(reader)
        writer.write(OK)
        await writer.drain()
        await box[0].read_request(reader)  # the next request on this connection: read, then hang up

    async with raw_server(answer_first_drop_second) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=20) as client:
            assert (await client.post("/write", body=b"m v=1")).text() == "ok"
            assert (await client.post("/write", body=b"m v=2")).text() == "ok"
    # Three requests reached the server: the second twice (dropped, then retried on a new connection).
    assert server.connections == 2 and len(server.requests) == 3


async def test_fresh_connection_closed_is_an_error_not_a_loop() -> None:
    box: list[RawServer] = []

    async def hang_up(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await box[0].read_request(reader)

    async with raw_server(hang_up) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=20) as client:
            with pytest.raises(HttpError, match="connection closed by the server without a response"):
                await client.get("/x")
    assert server.connections == 1


async def test_server_that_never_answers_times_out() -> None:
    box: list[RawServer] = []
    never = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await box[0].read_request(reader)
        await never.wait()

    async with raw_server(silent) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=0.2) as client:
            with pytest.raises(HttpTimeout, match=rf"^GET {server.url}/rpc/Shelly.GetStatus: no response within 0.2 s"):
                await client.get("/rpc/Shelly.GetStatus")
            assert client.idle_connections() == 0


def answering_every_request(box: list[RawServer]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                               Awaitable[None]]:
    """A handler answering 200 to every request on a connection (box[0]: the server, set once started)."""

    async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await box[0].read_request(reader)
            writer.write(OK)
            await writer.drain()

    return keep_answering


async def test_idle_connections_expire() -> None:
    box: list[RawServer] = []
    keep_answering = answering_every_request(box)

    async with raw_server(keep_answering) as server:
        box.append(server)
        async with HttpClient(server.url, timeout_s=20, idle_timeout_s=0.05) as client:
            await client.get("/1")
            await asyncio.sleep(0.1)  # longer than idle_timeout_s: the connection is not reused
            await client.get("/2")
        async with HttpClient(server.url, timeout_s=20) as client:
            await client.get("/3")
            await client.get("/4")
    assert server.connections == 3 and len(server.requests) == 4


async def test_expired_connections_to_other_hosts_are_closed() -> None:
    box: list[RawServer] = []
    keep_answering = answering_every_request(box)

    async with raw_server(keep_answering) as first, raw_server(keep_answering) as second:
        box.append(first)
        async with HttpClient(timeout_s=20, idle_timeout_s=0.05) as client:
            await client.get(f"{first.url}/a")
            assert client.idle_connections() == 1
            await asyncio.sleep(0.1)  # the first host's idle connection expires
            box[0] = second
            await client.get(f"{second.url}/b")
            assert client.idle_connections() == 1  # only the second host's, the first one was closed
