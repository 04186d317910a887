"""HTTP body fuzzing against the real http-api server (a subprocess on loopback, token set).

The write operations come from the server's own /api/v1/openapi.json (REST, setup/config,
GivTCP, MeterHub), so a new endpoint is fuzzed as soon as it is documented. Every body --
random JSON, bytes that are not JSON or not UTF-8, and the documented object with one field
set to a value of the wrong type -- must give a 4xx JSON error, or be accepted; a field of the
wrong type must be named in the message. A 5xx is only allowed as 502/503/504 explaining a device
missing behind the bus (a relayed CommandResult timeout/failed, or a JSON error saying which
device), never a 500 or a bare server fault.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.reliability.corpus import fuzz_settings
from tests.support.servers import Mosquitto, free_port, wait_port

TOKEN = "fuzz-token"
PATH_VALUES = {"source": "goe-shelly-bridge", "device_id": "goe-000001", "loadpoint_id": "lp1",
               "section": "sml-reader", "target": "lp1"}
KEYS = st.text(max_size=12)  # control characters included: they once dropped the MeterHub connection
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12)
WRONG_TYPES = [[1, 2], {"x": {}}, "not-a-number", True, None, "\u0000" * 3]


@pytest.fixture
def http_api(broker: Mosquitto, start_service: Any, tmp_path: Path) -> int:
    port = free_port()
    config = tmp_path / "http.toml"
    config.write_text(f'[http-api]\nhost = "127.0.0.1"\nports = [{port}]\ntoken = "{TOKEN}"\n'
                      "trusted_networks = []\ncommand_timeout_s = 0.3\nstatus_interval_s = 1\n")
    start_service("wattbus_http_api", "--config", str(config), env=broker.env("http-api"))
    wait_port(port, 30)
    return port


def call(port: int, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, raw


def operations(port: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, concrete path, JSON schema of the body) for every documented write."""
    _, doc = call(port, "GET", "/api/v1/openapi.json", None)
    assert isinstance(doc, dict), doc
    schemas = doc.get("components", {}).get("schemas", {})
    found = []
    for template, ops in doc["paths"].items():
        path = template
        for name, value in PATH_VALUES.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"no fuzz value for a parameter of {template}"
        for method, op in ops.items():
            if method == "get":
                continue
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
            found.append((method.upper(), path, schema))
    return found


def check(method: str, path: str, body: bytes, status: int, doc: Any, fields: list[str] | None = None) -> None:
    where = f"{method} {path} body={body[:120]!r}: HTTP {status} {str(doc)[:300]}"
    if status >= 500:
        # 502/503/504 name a missing or silent device behind the bus (a relayed CommandResult, or
        # "no GivEnergy inverter on the bus yet"); 500 or a bare 5xx would be the server's own fault.
        # GivTCP-compatible endpoints nest the relayed result under "wattbus" next to their "result".
        result = doc.get("wattbus", doc) if isinstance(doc, dict) else None
        relayed = isinstance(result, dict) and result.get("status") in ("timeout", "failed") and "command" in result
        explained = isinstance(doc, dict) and bool(str(doc.get("error", "")).strip())
        assert status in (502, 503, 504) and (relayed or explained), f"server fault: {where}"
        return
    assert status < 300 or 400 <= status < 500, where
    if 400 <= status < 500:
        assert isinstance(doc, dict) and str(doc.get("error", "")).strip(), f"4xx without a JSON error: {where}"
        if fields and status == 400:
            text = json.dumps(doc)
            assert any(f in text for f in fields), f"the message names none of {fields}: {where}"


def test_http_bodies_never_crash_the_api(http_api: int) -> None:
    ops = operations(http_api)
    assert len(ops) >= 10, ops
    for method, path, _ in ops:  # the door first: without the token nothing is fuzzed
        req = urllib.request.Request(f"http://127.0.0.1:{http_api}{path}", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(req, timeout=30)
        assert denied.value.code == 401, (method, path)
    seen: dict[int, int] = {}

    @fuzz_settings(60)
    @given(op=st.sampled_from(ops), body=st.one_of(JSON.map(lambda v: json.dumps(v).encode()),
                                                   st.binary(max_size=64), st.just(b"\xff\xfe{"),
                                                   st.text(max_size=40).map(str.encode)))
    def random_bodies(op: tuple[str, str, dict[str, Any]], body: bytes) -> None:
        method, path, _ = op
        status, doc = call(http_api, method, path, body)
        seen[status] = seen.get(status, 0) + 1
        check(method, path, body, status, doc)

    typed = [(m, p, s) for m, p, s in ops if s.get("properties")]
    assert typed, "no documented body with properties"

    @fuzz_settings(60)
    @given(op=st.sampled_from(typed), data=st.data())
    def wrong_field_types(op: tuple[str, str, dict[str, Any]], data: st.DataObject) -> None:
        method, path, schema = op
        props: dict[str, Any] = schema["properties"]
        field = data.draw(st.sampled_from(sorted(props)))
        declared = props[field].get("type")
        wrong = [v for v in WRONG_TYPES if not _fits(v, declared)]
        assume(bool(wrong))  # an untyped field has no wrong type
        value = data.draw(st.sampled_from(wrong))
        # The documented example with one field broken, so the error is about that field; without
        # an example, other required fields are missing too and the message may name one of them.
        example = schema.get("example")
        base = dict(example) if isinstance(example, dict) else {}
        body = json.dumps({**base, field: value}).encode()
        status, doc = call(http_api, method, path, body)
        seen[status] = seen.get(status, 0) + 1
        named = [field] if base else sorted(props)
        check(method, path, body, status, doc, named)

    random_bodies()
    wrong_field_types()
    assert any(400 <= s < 500 for s in seen), seen


def _fits(value: Any, declared: Any) -> bool:
    """Whether a JSON value is of the declared JSON-schema type (then it is not a wrong type)."""
    types = declared if isinstance(declared, list) else [declared]
    checks = {"string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool), "array": lambda v: isinstance(v, list),
              "object": lambda v: isinstance(v, dict), "null": lambda v: v is None}
    return any(checks[t](value) for t in types if t in checks) or declared is None


def test_givtcp_range_error_names_the_givtcp_field(http_api: int) -> None:
    """Found by the body fuzzer: the error named the contract's field ($.power_w), not chargeRate."""
    body = json.dumps({"chargeRate": -1e308}).encode()
    status, doc = call(http_api, "POST", "/setChargeRate", body)
    assert status == 400, (status, doc)
    assert "chargeRate" in json.dumps(doc), doc


def test_meterhub_push_with_a_control_character_key(http_api: int) -> None:
    """Found by the body fuzzer: the key was echoed into a response header, which aiohttp refused,
    dropping the connection without an answer."""
    status, doc = call(http_api, "POST", "/", json.dumps({"\u001f": None}).encode())
    assert 400 <= status < 500 and isinstance(doc, dict) and doc.get("error"), (status, doc)
