"""A form's secret input lands only in a key the setup API masks (secret_keys.py): form.add_form
refuses any other place at import, and the http-api refuses a form announced over the bus that puts
one there (a bridge built without add_form). A secret input under an unusual field name that lands
in a secret key is saved and never shown back. Real broker (project ACL) and http-api."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bridge import form
from wattbus.secret_keys import is_secret
from wattbus_http_api import setup_guard

from tests.http_api.test_setup import broker  # noqa: F401  (the module's broker fixture)
from tests.http_api.test_setup_probe import start_api, wait_forms
from tests.support.bus_helpers import started_bus
from tests.support.servers import TEST_ADMIN, Mosquitto

PIN = "Pin-77c1-e0a9"  # nothing else in the stack contains these texts
LOGIN = "Login-3b5d-91f2"
RELAY = {"id": "{id}", "template": "shelly-relay-http", "host": "{host}"}


def fields(secret: str) -> list[m.FormField]:
    return [m.FormField(key="id", label="Id"), form.host_field(), form.secret_field(secret)]


@pytest.mark.parametrize("entry", [{"pin": "{pin}"}, {"url": "http://x/?key={pin}"}, {"vars.pin": "{pin}"},
                                   {"password": "x{pin}"}, {"extra": ["{pin}"]}])
def test_a_secret_input_outside_a_secret_key_is_refused_where_declared(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"the secret input 'pin' goes into .* would show back"):
        form.add_form("leak", "Leak", "devices", {**RELAY, **entry}, fields("pin"))


def test_the_guard_and_the_forms_share_one_rule() -> None:
    made = form.add_form("ok", "Ok", "devices", {**RELAY, "vars.api_key": "{pin}"}, fields("pin"))
    assert form.secret_problem(made) is None and setup_guard.is_secret is is_secret
    assert setup_guard.mask({"vars": {"api_key": "x"}, "pin": "y"}) == {"vars": {"api_key": "set"}, "pin": "y"}


async def test_an_announced_form_cannot_make_a_secret_readable(tmp_path: Path, start_service: Any,
                                                               broker: Mosquitto) -> None:  # noqa: F811
    path, api = start_api(tmp_path, start_service, broker)
    # Built by hand, as a bridge without wattbus.bridge.form would announce them.
    leaky = m.AddForm(name="leak:pin", title="Pin", list_key="devices", entry={**RELAY, "username": "{pin}"},
                      fields=fields("pin"))
    login = m.AddForm(name="leak:login", title="Login", list_key="devices", entry={**RELAY, "password": "{login}"},
                      fields=fields("login"))
    announced = m.BridgeForms(service="generic-bridge", instance="secret-keys", forms=[leaky, login],
                              timestamp=datetime.now(UTC))
    admin = await started_bus(broker, TEST_ADMIN, instance="secret-keys")
    topic = topics.service_forms("generic-bridge", "secret-keys")
    try:
        admin.publish(topic, codec.encode(announced), retain=True)
        await wait_forms(api, "generic-bridge", running=False)  # not running: saved unread only
        before = path.read_text()
        values = {"id": "pinned", "host": "192.0.2.40", "pin": PIN}
        status, doc, _ = api.call("POST", "/api/v1/setup/devices",
                                  {"protocol": "leak:pin", "values": values, "save_anyway": True})
        assert status == 400 and "'pin' goes into username" in doc["error"] and PIN not in json.dumps(doc), doc
        assert path.read_text() == before  # nothing saved

        values = {"id": "relay", "host": "192.0.2.41", "login": LOGIN}
        status, doc, _ = api.call("POST", "/api/v1/setup/devices",
                                  {"protocol": "leak:login", "values": values, "save_anyway": True})
        assert status == 201 and doc["entry"]["password"] == "set", doc
        saved = tomllib.loads(path.read_text())["generic-bridge"]["devices"]
        assert [d["password"] for d in saved] == [LOGIN]  # stored for the bridge
        shown = [api.call("GET", p)[1] for p in ("/api/v1/setup", "/api/v1/setup/sections/generic-bridge",
                                                 "/api/v1/setup/sections", "/api/v1/setup/devices")]
        assert "relay" in json.dumps(shown[1]) and all(LOGIN not in json.dumps(d) for d in shown)
    finally:
        admin.publish(topic, b"", retain=True)
        await admin.stop()
