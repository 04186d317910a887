"""A smart meter on an optical IR head: SML (or DSMR P1 / IEC 62056-21) into a pseudo-terminal.

`wattbus-sim sml --link /tmp/meter0 [--format sml|dsmr|iec] [--interval 1]` creates a pty, points
the link at it and writes telegrams at the line's real pacing (9600 8N1: about 1 ms per byte) in
uneven chunks, as an IR head's USB adapter delivers them. Faults on demand: `--garbage-every N`,
`--corrupt-every N` (a flipped byte, so the CRC fails), `--truncate-every N`. The house is a
simple day-shaped load and PV curve until the shared house model exists.

`--format iec --mode-c` is an IEC 62056-21 mode C meter instead: silent until the reader signs on
with `/?!` CR LF (or `/?<address>!` CR LF), it answers its identification `/ESY5...` at 300 baud,
takes the option select `ACK 0 Z 0` CR LF (Z: the baud rate character) and sends the STX...ETX BCC
readout. A pty has no baud rate, so the requested rate only sets the pacing and is logged.
`--garbage-ident-every N` answers every Nth sign-on with line noise instead of an identification.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from wattbus_sim import meter_sml_encode as enc
from wattbus_sim.lifecycle import interrupt_on_sigterm
from wattbus_sim.meter_text import dsmr_telegram, iec_readout

OBIS = {name: bytes.fromhex(code) for name, code in {
    "import": "0100010800ff", "import_t1": "0100010801ff", "import_t2": "0100010802ff",
    "export": "0100020800ff", "power": "0100100700ff", "p1": "0100240700ff", "p2": "0100380700ff",
    "p3": "01004c0700ff", "u1": "0100200700ff", "u2": "0100340700ff", "u3": "0100480700ff",
    "i1": "01001f0700ff", "i2": "0100330700ff", "i3": "0100470700ff", "freq": "01000e0700ff",
    "id": "0100600100ff", "maker": "8181c78203ff"}.items()}
WH, W, V, A, HZ = 30, 27, 35, 33, 44


@dataclass
class MeterState:
    serial: int = 60694611
    flag: bytes = b"DZG"
    import_wh: float = 1_234_567.8
    export_wh: float = 345_678.9
    power_w: float = 0.0
    phases_w: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    transaction: int = 1
    pin_entered: bool = True  # without the PIN the meter sends whole kWh and no power

    @property
    def server_id(self) -> bytes:
        return b"\x0a\x01" + self.flag + b"\x00" + self.serial.to_bytes(4, "big")

    def advance(self, seconds: float, power_w: float) -> None:
        self.power_w = power_w
        self.phases_w = [power_w * share for share in (0.5, 0.3, 0.2)]
        if power_w >= 0:
            self.import_wh += power_w * seconds / 3600
        else:
            self.export_wh += -power_w * seconds / 3600


def house_power_w(t: float) -> float:
    """Base load plus a midday PV bump that turns the grid flow into export."""
    day = (t % 86400) / 86400
    pv = max(0.0, math.sin(math.pi * (day - 0.25) / 0.5)) * 5000 if 0.25 < day < 0.75 else 0.0
    return 400 + 300 * math.sin(t / 37) - pv + random.uniform(-30, 30)


def sml_frame(state: MeterState) -> bytes:
    t = state.transaction
    state.transaction += 3
    sid = state.server_id
    open_body = enc.lst(enc.NONE, enc.NONE, enc.octets(t.to_bytes(4, "big")), enc.octets(sid), enc.NONE,
                        enc.unsigned(1, 1))
    status = enc.unsigned(0x1C0104 | (0x0800 if state.power_w < 0 else 0), 3)  # FNN word, bit 11 = -A
    if state.pin_entered:
        values = [
            enc.entry(OBIS["maker"], enc.octets(state.flag)),
            enc.entry(OBIS["id"], enc.octets(sid)),
            enc.entry(OBIS["import"], enc.unsigned(round(state.import_wh * 10), 8), WH, -1, status),
            enc.entry(OBIS["export"], enc.unsigned(round(state.export_wh * 10), 8), WH, -1),
            enc.entry(OBIS["import_t1"], enc.unsigned(round(state.import_wh * 10), 8), WH, -1),
            enc.entry(OBIS["import_t2"], enc.unsigned(0, 1), WH, -1),
            enc.entry(OBIS["power"], enc.signed(round(state.power_w * 100), 5), W, -2),  # a 5-byte integer
            *[enc.entry(OBIS[f"p{n}"], enc.signed(round(p * 100), 4), W, -2) for n, p in
              zip((1, 2, 3), state.phases_w, strict=True)],
            *[enc.entry(OBIS[f"u{n}"], enc.unsigned(2300 + n, 2), V, -1) for n in (1, 2, 3)],
            *[enc.entry(OBIS[f"i{n}"], enc.unsigned(abs(round(p / 2.3)), 2), A, -2) for n, p in
              zip((1, 2, 3), state.phases_w, strict=True)],
            enc.entry(OBIS["freq"], enc.unsigned(500, 2), HZ, -1),
        ]
    else:
        values = [enc.entry(OBIS["id"], enc.octets(sid)),
                  enc.entry(OBIS["import"], enc.unsigned(int(state.import_wh // 1000), 4), WH, 3, status),
                  enc.entry(OBIS["export"], enc.unsigned(int(state.export_wh // 1000), 4), WH, 3)]
    get_list = enc.lst(enc.NONE, enc.octets(sid), enc.NONE, enc.NONE, enc.lst(*values), enc.NONE, enc.NONE)
    close = enc.lst(enc.NONE)
    payload = (enc.message(t, 0x0101, open_body) + enc.message(t + 1, 0x0701, get_list)
               + enc.message(t + 2, 0x0201, close))
    return enc.transport(payload)


class PtyLine:
    """The meter's end of a pseudo-terminal; the reader opens `path` (or the link to it)."""

    def __init__(self, link: Path | None = None, baudrate: int = 9600, bits_per_byte: int = 10) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes pass unchanged
        os.set_blocking(self.master, False)  # with nobody reading, a real IR line just loses bytes
        self.path = os.ttyname(self.slave)
        self.link = link
        self.byte_time = bits_per_byte / baudrate
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            tmp.replace(link)

    def write_paced(self, data: bytes, rng: random.Random, pace: bool = True) -> None:
        offset = 0
        while offset < len(data):
            size = rng.randint(1, 64)
            piece = data[offset: offset + size]
            with contextlib.suppress(BlockingIOError):  # the reader is away; a meter does not wait
                os.write(self.master, piece)
            offset += size
            if pace:
                time.sleep(len(piece) * self.byte_time)

    def read_available(self, timeout: float) -> bytes:
        import select
        ready, _, _ = select.select([self.master], [], [], timeout)
        return os.read(self.master, 4096) if ready else b""

    def close(self) -> None:
        """Like pulling the IR head: the reader's next read fails."""
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                continue


def build(fmt: str, state: MeterState) -> bytes:
    if fmt == "sml":
        return sml_frame(state)
    if fmt == "dsmr":
        return dsmr_telegram(state.import_wh, state.export_wh, state.power_w, state.phases_w,
                             f"E00{state.serial}", time.time())
    return iec_readout(state.import_wh, state.export_wh, state.power_w, state.phases_w,
                       f"1ESY{state.serial}", mode_c=False)


MODE_C_BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
SIGN_ON = re.compile(rb"/\?([0-9A-Za-z ]{0,32})!\r\n")
OPTION_SELECT = re.compile(rb"\x06([0-9])([0-9])([0-9])\r\n")
RESPONSE_S = 0.2  # tr: a meter answers 200 ms to 1500 ms after a request


class ModeCMeter:
    """An IEC 62056-21 mode C meter answering on a pty: sign-on -> identification -> readout."""

    def __init__(self, line: PtyLine, state: MeterState, address: str = "", ident: bytes = b"/ESY5Q3DB1024 V3.04",
                 garbage_ident_every: int = 0, log: bool = True) -> None:
        self.line, self.state, self.address, self.ident = line, state, address, ident
        self.garbage_ident_every = garbage_ident_every
        self.log = log
        self.sign_ons = 0
        self.readouts = 0
        self.requested_bauds: list[int] = []
        self._identified = False
        self._buf = bytearray()
        self._rng = random.Random(state.serial)

    def _say(self, text: str) -> None:
        if self.log:
            print(f"mode C: {text}", flush=True)

    def _send(self, data: bytes, baud: int) -> None:
        self.line.byte_time = 10 / baud  # 7E1: start, 7 data, parity, stop
        time.sleep(RESPONSE_S)
        self.line.write_paced(data, self._rng)

    def serve(self, timeout: float) -> None:
        """Handle whatever request lines arrive within `timeout` seconds."""
        self._buf += bytes(b & 0x7F for b in self.line.read_available(timeout))  # 7E1 parity bit off
        while (end := self._buf.find(b"\r\n")) != -1:
            request = bytes(self._buf[: end + 2])
            del self._buf[: end + 2]
            self._handle(request)
        if len(self._buf) > 256:  # noise without a line end: a real meter discards it too
            self._buf.clear()

    def _handle(self, request: bytes) -> None:
        sign_on = SIGN_ON.search(request)
        if sign_on is not None:
            address = sign_on.group(1).decode().strip()
            if address and address != self.address:
                self._say(f"sign-on for address {address!r} ignored (we are {self.address!r})")
                self._identified = False
                return
            self.sign_ons += 1
            if self.garbage_ident_every and self.sign_ons % self.garbage_ident_every == 0:
                noise = bytes(self._rng.choice(b"#%&?@*+-=~0123456789abcdef") for _ in range(18))
                self._say("answering the sign-on with line noise")
                self._identified = False
                self._send(noise + b"\r\n", 300)
                return
            self._identified = True
            self._send(self.ident + b"\r\n", 300)
            return
        option = OPTION_SELECT.search(request)
        if option is None or not self._identified:
            self._say(f"request {request!r} ignored")
            self._identified = False
            return
        self._identified = False
        protocol, baud_char, mode = option.group(1, 2, 3)
        baud = MODE_C_BAUD.get(baud_char.decode())
        if baud is None or mode != b"0":
            self._say(f"option select {request!r} not supported (only data readout, Z 0..6)")
            return
        self._say(f"option select: protocol {protocol.decode()}, data readout at {baud} baud")
        self.requested_bauds.append(baud)
        self.state.advance(1.0, house_power_w(time.time()))
        readout = iec_readout(self.state.import_wh, self.state.export_wh, self.state.power_w, self.state.phases_w,
                              f"1ESY{self.state.serial}", mode_c=True)
        self.readouts += 1
        self._send(readout.partition(b"\r\n")[2], baud)  # the identification line went out already


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim sml", description=__doc__)
    parser.add_argument("--link", required=True, help="symlink the reader opens, e.g. .run/sml-meter0")
    parser.add_argument("--format", choices=("sml", "dsmr", "iec"), default="sml")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between telegrams")
    parser.add_argument("--serial", type=int, default=60694611)
    parser.add_argument("--garbage-every", type=int, default=0)
    parser.add_argument("--corrupt-every", type=int, default=0)
    parser.add_argument("--truncate-every", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true", help="meter without PIN: kWh totals only")
    parser.add_argument("--count", type=int, default=0, help="stop after this many telegrams (0: run)")
    parser.add_argument("--mode-c", action="store_true", help="IEC 62056-21 mode C: answer sign-ons")
    parser.add_argument("--address", default="", help="mode C device address (empty: answer /?! only)")
    parser.add_argument("--garbage-ident-every", type=int, default=0)
    args = parser.parse_args(argv)
    interrupt_on_sigterm()  # the loops below already clean up after Ctrl-C
    if args.mode_c:
        return _serve_mode_c(args)
    baud = {"sml": 9600, "dsmr": 115200, "iec": 9600}[args.format]
    line = PtyLine(Path(args.link), baud)
    state = MeterState(serial=args.serial, pin_entered=not args.no_pin)
    rng = random.Random(args.serial)
    print(f"meter simulator ({args.format}) on {line.path} -> {args.link}", flush=True)
    n, last = 0, time.monotonic()
    try:
        while args.count == 0 or n < args.count:
            n += 1
            now = time.monotonic()
            state.advance(now - last, house_power_w(time.time()))
            last = now
            data = build(args.format, state)
            if args.corrupt_every and n % args.corrupt_every == 0:
                pos = len(data) // 2
                data = data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1:]
            if args.truncate_every and n % args.truncate_every == 0:
                data = data[: len(data) // 3]
            if args.garbage_every and n % args.garbage_every == 0:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(5, 200))) + data
            line.write_paced(data, rng)
            time.sleep(max(0.0, args.interval - (time.monotonic() - now)))
    except KeyboardInterrupt:
        pass
    finally:
        line.close()
    return 0


def _serve_mode_c(args: argparse.Namespace) -> int:
    line = PtyLine(Path(args.link), 300)
    meter = ModeCMeter(line, MeterState(serial=args.serial), args.address,
                       garbage_ident_every=args.garbage_ident_every)
    print(f"meter simulator (iec mode C) on {line.path} -> {args.link}", flush=True)
    try:
        while args.count == 0 or meter.readouts < args.count:
            meter.serve(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        line.close()
    return 0
