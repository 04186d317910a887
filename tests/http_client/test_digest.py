"""Digest auth (RFC 7616) against a server that checks every response itself: SHA-256 (Shelly
Gen2/Gen3) and MD5, -sess variants, RFC 2069 without qop, several offered challenges, nonce reuse
with an increasing count, stale nonces, a wrong password (one retry, then the 401), and RFC 7616's
published examples."""

from __future__ import annotations

import pytest
from wattbus.http_auth import DigestAuth, parse_challenges
from wattbus.http_client import HttpClient, HttpError

from .digest_server import DigestServer
from .rawserver import raw_server

RFC_CHALLENGE = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
                 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')


@pytest.mark.parametrize(("alg", "response"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_examples(alg: str, response: str) -> None:
    auth = DigestAuth("Mufasa", "Circle of Life", cnonce=lambda: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert auth.accept([RFC_CHALLENGE.format(alg=alg)], sent=False)
    header = auth.header("GET", "/dir/index.html")
    assert header is not None and f'response="{response}"' in header and "nc=00000001" in header
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header and "qop=auth" in header


def test_challenge_parsing() -> None:
    parsed = parse_challenges('Basic realm="x", Digest realm="a, \\"b\\"", nonce=abc, algorithm=MD5, '
                              'Negotiate YIIB==, Digest realm="r2", nonce="n2", algorithm=SHA-256')
    assert [s for s, _ in parsed] == ["basic", "digest", "negotiate", "digest"]
    assert parsed[1][1] == {"realm": 'a, "b"', "nonce": "abc", "algorithm": "MD5"}
    assert parsed[3][1]["algorithm"] == "SHA-256"


@pytest.mark.parametrize(("algorithm", "qop"), [
    ("SHA-256", "auth"), ("MD5", "auth"), ("MD5-sess", "auth"), ("SHA-256-sess", "auth"), ("MD5", None),
    ("SHA-256", "auth,auth-int"),
])
async def test_digest_round_trip_and_nonce_reuse(algorithm: str, qop: str | None) -> None:
    digest = DigestServer(password="s3cret", algorithm=algorithm, qop=qop)
    async with raw_server(digest.handle) as server:
        digest.server = server
        async with HttpClient(server.url, timeout_s=20, auth=DigestAuth("admin", "s3cret")) as client:
            for _ in range(3):
                resp = await client.get("/rpc/Shelly.GetStatus", params={"id": "0"})
                assert (resp.status, resp.json()) == (200, {"ok": True})
    assert digest.unauthorized == 1  # only the first request was challenged; later ones reuse the nonce
    assert digest.accepted_nc == (["00000001", "00000002", "00000003"] if qop else ["-", "-", "-"])
    assert server.connections == 1


async def test_best_of_several_challenges_is_answered() -> None:
    digest = DigestServer(password="pw", algorithm="SHA-256", challenges=[
        'Basic realm="shellyplus1pm-a8032ab12345"',
        'Digest realm="shellyplus1pm-a8032ab12345", qop="auth", nonce="{nonce}", algorithm=MD5, '
        'Digest realm="shellyplus1pm-a8032ab12345", qop="auth", nonce="{nonce}", algorithm=SHA-256'])
    async with raw_server(digest.handle) as server:
        digest.server = server
        async with HttpClient(server.url, timeout_s=20, auth=DigestAuth("admin", "pw")) as client:
            assert (await client.post("/rpc/Switch.Set", json={"id": 0, "on": True})).status == 200
    assert b"algorithm=SHA-256" in server.requests[-1]


async def test_stale_nonce_is_answered_again() -> None:
    digest = DigestServer(password="pw", rotate_after=2)
    async with raw_server(digest.handle) as server:
        digest.server = server
        async with HttpClient(server.url, timeout_s=20, auth=DigestAuth("admin", "pw")) as client:
            for _ in range(5):
                assert (await client.get("/shelly")).status == 200
    assert digest.uses == 5 and digest.unauthorized == 3  # the first request, then once per new nonce


async def test_wrong_password_gives_the_401_after_one_retry() -> None:
    digest = DigestServer(password="right")
    async with raw_server(digest.handle) as server:
        digest.server = server
        async with HttpClient(server.url, timeout_s=20, auth=DigestAuth("admin", "wrong")) as client:
            assert (await client.get("/shelly")).status == 401
            assert len(server.requests) == 2
            assert (await client.get("/shelly")).status == 401  # cached nonce rejected again: no retry loop
            assert len(server.requests) == 3


@pytest.mark.parametrize(("challenge", "error"), [
    ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "digest algorithm SHA-512-256 is not supported"),
    ('Digest realm="r", nonce="n", qop="auth-int"', "digest qop 'auth-int' is not supported"),
    ('Digest realm="r", algorithm=MD5', "digest challenge without a nonce"),
    ('Digest realm="unterminated', "unterminated quoted string"),
    ('Digest realm=, nonce="n"', "parameter without a value"),
])
async def test_unanswerable_challenges_are_http_errors(challenge: str, error: str) -> None:
    digest = DigestServer(password="pw", challenges=[challenge])
    async with raw_server(digest.handle) as server:
        digest.server = server
        async with HttpClient(server.url, timeout_s=20, auth=DigestAuth("admin", "pw")) as client:
            with pytest.raises(HttpError, match=rf"^GET {server.url}/x: cannot answer the digest challenge: {error}"):
                await client.get("/x")
