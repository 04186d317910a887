"""Gen2+ RPC over a WebSocket on `/rpc`, as Home Assistant's aioshelly talks to Shelly devices.

The upgrade itself is open; with a password set every frame but `Shelly.GetDeviceInfo` must carry
an `auth` object (digest, SHA-256, realm = device id, user `admin`, HA2 over the fixed text
"dummy_method:dummy_uri" as Shelly defines for frames). A frame without a valid one is answered
with error 401 whose message is the JSON challenge (nonce, nc, realm, algorithm).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .shelly_state import ShellyState

Call = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]
SwitchStatus = Callable[[int], dict[str, Any]]
OPEN_METHODS = {"Shelly.GetDeviceInfo"}  # the one call that answers without authentication
SWITCHING = {"Switch.Set", "Switch.Toggle"}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FrameAuth:
    """Digest checks of RPC frames for one device."""

    HA2 = _sha256("dummy_method:dummy_uri")

    def __init__(self, realm: str, password: str) -> None:
        self.realm = realm
        self.ha1 = _sha256(f"admin:{realm}:{password}")
        self.nonces: set[int] = set()

    def challenge(self) -> dict[str, Any]:
        nonce = secrets.randbelow(2**31)
        self.nonces.add(nonce)
        return {"auth_type": "digest", "nonce": nonce, "nc": 1, "realm": self.realm, "algorithm": "SHA-256"}

    def valid(self, auth: Any) -> bool:
        if not isinstance(auth, dict) or auth.get("username") != "admin" or auth.get("realm") != self.realm:
            return False
        try:
            nonce = int(auth["nonce"])
        except (KeyError, TypeError, ValueError):
            return False
        if nonce not in self.nonces:
            return False
        expected = _sha256(f"{self.ha1}:{nonce}:{auth.get('nc')}:{auth.get('cnonce')}:auth:{self.HA2}")
        return secrets.compare_digest(str(auth.get("response", "")), expected)


def answer_frame(state: ShellyState, frame: Any, call: Call, auth: FrameAuth | None) -> dict[str, Any]:
    """One request frame to its response frame (JSON-RPC 2.0 as Shelly shapes it)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("method"), str):
        return {"id": None, "src": state.device_id, "error": {"code": -32600, "message": "invalid request frame"}}
    reply: dict[str, Any] = {"id": frame.get("id"), "src": state.device_id}
    if isinstance(frame.get("src"), str):
        reply["dst"] = frame["src"]
    method, params = frame["method"], frame.get("params") or {}
    if not isinstance(params, dict):
        reply["error"] = {"code": -103, "message": "params: expected an object"}
    elif auth is not None and method not in OPEN_METHODS and not auth.valid(frame.get("auth")):
        reply["error"] = {"code": 401, "message": json.dumps(auth.challenge())}
    else:
        code, doc = call(method, params)
        reply["result" if code == 200 else "error"] = doc
    return reply


async def rpc_websocket(request: web.Request, state: ShellyState, call: Call, password: str | None,
                        switch_status: SwitchStatus) -> web.WebSocketResponse:
    """Answer frames until the peer closes; after a switching call, notify the new switch status as
    a device does (NotifyStatus), so that a client's cached status follows without polling."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    auth = FrameAuth(state.device_id, password) if password is not None else None
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue  # Shelly speaks text frames only; binary and control frames carry no call
        try:
            frame = json.loads(msg.data)
        except json.JSONDecodeError:
            await ws.send_json({"id": None, "src": state.device_id, "error": {"code": -32700,
                                                                           "message": "parse error"}})
            continue
        reply = answer_frame(state, frame, call, auth)
        await ws.send_json(reply)
        if "result" in reply and frame.get("method") in SWITCHING:
            ch = int((frame.get("params") or {}).get("id", 0))
            await ws.send_json({"src": state.device_id, "dst": reply.get("dst"), "method": "NotifyStatus",
                                "params": {"ts": round(time.time(), 2), f"switch:{ch}": switch_status(ch)}})
    return ws
