"""wattbus.http_client figures: what importing it costs a fresh process next to aiohttp's client, and
the time per keep-alive request against an aiohttp.web server in another process on loopback.
Run: .venv/bin/python -m bench.bench_http_client"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from wattbus.http_client import HttpClient

from tests.support.servers import free_port, wait_port

RSS_PROBE = r"""
import sys
if sys.argv[1] == "without-openssl":  # as wattbus.lean does under WATTBUS_OPENSSL=auto/off
    for name in ("ssl", "_ssl", "_hashlib"):
        sys.modules[name] = None
import asyncio
if sys.argv[2]:
    __import__(sys.argv[2])
print([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
"""

SERVER = r"""
import sys
from aiohttp import web
async def small(_r): return web.json_response({"sse": "100001", "amp": 16, "nrg": [230, 231, 229, 0]})
async def write(r): await r.read(); return web.Response(status=204)
app = web.Application(client_max_size=4 * 1024 * 1024)
app.router.add_get("/api/status", small)
app.router.add_post("/write", write)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

REQUESTS = 1000
BODY = b"power_w,device=em-1 value=1234.5 1700000000000000000\n" * 2000  # ~108 kB, one writer batch


def rss_kb(openssl: str, module: str) -> int:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, openssl, module], capture_output=True, text=True,
                         check=True, timeout=120)
    return int(out.stdout)


def rss_rows() -> list[tuple[str, str]]:
    rows = []
    for openssl in ("with-openssl", "without-openssl"):
        base = statistics.median(rss_kb(openssl, "") for _ in range(3))
        for label, module in (("wattbus.http_client", "wattbus.http_client"), ("aiohttp", "aiohttp")):
            extra = statistics.median(rss_kb(openssl, module) for _ in range(3)) - base
            rows.append((f"import {label} over asyncio ({openssl})", f"{extra / 1024:+.1f} MB"))
    return rows


async def per_request_us(call: Callable[[], Awaitable[None]], n: int) -> float:
    await call()  # connect once: the figure is for keep-alive requests
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def speed_rows(base: str) -> list[tuple[str, str]]:
    rows = []
    async with HttpClient(base, timeout_s=30) as client:
        async def ours_get() -> None:
            (await client.get("/api/status", params={"filter": "sse,amp,nrg"})).json()

        async def ours_post() -> None:
            assert (await client.post("/write", body=BODY, params={"db": "x"})).status == 204
        rows.append(("GET small JSON, wattbus.http_client", f"{await per_request_us(ours_get, REQUESTS):.0f} µs"))
        rows.append(("POST 108 kB, wattbus.http_client", f"{await per_request_us(ours_post, REQUESTS // 5):.0f} µs"))
    async with aiohttp.ClientSession(base) as session:
        async def theirs_get() -> None:
            async with session.get("/api/status", params={"filter": "sse,amp,nrg"}) as resp:
                await resp.json()

        async def theirs_post() -> None:
            async with session.post("/write", data=BODY, params={"db": "x"}) as resp:
                assert resp.status == 204
        rows.append(("GET small JSON, aiohttp", f"{await per_request_us(theirs_get, REQUESTS):.0f} µs"))
        rows.append(("POST 108 kB, aiohttp", f"{await per_request_us(theirs_post, REQUESTS // 5):.0f} µs"))
    return rows


def main() -> str:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_port(port)
        rows = rss_rows() + asyncio.run(speed_rows(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(10)
    width = max(len(label) for label, _ in rows)
    lines = [f"{'http client':<{width}}  {'figure':>10}", "-" * (width + 12)]
    lines += [f"{label:<{width}}  {value:>10}" for label, value in rows]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
