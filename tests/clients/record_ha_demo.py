"""Record what the demo's devices put on the bus, for test_homeassistant.py to replay.

Run against a live `make run` (or `wattbus embedded --run-dir ...`), after its slowest poller
(the ECU, 30 s) has reported:

    .venv/bin/python tests/clients/record_ha_demo.py --port 1883 --seconds 70

It keeps every retained meta, availability and loadpoint state and the newest reading of each
device: the integrations service's whole input for Home Assistant discovery, nothing of its output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

OUT = Path(__file__).parent / "data" / "ha_demo_bus.jsonl"
WANTED = ("wattbus/v1/device/+/+/meta", "wattbus/v1/device/+/+/availability", "wattbus/v1/device/+/+/reading",
          "wattbus/v1/loadpoint/+/state")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--seconds", type=float, default=70.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    newest: dict[str, tuple[bool, object]] = {}

    def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            newest[msg.topic] = (msg.topic.endswith(("/meta", "/availability", "/state")), msg.payload.decode())

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # anonymous: the demo lets it read
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    for topic in WANTED:
        client.subscribe(topic, qos=1)
    client.loop_start()
    time.sleep(args.seconds)
    client.loop_stop()
    readings = {t.rsplit("/", 1)[0] for t in newest if t.endswith("/reading")}
    metas = {t.rsplit("/", 1)[0] for t in newest if t.endswith("/meta")}
    if missing := sorted(metas - readings):
        print(f"no reading yet from {missing}: record longer", file=sys.stderr)
        return 1
    with args.out.open("w") as out:  # metas first, as a bridge announces a device before its values
        for topic, (retain, payload) in sorted(newest.items(), key=lambda item: not item[0].endswith("/meta")):
            out.write(json.dumps({"topic": topic, "retain": retain, "payload": payload}, sort_keys=True) + "\n")
    print(f"{args.out}: {len(newest)} messages, {len(metas)} devices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
