"""Coverage-guided fuzzing with atheris (libFuzzer for Python) of the parsers that read untrusted
bytes: the SML/DSMR/IEC framers, the GivEnergy frame decoder and TCP reassembly, the APsystems ECU
decoder and the bus payload decoders. Seeded with the real captures (tests/<area>/data); each
target may only fail with the error type its service catches and counts -- any other exception is
a crash, which atheris reports with the input (saved under the artifact directory).

    python -m reliability.atheris_targets <target> <runs> <work dir>

`make reliability` runs each target for a bounded number of runs (reliability/scenarios/
test_atheris.py); `make test` does not (atheris is a fuzzing dependency, not a runtime one).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from wattbus import apsystems as wire
    from wattbus import codec
    from wattbus import givenergy as giv
    from wattbus import messages as m
    from wattbus_ecu_bridge import decode as ecu
    from wattbus_sml_reader.config import MeterConfig
    from wattbus_sml_reader.meter import FrameDecoder
    from wattbus_sml_reader.values import DecodedFrame, FrameError

from tests.reliability.corpus import ecu_answers, giv_frames, meter_captures
from tests.support.servers import ROOT


def _meter(fmt: str) -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        decoder = FrameDecoder(MeterConfig(key="fuzz", port="file:///dev/null", format=fmt))  # type: ignore[arg-type]
        # Fed in two pieces, as a serial port hands bytes over, so the framer's buffering is exercised.
        for piece in (data[: len(data) // 2], data[len(data) // 2:]):
            for item in decoder.feed(piece):
                if not isinstance(item, DecodedFrame | FrameError):
                    raise TypeError(f"{fmt} decoder yielded {type(item).__name__}")
    return one


def _giv(data: bytes) -> None:
    for from_dongle in (True, False):
        try:
            giv.decode(data, from_dongle=from_dongle)
        except giv.FrameError as exc:
            if not str(exc):
                raise AssertionError("a FrameError without a message") from exc
    stream = giv.FrameStream()
    for piece in (data[:7], data[7:]):
        for _item, _raw in stream.feed(piece):
            pass


def _ecu(data: bytes) -> None:
    try:
        ecu.decode_any(data)
    except wire.EcuFrameError as exc:
        if not str(exc):
            raise AssertionError("an EcuFrameError without a message") from exc


def _bus(data: bytes) -> None:
    for decode in (codec.decode_reading, codec.decode_command):
        try:
            decode(data)
        except codec.PayloadError as exc:
            if not str(exc):
                raise AssertionError("a PayloadError without a message") from exc
    for kind in (m.ServiceStatus, m.DeviceMeta, m.CommandResult, m.LoadpointState):
        try:
            codec.decode(data, kind)
        except codec.PayloadError:
            continue


def _bus_seeds() -> list[bytes]:
    """Recorded reading payloads (tests/influx_writer/data/readings) and one payload of every command."""
    recorded = [p.read_bytes() for p in sorted((ROOT / "tests" / "influx_writer" / "data" / "readings").glob("*.json"))]
    commands = [m.SetChargeCurrent(current_a=16, request_id="r1"), m.SetCharging(enabled=True), m.SetPhases(phases=1),
                m.SetRelay(on=True, channel=1), m.SetChargeSlot(start="0100", end="0400", target_soc_pct=80),
                m.SetLoadpointMode(mode="pv"), m.SetLoadpointLimits(min_current_a=6, max_current_a=16),
                m.SetPowerLimit(limit_pct=50.0), m.ReloadConfig(request_id="x")]
    return recorded + [codec.encode(c) for c in commands]


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "sml": (_meter("sml"), lambda: meter_captures("sml")),
    "dsmr": (_meter("dsmr"), lambda: meter_captures("dsmr")),
    "iec": (_meter("iec"), lambda: meter_captures("iec")),
    "giv": (_giv, giv_frames),
    "ecu": (_ecu, ecu_answers),
    "bus": (_bus, _bus_seeds),
}


def main(argv: list[str]) -> int:
    name, runs, work = argv[0], int(argv[1]), Path(argv[2])
    target, seeds = TARGETS[name]
    corpus = work / f"corpus-{name}"
    corpus.mkdir(parents=True, exist_ok=True)
    found = seeds()
    if not found:
        print(f"no seeds for {name}", file=sys.stderr)
        return 2
    for index, seed in enumerate(found):
        (corpus / f"seed-{index:04d}").write_bytes(seed)
    artifacts = work / f"crashes-{name}"
    artifacts.mkdir(exist_ok=True)
    atheris.Setup([sys.argv[0], str(corpus), f"-runs={runs}", "-seed=1", "-max_len=8192",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1"], target)
    atheris.Fuzz()  # exits the process: 0 after `runs` inputs, non-zero with a crash report
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
