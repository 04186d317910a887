"""A loadpoint's current range within its charger's published limits (config ∩ bridge): the clamp,
bad limits ignored, said once in the log and in the state's reason, and what the strategy then asks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from wattbus import messages as m
from wattbus.log import get_logger
from wattbus_surplus_controller.config import LoadpointConfig
from wattbus_surplus_controller.limits import ChargerLimits, clamp, published
from wattbus_surplus_controller.model import ChargerView, LoadpointChoices, Setting
from wattbus_surplus_controller.session import status
from wattbus_surplus_controller.strategy import Loadpoint

REF = "goe-shelly-bridge/goe-1"


def reading(**extra: m.ExtraValue) -> m.ChargerReading:
    return m.ChargerReading(device_id="goe-1", timestamp=datetime(2026, 12, 6, tzinfo=UTC), extra=extra)


@pytest.mark.parametrize(("configured", "bridge", "expected"), [
    ((6, 32), (6, 16), (6, 16)),          # the bridge narrows the top
    ((6, 32), (8, 16), (8, 16)),          # and the bottom
    ((10, 13), (6, 16), (10, 13)),        # the configured range inside: it stands
    ((6, 32), (None, 20), (6, 20)),       # one side published
    ((6, 32), (None, None), (6, 32)),     # nothing published
    ((6, 8), (10, 16), None),             # nothing in both: no current both allow
    ((6, 16), (16, 32), (16, 16)),        # one current only
])
def test_the_range_is_the_configured_one_within_the_bridges(configured: tuple[float, float],
                                                             bridge: tuple[float | None, float | None],
                                                             expected: tuple[float, float] | None) -> None:
    assert clamp(*configured, bridge) == expected


@pytest.mark.parametrize(("extra", "bounds", "problem"), [
    ({"limit_min_current_a": 6, "limit_max_current_a": 16}, (6.0, 16.0), None),
    ({"limit_max_current_a": 20.5}, (None, 20.5), None),
    ({}, (None, None), None),
    ({"limit_min_current_a": "6", "limit_max_current_a": 16}, (None, None), "limit_min_current_a = '6'"),
    ({"limit_max_current_a": True}, (None, None), "limit_max_current_a = True"),
    ({"limit_max_current_a": -1}, (None, None), "limit_max_current_a = -1"),
    ({"limit_max_current_a": float("nan")}, (None, None), "limit_max_current_a = nan"),
    ({"limit_min_current_a": 16, "limit_max_current_a": 6}, (None, None), "16 A is above extra.limit_max_current_a"),
])
def test_published_limits_are_read_and_bad_ones_named(extra: dict[str, m.ExtraValue],
                                                       bounds: tuple[float | None, float | None],
                                                       problem: str | None) -> None:
    found, why = published(extra)
    assert found == bounds
    assert (why is None) if problem is None else (why is not None and problem in why)


def test_said_once_in_the_log_and_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    limits = ChargerLimits(get_logger("surplus-test"))
    chosen = LoadpointChoices("now", 6, 32)
    caplog.set_level(logging.INFO, logger="surplus-test")
    assert limits.effective("garage", REF, chosen) == (chosen, "")  # nothing published yet
    limits.note(REF, reading(limit_min_current_a=6, limit_max_current_a=16))
    notes = [limits.effective("garage", REF, chosen) for _ in range(3)]
    effective, note = notes[0]
    assert all(n == notes[0] for n in notes) and (effective.min_current_a, effective.max_current_a) == (6, 16)
    assert note == "range 6-16 A (charger's limits; configured 6-32 A)" and chosen.max_current_a == 32
    said = [r for r in caplog.records if r.getMessage() == "loadpoint current range"]
    assert len(said) == 1 and said[0].fields["range"] == note  # type: ignore[attr-defined]
    # a bad limit is ignored (the last good one stands) and named once
    for _ in range(2):
        limits.note(REF, reading(limit_min_current_a=6, limit_max_current_a="lots"))
    assert [r.levelname for r in caplog.records if "not usable" in r.getMessage()] == ["WARNING"]
    assert limits.effective("garage", REF, chosen)[1] == note and not limits.conflicts


def test_no_overlap_keeps_the_loadpoint_off_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    limits = ChargerLimits(get_logger("surplus-test"))
    limits.note(REF, reading(limit_min_current_a=10, limit_max_current_a=16))
    effective, note = limits.effective("garage", REF, LoadpointChoices("now", 6, 8))
    assert effective.mode == "off" and "no current both allow" in note
    assert limits.conflicts["garage"] == note and "accepts 10-16 A, configured 6-8 A" in note
    assert [r.levelname for r in caplog.records if r.getMessage() == "loadpoint cannot charge"] == ["ERROR"]
    reason = f"mode off; {note}"
    assert status(Setting(False, 6, 3, reason), ChargerView(state="waiting"), None) == "mode_off"


@pytest.mark.parametrize(("mode", "configured_max", "bridge_max", "asked"), [
    ("now", 32, 16, 16),    # mode now asks the maximum: the charger's, not the configured one
    ("now", 13, 16, 13),    # the configured one when it is the lower
    ("minpv", 32, 16, 16),  # a big surplus in minpv: up to the charger's maximum
])
def test_the_strategy_asks_within_the_charger_limits(mode: str, configured_max: float, bridge_max: float,
                                                     asked: float) -> None:
    cfg = LoadpointConfig(id="garage", charger=REF, max_current_a=configured_max, phases=1)
    chosen = LoadpointChoices(mode, cfg.min_current_a, cfg.max_current_a)  # type: ignore[arg-type]
    limits = ChargerLimits(get_logger("surplus-test"))
    limits.note(REF, reading(limit_min_current_a=6, limit_max_current_a=bridge_max))
    lp = Loadpoint(cfg, chosen)
    lp.settings, _note = limits.effective("garage", REF, chosen)
    setting = None
    for second in range(200):  # the surplus is steady: minpv raises to its top after its hold time
        setting = lp.decide(float(second), 40_000.0, ChargerView(power_w=0.0, state="waiting"))
    assert setting is not None and setting.enabled and setting.current_a == asked
