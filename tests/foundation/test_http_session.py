"""wattbus.http_session against real servers on loopback: what the bridges rely on from it.

Errors name the method and the URL without credentials, a total timeout bounds the body too,
bodies are capped after decompression, keep-alive reuses one connection, Digest (aiohttp's
middleware) answers a SHA-256 challenge checked by the server, and redirects are not followed.
A raw asyncio server sends what aiohttp.web will not: broken and silent answers.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from wattbus import http_session
from wattbus.http_session import HttpError, HttpTimeout

from tests.support.servers import free_port

REALM, NONCE, USER, PASSWORD = "shellypro3em-08f9e0000002", "4f1a2b3c", "admin", "s3cret"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def digest_ok(request: web.Request) -> bool:
    """RFC 7616 qop=auth check of the Authorization header, the way a Shelly Gen2 does it."""
    value = request.headers.get("Authorization", "")
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', value.removeprefix("Digest ")))
    if not value.startswith("Digest ") or fields.get("username") != USER or fields.get("nonce") != NONCE:
        return False
    ha1, ha2 = _sha256(f"{USER}:{REALM}:{PASSWORD}"), _sha256(f"{request.method}:{fields['uri']}")
    want = _sha256(f"{ha1}:{NONCE}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    return fields.get("response") == want and fields["uri"] == request.path_qs


class Site:
    def __init__(self) -> None:
        self.peers: set[object] = set()
        self.challenges = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        path = request.path
        if path == "/json":
            return web.json_response({"ok": True, "query": dict(request.query)})
        if path == "/gzip":
            return web.Response(body=gzip.compress(b'{"big": "' + b"x" * 4096 + b'"}'),
                                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        if path == "/bomb":  # 40 kB on the wire, 40 MB inflated
            return web.Response(body=gzip.compress(b"\0" * 40_000_000), headers={"Content-Encoding": "gzip"})
        if path == "/chunked":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(64):
                await resp.write(b"y" * 1024)
            await resp.write_eof()
            return resp
        if path == "/slow-body":
            resp = web.StreamResponse(headers={"Content-Length": "10"})
            await resp.prepare(request)
            await resp.write(b"12345")
            await asyncio.sleep(5)
            return resp
        if path == "/redirect":
            raise web.HTTPFound("/json")
        if path == "/digest":
            if digest_ok(request):
                return web.json_response({"authorised": True})
            self.challenges += 1
            return web.Response(status=401, headers={"WWW-Authenticate": (
                f'Digest qop="auth", realm="{REALM}", nonce="{NONCE}", algorithm=SHA-256')})
        return web.Response(status=404)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@asynccontextmanager
async def raw_server(answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) \
        -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_json_with_params_and_keep_alive(site: Site) -> None:
    async with http_session.session(timeout_s=5, limit_per_host=1) as client:
        for _ in range(5):
            resp = await http_session.request(client, "GET", site.url + "/json", params={"filter": "sse,fwv"})
            assert resp.status == 200 and resp.json() == {"ok": True, "query": {"filter": "sse,fwv"}}
    assert len(site.peers) == 1  # five requests, one connection


async def test_gzip_is_decoded_and_a_bomb_is_capped(site: Site) -> None:
    async with http_session.session() as client:
        resp = await http_session.request(client, "GET", site.url + "/gzip")
        assert resp.json()["big"] == "x" * 4096
        with pytest.raises(HttpError, match=r"^GET http://127\.0\.0\.1:\d+/bomb: response body exceeds the "
                                            r"limit of 1048576 bytes$"):
            await http_session.request(client, "GET", site.url + "/bomb", max_body=1024 * 1024)


async def test_size_cap_on_chunked_and_sized_bodies(site: Site) -> None:
    async with http_session.session() as client:
        assert len((await http_session.request(client, "GET", site.url + "/chunked")).body) == 64 * 1024
        with pytest.raises(HttpError, match="exceeds the limit of 1000 bytes"):
            await http_session.request(client, "GET", site.url + "/chunked", max_body=1000)
        with pytest.raises(HttpError, match=r"response body of \d+ bytes exceeds the limit of 100 bytes"):
            await http_session.request(client, "GET", site.url + "/bomb", max_body=100)  # by Content-Length


async def test_timeout_bounds_the_body_too(site: Site) -> None:
    async with http_session.session(timeout_s=30) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(HttpTimeout, match=r"^GET http://127\.0\.0\.1:\d+/slow-body: no response within 0\.5 s$"):
            await http_session.request(client, "GET", site.url + "/slow-body", timeout_s=0.5)
        assert asyncio.get_running_loop().time() - started < 3


async def test_digest_sha256_answered_and_the_nonce_reused(site: Site) -> None:
    digest = aiohttp.DigestAuthMiddleware(USER, PASSWORD)
    async with http_session.session(middlewares=(digest,)) as client:
        for _ in range(3):
            resp = await http_session.request(client, "GET", site.url + "/digest")
            assert resp.status == 200 and resp.json() == {"authorised": True}
    assert site.challenges == 1  # later requests answer the known nonce up front
    wrong = aiohttp.DigestAuthMiddleware(USER, "guess")
    async with http_session.session() as client:
        resp = await http_session.request(client, "GET", site.url + "/digest", middlewares=(wrong,))
    assert resp.status == 401  # a wrong password is an answer, for the caller to word


async def test_redirects_are_not_followed(site: Site) -> None:
    async with http_session.session() as client:
        resp = await http_session.request(client, "GET", site.url + "/redirect")
    assert resp.status == 302 and resp.headers["Location"] == "/json"


async def test_errors_name_method_and_url_without_credentials(site: Site) -> None:
    port = free_port()
    async with http_session.session(timeout_s=5) as client:
        with pytest.raises(HttpError) as refused:
            await http_session.request(client, "POST", f"http://admin:hunter2@127.0.0.1:{port}/x?y=1", data=b"1")
        with pytest.raises(HttpError) as bad:
            await http_session.request(client, "GET", "ftp://admin:hunter2@nas.local/file")
        with pytest.raises(HttpError) as header:
            await http_session.request(client, "GET", site.url + "/json", headers={"X-A": "1\r\nX-B: 2"})
    assert str(refused.value) == (f"POST http://127.0.0.1:{port}/x?y=1: connection refused by "
                                  f"127.0.0.1:{port}")
    assert str(bad.value).startswith("GET ftp://nas.local/file: bad URL")
    assert str(header.value).startswith(f"GET {site.url}/json: bad request")
    assert all("hunter2" not in str(e.value) for e in (refused, bad))


async def test_broken_and_silent_answers_are_http_errors() -> None:
    async def garbage(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 ok fine\r\n\r\n")
        await writer.drain()

    async def hang_up(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        return

    async def truncated(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    cases = [(garbage, "malformed response"), (hang_up, "connection closed by the server"),
             (truncated, "broken response body"), (silent, "no response within 0.3 s")]
    async with http_session.session(timeout_s=0.3) as client:
        for answer, why in cases:
            async with raw_server(answer) as url:
                with pytest.raises(HttpError) as info:
                    await http_session.request(client, "GET", url + "/status")
            assert str(info.value).startswith(f"GET {url}/status: {why}"), (answer.__name__, str(info.value))
