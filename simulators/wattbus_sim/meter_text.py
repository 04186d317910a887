"""DSMR P1 telegrams and IEC 62056-21 readouts for the meter simulator (ASCII, with CRC/BCC)."""

from __future__ import annotations

import sys
import time


def crc16_arc(data: bytes) -> int:
    """DSMR 4/5 telegram CRC: CRC-16 (poly 0x8005 reflected, init 0) over `/` up to and including `!`."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def bcc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value & 0x7F


def dsmr_telegram(import_wh: float, export_wh: float, power_w: float, phases_w: list[float],
                  equipment_id: str, now: float, gas_m3: float = 1234.567, crc: bool = True) -> bytes:
    stamp = time.strftime("%y%m%d%H%M%S", time.localtime(now)) + "W"
    imp, exp = max(power_w, 0.0) / 1000, max(-power_w, 0.0) / 1000
    lines = [
        "/XMX5LGBBFG1012345678", "", "1-3:0.2.8(50)", f"0-0:1.0.0({stamp})",
        f"0-0:96.1.1({equipment_id.encode().hex().upper()})",
        f"1-0:1.8.1({import_wh / 2000:010.3f}*kWh)", f"1-0:1.8.2({import_wh / 2000:010.3f}*kWh)",
        f"1-0:2.8.1({export_wh / 2000:010.3f}*kWh)", f"1-0:2.8.2({export_wh / 2000:010.3f}*kWh)",
        "0-0:96.14.0(0002)", f"1-0:1.7.0({imp:06.3f}*kW)", f"1-0:2.7.0({exp:06.3f}*kW)",
        "1-0:32.7.0(230.1*V)", "1-0:52.7.0(231.2*V)", "1-0:72.7.0(229.8*V)",
    ]
    for n, ref in zip((1, 2, 3), (21, 41, 61), strict=True):
        p = phases_w[n - 1] / 1000
        lines += [f"1-0:{ref}.7.0({max(p, 0):06.3f}*kW)", f"1-0:{ref + 1}.7.0({max(-p, 0):06.3f}*kW)",
                  f"1-0:{ref + 10}.7.0({abs(round(p * 1000 / 230)):03d}*A)"]
    lines += ["0-1:24.1.0(003)", "0-1:96.1.0(4730303339303031363532303530323136)",
              f"0-1:24.2.1({stamp})({gas_m3:09.3f}*m3)"]
    body = ("\r\n".join(lines) + "\r\n!").encode()
    return body + (f"{crc16_arc(body):04X}".encode() if crc else b"") + b"\r\n"


def iec_readout(import_wh: float, export_wh: float, power_w: float, phases_w: list[float], serial: str,
                mode_c: bool) -> bytes:
    lines = [f"1-0:0.0.0*255({serial[4:]})", f"1-0:1.8.0*255({import_wh / 1000:016.7f}*kWh)",
             f"1-0:2.8.0*255({export_wh / 1000:016.7f}*kWh)",
             *[f"1-0:{ref}.7.0*255({p:09.2f}*W)" for ref, p in zip((36, 56, 76), phases_w, strict=True)],
             f"1-0:16.7.0*255({power_w:09.2f}*W)", "1-0:96.5.5*255(80)", f"0-0:96.1.255*255({serial})"]
    data = ("\r\n".join(lines) + "\r\n!\r\n").encode()
    head = b"/ESY5Q3DB1024 V3.04\r\n"
    if not mode_c:
        return head + b"\r\n" + data
    block = data + b"\x03"
    return head + b"\x02" + block + bytes([bcc(block)])


def main(argv: list[str] | None = None) -> int:
    """`wattbus-sim meter_text [dsmr|iec]`: print one sample telegram (for trying the decoder)."""
    kind = (argv or ["dsmr"])[0]
    sample = (dsmr_telegram(1_234_567, 234_567, -812.5, [-300.0, -400.0, -112.5], "E0012345678", time.time())
              if kind == "dsmr" else iec_readout(1_234_567, 234_567, 812.5, [300.0, 400.0, 112.5],
                                                 "1ESY0012345678", mode_c=kind == "iec-c"))
    sys.stdout.buffer.write(sample)
    return 0
