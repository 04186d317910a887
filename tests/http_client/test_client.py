"""The client against a real aiohttp.web server: methods and bodies, keep-alive reuse and the idle
cap, chunked and compressed answers, bodies that must be absent, Basic auth, refusals, https."""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from wattbus.http_client import BasicAuth, HttpClient, HttpError, HttpTimeout

from tests.support.servers import free_port, require

from .conftest import ServeApp


def echo_app(peers: list[object]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.path, "query": dict(request.query),
                                  "body": body.decode(), "type": request.content_type,
                                  "auth": request.headers.get("Authorization"),
                                  "x": request.headers.get("X-Test"), "host": request.headers.getall("Host")[0]
                                  if len(request.headers.getall("Host")) == 1 else "several Host fields"})

    async def chunked(_request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(_request)
        for i in range(50):
            await resp.write(f"{i:04d},".encode())
        await resp.write_eof()
        return resp

    async def compressed(_request: web.Request) -> web.Response:
        raw = b'{"power_w": 1234.5}' * 100
        return web.Response(body=gzip.compress(raw), headers={"Content-Encoding": "gzip"},
                            content_type="application/json")

    async def no_content(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def not_modified(_request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"1"'})

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000)

    async def slow(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        await asyncio.sleep(0.3)
        return web.Response(text="late")

    async def latin(_request: web.Request) -> web.Response:
        return web.Response(body="Zähler".encode("latin-1"), content_type="text/plain", charset="iso-8859-1")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/204", no_content)
    app.router.add_get("/304", not_modified)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/latin", latin)
    return app


async def test_methods_bodies_and_params(serve: ServeApp) -> None:
    url = await serve(echo_app([]))
    async with HttpClient(url, timeout_s=20, headers={"X-Test": "default"}) as client:
        resp = await client.get("/echo", params={"filter": "sse,amp", "x": "a b"})
        doc = resp.json()
        assert resp.status == 200 and doc["query"] == {"filter": "sse,amp", "x": "a b"} and doc["x"] == "default"
        doc = (await client.post("/echo", json={"amp": 16}, headers={"X-Test": "override"})).json()
        assert (doc["body"], doc["type"], doc["x"]) == ('{"amp":16}', "application/json", "override")
        doc = (await client.post("/echo", form={"q": 'CREATE DATABASE "a b"'})).json()
        assert doc["type"] == "application/x-www-form-urlencoded" and doc["body"] == "q=CREATE+DATABASE+%22a+b%22"
        doc = (await client.request("PUT", "/echo?x=1", params={"y": "2"}, body="line 1\n")).json()
        assert (doc["method"], doc["query"], doc["body"]) == ("PUT", {"x": "1", "y": "2"}, "line 1\n")
        doc = (await client.request("DELETE", f"{url}/echo")).json()
        assert doc["method"] == "DELETE"
        resp = await client.request("HEAD", "/echo")
        assert resp.status == 200 and resp.body == b"" and int(resp.headers["Content-Length"]) > 0
        assert (await client.get("/latin")).text() == "Zähler"
        doc = (await client.get("/echo", headers={"Host": "shellyplus1pm-a8032ab12345.local"})).json()
        assert doc["host"] == "shellyplus1pm-a8032ab12345.local"
        assert (await client.get("/echo")).json()["host"] == url.removeprefix("http://")


async def test_keep_alive_reuses_one_connection_and_caps_idle(serve: ServeApp) -> None:
    peers: list[object] = []
    url = await serve(echo_app(peers))
    async with HttpClient(url, timeout_s=20, max_idle_per_host=2) as client:
        for _ in range(5):
            assert (await client.get("/echo")).status == 200
        assert len(set(peers)) == 1 and client.idle_connections() == 1
        peers.clear()
        results = await asyncio.gather(*(client.get("/slow") for _ in range(5)))
        assert [r.text() for r in results] == ["late"] * 5
        assert len(set(peers)) == 5  # concurrent requests each get a connection (the idle one reused)
        assert client.idle_connections() == 2  # ... but only max_idle_per_host stay open afterwards
    assert client.idle_connections() == 0


async def test_bodies_chunked_gzip_and_absent(serve: ServeApp) -> None:
    url = await serve(echo_app([]))
    async with HttpClient(url, timeout_s=20) as client:
        assert (await client.get("/chunked")).text() == "".join(f"{i:04d}," for i in range(50))
        resp = await client.get("/gzip")
        assert resp.body == b'{"power_w": 1234.5}' * 100 and resp.headers["Content-Encoding"] == "gzip"
        for path, status in (("/204", 204), ("/304", 304)):
            resp = await client.get(path)
            assert (resp.status, resp.body) == (status, b"")
        assert (await client.get("/echo")).status == 200  # the connection is still in step


async def test_size_cap(serve: ServeApp) -> None:
    url = await serve(echo_app([]))
    async with HttpClient(url, timeout_s=20, max_body_bytes=50_000) as client:
        with pytest.raises(HttpError, match=r"GET .*/big: response body of 100000 bytes exceeds the limit of 50000"):
            await client.get("/big")
        assert (await client.get("/echo")).status == 200
    async with HttpClient(url, timeout_s=20, max_body_bytes=1000) as client:  # gzip of 2 kB: 1 kB compressed
        with pytest.raises(HttpError, match=r"/gzip: gzip response body decompresses to more than the limit of 1000"):
            await client.get("/gzip")


async def test_basic_auth(serve: ServeApp) -> None:
    url = await serve(echo_app([]))
    async with HttpClient(url, timeout_s=20, auth=BasicAuth("admin", "pä:ss")) as client:
        doc = (await client.get("/echo")).json()
        assert base64.b64decode(doc["auth"].removeprefix("Basic ")).decode() == "admin:pä:ss"
        doc = (await client.get("/echo", auth=None)).json()
        assert doc["auth"] is None


async def test_refused_timeout_and_bad_requests(serve: ServeApp) -> None:
    url = await serve(echo_app([]))
    dead = f"http://127.0.0.1:{free_port()}"
    async with HttpClient(timeout_s=20) as client:
        with pytest.raises(HttpError, match=rf"^POST {dead}/write: connection refused by 127.0.0.1:"):
            await client.post(f"{dead}/write", body=b"x")
        with pytest.raises(HttpTimeout, match=rf"^GET {url}/slow: no response within 0.05 s$") as caught:
            await client.get(f"{url}/slow", timeout_s=0.05)
        assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, OSError)
        with pytest.raises(HttpError, match=r"bad request: header 'X-Bad' is not a valid field"):
            await client.get(f"{url}/echo", headers={"X-Bad": "a\r\nInjected: 1"})
        with pytest.raises(HttpError, match=r"^GET ftp://host/x: bad request: unsupported URL scheme 'ftp'"):
            await client.get("ftp://host/x")
        with pytest.raises(HttpError, match=r"bad request: .*[Pp]ort"):
            await client.get("http://127.0.0.1:99999/")
        with pytest.raises(HttpError, match=r"^GET http://127.0.0.1:1/x: "):
            await client.get("http://user:secret@127.0.0.1:1/x")  # credentials never appear in messages


def _self_signed(tmp: Path) -> ssl.SSLContext:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([require("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True, timeout=120)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_https(serve: ServeApp, tmp_path: Path) -> None:
    url = await serve(echo_app([]), tls=_self_signed(tmp_path))
    assert url.startswith("https://")
    async with HttpClient(url, timeout_s=20, verify_tls=False) as client:
        assert (await client.get("/echo")).json()["path"] == "/echo"
        assert (await client.get("/chunked")).status == 200 and client.idle_connections() == 1
    async with HttpClient(url, timeout_s=20) as client:
        with pytest.raises(HttpError, match=r"cannot connect to 127.0.0.1:\d+: .*CERTIFICATE_VERIFY_FAILED"):
            await client.get("/echo")


async def test_absurdly_nested_json_is_a_value_error(serve: ServeApp) -> None:
    async def nested(_request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000 + b"]" * 200_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/nested", nested)
    url = await serve(app)
    async with HttpClient(url, timeout_s=20) as client:
        resp = await client.get("/nested")
        with pytest.raises(ValueError, match=r"^GET .*/nested: answer is not JSON \(RecursionError\)"):
            resp.json()


async def test_bad_methods_and_urls_are_http_errors() -> None:
    async with HttpClient(timeout_s=20) as client:
        for method, url, error in (("GET /x HTTP/1.1\r\nX:", "http://127.0.0.1:1/", "method .* is not a token"),
                                   ("GET", "http://[::1/x", "bad request"),
                                   ("GET", "http://:80/x", "URL without a host")):
            with pytest.raises(HttpError, match=error):
                await client.request(method, url)
        with pytest.raises(HttpError, match=r"^GET http://127.0.0.1:1/x\?a=1: "):
            await client.get("http://admin:secret@127.0.0.1:1/x", params={"a": "1"})
