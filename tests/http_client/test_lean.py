"""What the client exists for: the three HTTP-client services import no aiohttp, and the client
works in a process where OpenSSL cannot be loaded (no `ssl`, no `_hashlib`: hashlib's builtin
sha256/md5), answering https URLs there with a clear HttpError."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .digest_server import DigestServer
from .rawserver import raw_server

ROOT = Path(__file__).resolve().parents[2]

NO_OPENSSL_CLIENT = r"""
import sys
sys.modules["ssl"] = None       # `import ssl` raises ImportError, as without OpenSSL
sys.modules["_hashlib"] = None  # hashlib falls back to its builtin md5/sha256
import asyncio, hashlib, json
from wattbus.http_client import DigestAuth, HttpClient, HttpError

async def main(url):
    out = {"builtin_sha256": type(hashlib.sha256()).__module__}
    async with HttpClient(url, timeout_s=20, auth=DigestAuth("admin", "pw")) as client:
        for i in range(2):  # the challenge answered, then the nonce reused
            out[f"status_{i}"] = (await client.get("/rpc/Shelly.GetStatus")).status
    try:
        await HttpClient(timeout_s=5).get("https://127.0.0.1:1/")
    except HttpError as exc:
        out["https"] = str(exc)
    out["openssl_loaded"] = any(sys.modules.get(n) is not None for n in ("ssl", "_ssl", "_hashlib"))
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def test_services_do_not_import_aiohttp() -> None:
    code = ("import sys; import wattbus_goe_shelly_bridge.__main__, wattbus_influx_writer.__main__, "
            "wattbus_discovery.__main__; print('aiohttp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_digest_and_https_error_without_openssl(algorithm: str) -> None:
    digest = DigestServer(password="pw", algorithm=algorithm)
    async with raw_server(digest.handle) as server:
        digest.server = server
        env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", NO_OPENSSL_CLIENT, server.url, env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    assert out["builtin_sha256"] == "_sha256"  # hashlib's builtin, not OpenSSL's
    assert out["status_0"] == out["status_1"] == 200 and digest.uses == 2
    assert out["https"].startswith("GET https://127.0.0.1:1/: https needs Python's ssl module")
    assert out["openssl_loaded"] is False
