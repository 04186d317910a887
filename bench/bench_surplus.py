"""surplus-controller vs an evcc-faithful baseline vs the perfect-foresight bound, on measured sun.

Every measured day of bench/surplus_sun.py (Payerne June 2016, BSRN 1-minute; three US days),
each in a house with and without a 10 kWh battery (bench/surplus_house.py: base load, fridge,
kettles, a charger answering 2-5 s late). The wattbus row is the production decision code — the
service's `Site` and `Loadpoint`, fed the readings the service would get, in the order it would
get them (meter every 2 s, charger and battery every 5 s), as `Controller.cycle` does for one
loadpoint — driven in simulated time; the baseline is bench/evcc_baseline.py. Both see the same
house, sun, kettles and charger latencies (same seeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wattbus_surplus_controller.config import Config  # noqa: E402
from wattbus_surplus_controller.model import ChargerView, LoadpointChoices, Setting  # noqa: E402
from wattbus_surplus_controller.site import Site  # noqa: E402
from wattbus_surplus_controller.strategy import Loadpoint  # noqa: E402

from bench.evcc_baseline import EvccLoadpoint  # noqa: E402
from bench.surplus_house import Driver, Result, foresight_kwh, simulate  # noqa: E402
from bench.surplus_sun import Day, all_days  # noqa: E402

CHARGER = "sim/wallbox"


class WattbusDriver:
    """The service's decision path for one loadpoint (service.Controller.cycle without relays)."""

    def __init__(self, with_battery: bool, extra: dict[str, object] | None = None) -> None:
        raw: dict[str, object] = {"clock": "readings", "grid_meter": "sim/meter",
                                  "loadpoints": [{"id": "garage", "charger": CHARGER}], **(extra or {})}
        if with_battery:
            raw["battery"] = "sim/battery"
        cfg = msgspec.convert(raw, Config)
        self.site = Site(cfg)
        lp_cfg = cfg.loadpoints[0]
        self.lp = Loadpoint(lp_cfg, LoadpointChoices("pv", lp_cfg.min_current_a, lp_cfg.max_current_a))

    def battery(self, now: float, power_w: float, soc: float) -> None:
        self.site.sim_now = now
        self.site.note_battery(now, power_w, soc)

    def charger(self, now: float, view: ChargerView) -> None:
        self.site.sim_now = now
        self.site.chargers[CHARGER] = view

    def meter(self, now: float, grid_w: float) -> Setting:
        site = self.site
        site.sim_now = now
        site.grid_w, site.grid_at = grid_w, now
        view = site.chargers.get(CHARGER, ChargerView())
        remaining = site.available_w(now, view.power_w or 0.0)
        buffered, lendable = max(site.buffered_w(now), site.assist_w(now)), site.lendable_wh(now)
        self.lp.battery_room = site.battery_room(now)
        return self.lp.decide(now, remaining, view, site.config.stale_action, "", buffered, lendable,
                              max(0.0, grid_w))


Key = tuple[str, str, bool]  # (climate, sky, with battery)


def run(days: list[Day]) -> dict[tuple[Key, str], list[Result]]:
    out: dict[tuple[Key, str], list[Result]] = {}
    for i, day in enumerate(days):
        for with_battery in (False, True):
            key = (day.climate, day.sky, with_battery)
            drivers: dict[str, Driver] = {"wattbus": WattbusDriver(with_battery), "evcc": EvccLoadpoint()}
            for row, driver in drivers.items():
                out.setdefault((key, row), []).append(simulate(day, driver, with_battery, seed=i))
    return out


def _sum(results: list[Result], attr: str) -> float:
    return float(sum(getattr(r, attr) for r in results))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ("=" if a == b else "inf")


def table(days: list[Day], results: dict[tuple[Key, str], list[Result]]) -> str:
    head = (f"{'climate':<8} {'sky':<9} {'bat':<3} {'days':>4} {'surplus':>7} {'bound':>6} "
            f"{'PV→EV w/e':>13} {'ratio':>5} {'grid→EV w/e':>11} {'ratio':>5} "
            f"{'on/off+ph w/e':>15} {'ratio':>5} {'react p50 w/e':>13} {'bat→EV w/e':>11} {'bat Δ w/e':>11}")
    lines = ["```", head, "-" * len(head)]
    ratios = ["| climate, sky, battery | PV→EV | of the bound | PV→EV + bat Δ | grid→EV | starts+stops+phase sw "
              "| cloud edge p50 s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for climate in ("Payerne", "US"):
        for sky in ("clear", "broken", "overcast"):
            for bat in (False, True):
                key = (climate, sky, bat)
                if (key, "wattbus") not in results:
                    continue
                w, e = results[(key, "wattbus")], results[(key, "evcc")]
                group = [(i, d) for i, d in enumerate(days) if (d.climate, d.sky) == (climate, sky)]
                bound = sum(foresight_kwh(d, i) for i, d in group) if not bat else float("nan")
                wpv, epv = _sum(w, "ev_pv_kwh"), _sum(e, "ev_pv_kwh")
                wd, ed = _sum(w, "battery_delta_kwh"), _sum(e, "battery_delta_kwh")
                wg, eg = _sum(w, "ev_grid_kwh"), _sum(e, "ev_grid_kwh")
                wc = _sum(w, "starts_stops") + _sum(w, "phase_switches")
                ec = _sum(e, "starts_stops") + _sum(e, "phase_switches")
                wr = [x for r in w for x in r.reactions]
                er = [x for r in e for x in r.reactions]
                wm = statistics.median(wr) if wr else float("nan")
                em = statistics.median(er) if er else float("nan")
                lines.append(
                    f"{climate:<8} {sky:<9} {'yes' if bat else 'no':<3} {len(w):>4} {_sum(w, 'surplus_kwh'):7.1f} "
                    f"{bound:6.1f} {wpv:6.1f}/{epv:6.1f} {_ratio(wpv, epv):>5} {wg:5.2f}/{eg:5.2f} "
                    f"{_ratio(wg, eg):>5} {wc:7.0f}/{ec:7.0f} {_ratio(wc, ec):>5} {wm:6.0f}/{em:6.0f} "
                    f"{_sum(w, 'ev_battery_kwh'):5.1f}/{_sum(e, 'ev_battery_kwh'):5.1f} "
                    f"{_sum(w, 'battery_delta_kwh'):5.1f}/{_sum(e, 'battery_delta_kwh'):5.1f}")
                of_bound = f"{wpv / bound:.3f} vs {epv / bound:.3f}" if not bat else "-"
                ratios.append(f"| {climate}, {sky} ({len(w)} d), {'with' if bat else 'no'} battery | "
                              f"{_ratio(wpv, epv)} | {of_bound} | {_ratio(wpv + wd, epv + ed) if bat else '-'} | "
                              f"{_ratio(wg, eg)} | {_ratio(wc, ec)} | {wm:.0f} vs {em:.0f} |")
    lines.append("```")
    lines = ["Ratios wattbus / evcc-faithful baseline (same house, sun and charger):", "", *ratios, "", *lines]
    lines.append("w/e: wattbus / evcc-faithful baseline, summed over the days of the type (kWh, 8 h around "
                 "solar noon); ratio: wattbus / baseline. surplus: PV minus household load; bound: the "
                 "perfect-foresight EV energy without import (no battery); of the bound: PV→EV / bound, "
                 "wattbus vs baseline (above 1 only by import). PV→EV: EV energy covered by the "
                 "surplus of the moment; grid→EV: EV energy from the grid (with a battery, what the battery "
                 "gave the car is neither). on/off+ph: charger starts+stops + phase switches under load. "
                 "react: median s from a cloud edge (surplus 1 kW below the car's draw above 6 A) to a lower "
                 "setting. bat→EV: EV energy the home battery gave; bat Δ: battery energy at the end minus at "
                 "the start (10 kWh, 50 % at the start of each day). PV→EV + bat Δ: battery-neutral, a row must "
                 "not look better by emptying the battery into the car.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="", help="comma-separated day names (default: all)")
    args = parser.parse_args(argv if argv is not None else [])
    days = all_days()
    if args.days:
        wanted = set(args.days.split(","))
        days = [d for d in days if d.name in wanted]
    text = "\n".join([
        "days: " + ", ".join(f"{d.name} {d.sky} (k {d.k:.2f}, VI {d.vi:.0f})" for d in days), "",
        table(days, run(days))])
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
