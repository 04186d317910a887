"""The [sml-reader] section: one entry per meter."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta
from wattbus.config import ConfigStruct, ServiceCommon

from .values import Format


class MeterConfig(ConfigStruct, kw_only=True):
    key: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")]  # stable id part when the meter sends no serial
    format: Format = "sml"
    # /dev/ttyUSB0, socket://host:port (ser2net, WiFi IR heads), rfc2217://host:port, or
    # file:///path/capture.bin (replayed at the line's pacing; .hex files hold hex text)
    port: str
    baudrate: Annotated[int, Meta(ge=300, le=921600)] | None = None  # default per format: 9600/115200/300
    bytesize: Literal[7, 8] | None = None  # default 8 (SML, DSMR 4/5), 7 for IEC
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] = 1
    crc: Literal["x25", "kermit"] = "x25"  # SML frame CRC; a few meters use the Kermit variant
    iec_mode: Literal["c", "d"] = "d"  # IEC 62056-21: d = meter pushes, c = we request a readout
    iec_request_interval_s: Annotated[float, Meta(ge=1)] = 5.0
    iec_baud_switch: bool = True  # mode C: switch to the baud rate the meter offers after sign-on
    # mode C device address for meters sharing one bus (sign-on `/?<address>!`); empty: `/?!`
    iec_address: Annotated[str, Meta(pattern=r"^[0-9A-Za-z ]{0,32}$")] = ""
    max_power_w: Annotated[float, Meta(gt=0)] = 60000.0  # totals that grow faster are rejected
    energy_slack_wh: Annotated[float, Meta(ge=0)] = 1000.0  # resolution of PIN-less totals (1 kWh)
    offline_after_s: Annotated[float, Meta(gt=0)] = 15.0
    replay_loop: bool = True  # file:// inputs start again at the end
    manufacturer: str | None = None  # used when the meter does not send one
    serial: str | None = None  # used when the meter does not send one (privacy mode, DSMR 2.2)

    def serial_settings(self) -> tuple[int, int, str, int]:
        baud = self.baudrate or {"sml": 9600, "dsmr": 115200, "iec": 300}[self.format]
        size = self.bytesize or (7 if self.format == "iec" else 8)
        parity = self.parity or ("E" if self.format == "iec" else "N")
        return baud, size, parity, self.stopbits


class Config(ServiceCommon, kw_only=True):
    meters: list[MeterConfig] = []
