"""The bridges' HTTP client (aiohttp through wattbus.http_session): what importing it costs a fresh
process, and the time per keep-alive request against an aiohttp.web server in another process on
loopback, next to aiohttp used bare (the wrapper's own cost: the error wording and the capped read).
It replaced wattbus.http_client, the hand-written HTTP/1.1 client, in issue #24.
Run: .venv/bin/python -m bench.bench_http_session"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from wattbus import http_session

from tests.support.servers import free_port, wait_port

RSS_PROBE = r"""
import sys
import asyncio
if sys.argv[1]:
    __import__(sys.argv[1])
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


def rss_kb(module: str) -> int:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, module], capture_output=True, text=True,
                         check=True, timeout=120)
    return int(out.stdout)


def rss_row() -> tuple[str, str]:
    base = statistics.median(rss_kb("") for _ in range(3))
    extra = statistics.median(rss_kb("wattbus.http_session") for _ in range(3)) - base
    return "import wattbus.http_session (aiohttp) over asyncio", f"{extra / 1024:+.1f} MB"


async def per_request_us(call: Callable[[], Awaitable[None]], n: int) -> float:
    await call()  # connect once: the figure is for keep-alive requests
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def speed_rows(base: str) -> list[tuple[str, str]]:
    rows = []
    params = {"filter": "sse,amp,nrg"}
    async with http_session.session(timeout_s=30) as session:
        async def ours_get() -> None:
            (await http_session.request(session, "GET", base + "/api/status", params=params)).json()

        async def ours_post() -> None:
            resp = await http_session.request(session, "POST", base + "/write", data=BODY, params={"db": "x"})
            assert resp.status == 204

        async def bare_get() -> None:
            async with session.get(base + "/api/status", params=params) as resp:
                await resp.json()

        rows.append(("GET small JSON, wattbus.http_session", f"{await per_request_us(ours_get, REQUESTS):.0f} µs"))
        rows.append(("GET small JSON, aiohttp bare", f"{await per_request_us(bare_get, REQUESTS):.0f} µs"))
        rows.append(("POST 108 kB, wattbus.http_session", f"{await per_request_us(ours_post, REQUESTS // 5):.0f} µs"))
    return rows


def main() -> str:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_port(port)
        rows = [rss_row(), *asyncio.run(speed_rows(f"http://127.0.0.1:{port}"))]
    finally:
        server.terminate()
        server.wait(10)
    lines = ["| what | figure |", "|---|---:|", *(f"| {label} | {value} |" for label, value in rows)]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
