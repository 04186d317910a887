"""wattbus.registers: the one register-point schema, its checks and the decode of raw words."""

from __future__ import annotations

import pytest
from wattbus import registers
from wattbus.registers import Point, RegisterError, decode


def test_numbers_scale_without_float_dust_and_range_reads_missing() -> None:
    assert decode(Point(address=0, scale=0.1), [2301]) == 230.1
    assert decode(Point(address=0), [2301]) == 2301 and isinstance(decode(Point(address=0), [7]), int)
    assert decode(Point(address=0, type="int16", scale=0.1, min=-40, max=100), [0xFF9C]) == -10.0
    assert decode(Point(address=0, type="int16", scale=0.1, min=-40, max=100), [0x7FFF]) is None
    assert decode(Point(address=0, type="float32"), [0x4366, 0x199A]) == 230.1  # shortest float32
    assert decode(Point(address=0, type="float32", scale=1000), [0x4366, 0x199A]) == 230100.0
    assert decode(Point(address=0, type="float32"), [0x7F80, 0x0000]) is None  # inf: no measurement
    assert decode(Point(address=0, type="uint32", word_order="little"), [0x0002, 0x0001]) == 0x10002
    assert decode(Point(address=0, type="float64"), [0x3FF0, 0, 0, 0]) == 1.0


def test_text_time_and_flags() -> None:
    assert decode(Point(address=0, type="text", words=3), [0x5341, 0x3132, 0x0000]) == "SA12"
    assert decode(Point(address=0, type="text", words=1), [0x0001]) is None  # unprintable
    assert decode(Point(address=0, type="hhmm"), [2359]) == "23:59"
    assert decode(Point(address=0, type="hhmm"), [2460]) is None
    assert decode(Point(address=0, type="bool"), [1]) is True and decode(Point(address=0, type="bool"), [2]) is None
    with pytest.raises(RegisterError, match="input register 5: 1 words for a 2-register float32"):
        decode(Point(address=5, table="input", type="float32"), [1])


@pytest.mark.parametrize(("raw", "error"), [
    ({"address": 65535, "type": "uint32"}, r"m.toml \[points\] p: 2 registers from 65535 run past register 65535"),
    ({"address": 1, "type": "text"}, r"\[points\] p: `words` .* goes with type = \"text\""),
    ({"address": 1, "words": 2}, r"\[points\] p: `words`"),
    ({"address": 1, "min": 5, "max": 1}, r"\[points\] p: min 5 is above max 1"),
    ({"address": 1, "type": "float16"}, r"\[points\] p: Invalid enum value 'float16' - at `\$.type`"),
    ({"address": 1, "bank": "hr"}, r"\[points\] p: Object contains unknown field `bank`"),
    ({"table": "input"}, r"\[points\] p: Object missing required field `address`"),
])
def test_a_bad_point_is_refused_naming_file_and_point(raw: dict[str, object], error: str) -> None:
    with pytest.raises(RegisterError, match=error):
        registers.points({"p": raw}, "m.toml")


def test_file_defaults_and_read_planning() -> None:
    found = registers.points({"a": {"address": 0}, "b": {"address": 2, "table": "holding"},
                              "c": {"address": 40}, "d": {"address": 200, "type": "uint16"}}, "m.toml",
                             registers.Defaults(table="input", type="float32"))
    assert (found["a"].table, found["a"].type, found["b"].table, found["d"].type) == \
        ("input", "float32", "holding", "uint16")
    blocks = registers.plan(list(found.values()), max_count=30, max_gap=8)
    assert blocks == [registers.Block("holding", 2, 2), registers.Block("input", 0, 2),
                      registers.Block("input", 40, 2), registers.Block("input", 200, 1)]
    image = {("input", 0): 0x4366, ("input", 1): 0x199A, ("holding", 2): 0, ("holding", 3): 0}
    assert registers.decode_all(found, image) == {"a": 230.1, "b": 0.0, "c": None, "d": None}
