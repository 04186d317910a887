"""The benchmark's evcc-faithful baseline (bench/evcc_baseline.py) does what evcc documents."""

from __future__ import annotations

from wattbus_surplus_controller.model import ChargerView

from bench.evcc_baseline import EvccLoadpoint


def run(lp: EvccLoadpoint, surplus_w: list[float]) -> list[tuple[bool, float, int]]:
    """One meter reading per second; the car draws what it was told (no latency here)."""
    out: list[tuple[bool, float, int]] = []
    for t, surplus in enumerate(surplus_w):
        s = lp.setting
        ev = s.current_a * 230.0 * s.phases if s.enabled else 0.0
        lp.charger(float(t), ChargerView(power_w=ev, state="charging", enabled=s.enabled))
        s = lp.meter(float(t), ev - surplus)
        out.append((s.enabled, s.current_a, s.phases))
    return out


def test_starts_after_the_enable_delay_seen_on_a_30_s_tick_at_the_phases_that_fit() -> None:
    out = run(EvccLoadpoint(), [3_000.0] * 200)
    first = next(t for t, (on, _, _) in enumerate(out) if on)
    assert first == 60  # timer starts at 0, the ticks at 30 and 60 see it; 1 min elapsed at 60
    assert out[first][2] == 1  # 3 kW carries 1p (1380 W) but not 3p (4140 W)
    assert all(on == (t >= 60) for t, (on, _, _) in enumerate(out))


def test_stops_after_three_minutes_of_import_at_minimum_and_resets_while_exporting() -> None:
    lp = EvccLoadpoint()
    out = run(lp, [2_000.0] * 100 + [1_000.0] * 400)
    assert out[99][0] and out[99][2] == 1
    stop = next(t for t in range(100, 500) if not out[t][0])
    assert 280 <= stop <= 320  # 3 min after the first tick that saw the import
    lp2 = EvccLoadpoint()
    # importing at minimum alternates with exporting every 60 s: the disable timer never completes
    flicker = [2_000.0] * 100 + ([1_000.0] * 60 + [2_000.0] * 60) * 5
    assert all(on for on, _, _ in run(lp2, flicker)[100:])


def test_switches_to_3p_after_the_enable_delay_and_back_after_the_disable_delay() -> None:
    lp = EvccLoadpoint()
    out = run(lp, [2_000.0] * 100 + [8_000.0] * 200 + [3_000.0] * 400)
    up = next(t for t in range(100, 300) if out[t][2] == 3)
    assert 150 <= up <= 200
    down = next(t for t in range(300, 700) if out[t][2] == 1)
    assert 470 <= down <= 510
    assert all(on for on, _, _ in out[60:])
