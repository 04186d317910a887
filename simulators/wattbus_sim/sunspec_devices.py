"""What the SunSpec simulator serves: an SMA-like, a Fronius-like (with its meter) and a
float-model hybrid inverter, with values from one small simulated plant.

Values follow the time of day (a clear-sky PV curve) unless `static` is set, which tests use
so two clients reading at different moments see the same numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

# Which units a host serves, by simulator profile: unit -> (kind, serial).
PROFILES: dict[str, dict[int, tuple[str, str]]] = {
    "sma": {126: ("sma", "3004512345")},
    "fronius": {1: ("fronius", "34119102"), 240: ("fronius-meter", "18420047")},
    "float": {2: ("float", "FL-000771")},
}
BASE = 40000


@dataclass
class Plant:
    peak_w: float = 8000.0
    static: bool = False
    house_w: float = 650.0
    limit_pct: float = 100.0
    connected: bool = True
    started: float = field(default_factory=time.monotonic)
    energy_wh: float = 12_345_678.0
    import_wh: float = 4_567_890.0
    export_wh: float = 7_654_321.0
    last: float = field(default_factory=time.monotonic)

    def pv_w(self) -> float:
        if self.static:
            raw = self.peak_w * 0.62
        else:
            hours = time.localtime().tm_hour + time.localtime().tm_min / 60
            sun = max(0.0, math.sin(math.pi * (hours - 6) / 14))
            raw = self.peak_w * sun * (0.9 + 0.1 * math.sin(time.monotonic() / 7))
        if not self.connected:
            return 0.0
        return round(min(raw, self.peak_w * self.limit_pct / 100), 1)

    def advance(self) -> None:
        now = time.monotonic()
        hours = (now - self.last) / 3600
        self.last = now
        if self.static:
            return
        pv = self.pv_w()
        self.energy_wh += pv * hours
        grid = self.house_w - pv
        if grid > 0:
            self.import_wh += grid * hours
        else:
            self.export_wh += -grid * hours


def common(mn: str, md: str, sn: str, vr: str = "1.2.3") -> tuple[int, dict[str, Any]]:
    return 1, {"Mn": mn, "Md": md, "Opt": "sim", "Vr": vr, "SN": sn, "DA": 1}


def inverter_int(plant: Plant) -> tuple[int, dict[str, Any]]:
    pv = plant.pv_w()
    amps = [round(pv / 3 / v, 2) for v in (230.1, 231.4, 229.8)]
    return 103, {
        "A_SF": -2, "A": round(sum(amps), 2), "AphA": amps[0], "AphB": amps[1], "AphC": amps[2],
        "V_SF": -1, "PhVphA": 230.1, "PhVphB": 231.4, "PhVphC": 229.8,
        "PPVphAB": 399.2, "PPVphBC": 400.1, "PPVphCA": 398.7,
        "W_SF": 0, "W": round(pv), "Hz_SF": -2, "Hz": 50.01, "VA_SF": 0, "VA": round(pv),
        "VAr_SF": 0, "VAr": 0, "PF_SF": -1, "PF": 100.0, "WH_SF": 0, "WH": round(plant.energy_wh),
        "DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 0, "DCA": round(pv / 0.97 / 610.5, 2), "DCV": 610.5,
        "DCW": round(pv / 0.97), "Tmp_SF": -1, "TmpCab": 41.5, "TmpSnk": None,
        "St": ("MPPT" if plant.limit_pct >= 100 else "THROTTLED") if pv > 0 else "SLEEPING", "StVnd": None,
        "Evt1": 0, "Evt2": 0, "EvtVnd1": 0, "EvtVnd2": 0, "EvtVnd3": 0, "EvtVnd4": 0,
    }


def inverter_float(plant: Plant) -> tuple[int, dict[str, Any]]:
    _, values = inverter_int(plant)
    values = {k: v for k, v in values.items() if not k.endswith("_SF")}
    values["WH"] = round(plant.energy_wh, 1)
    return 113, values


def mppt(plant: Plant) -> tuple[int, dict[str, Any]]:
    dc = plant.pv_w() / 0.97
    strings = [(0.55, 612.3), (0.45, 598.0)]
    modules = [{"ID": i + 1, "IDStr": f"String {i + 1}", "DCW": round(dc * share), "DCV": volts,
                "DCA": round(dc * share / volts, 2), "DCWH": round(plant.energy_wh * share), "Tms": None,
                "Tmp": None, "DCSt": "MPPT" if dc > 0 else "SLEEPING", "DCEvt": 0}
               for i, (share, volts) in enumerate(strings)]
    return 160, {"DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 0, "DCWH_SF": 0, "Evt": 0, "N": len(modules),
                 "TmsPer": None, "module": modules}


def controls() -> tuple[int, dict[str, Any]]:
    # Every point the model marks mandatory has a value: a power factor setpoint of 1.000 (cos phi,
    # scale -3) and the reactive power mode, both disabled, as an inverter leaves them by default.
    return 123, {"Conn": 1, "WMaxLimPct_SF": -1, "WMaxLimPct": 100.0, "WMaxLim_Ena": 0, "Conn_WinTms": 0,
                 "Conn_RvrtTms": 0, "WMaxLimPct_WinTms": 0, "WMaxLimPct_RvrtTms": 0, "WMaxLimPct_RmpTms": 0,
                 "OutPFSet_SF": -3, "OutPFSet": 1.0, "OutPFSet_Ena": "DISABLED", "VArPct_Ena": "DISABLED"}


def meter(plant: Plant) -> tuple[int, dict[str, Any]]:
    grid = round(plant.house_w - plant.pv_w())
    per = [round(grid * s) for s in (0.4, 0.35, 0.25)]
    return 203, {
        "A_SF": -2, "A": round(abs(grid) / 230, 2), "AphA": round(abs(per[0]) / 230, 2),
        "AphB": round(abs(per[1]) / 230, 2), "AphC": round(abs(per[2]) / 230, 2),
        "V_SF": -1, "PhV": 230.4, "PhVphA": 230.2, "PhVphB": 230.9, "PhVphC": 230.1,
        "PPV": 399.1, "PhVphAB": 399.4, "PhVphBC": 399.2, "PhVphCA": 398.7,
        "Hz_SF": -2, "Hz": 49.98, "W_SF": 0, "W": grid, "WphA": per[0], "WphB": per[1], "WphC": per[2],
        # The model's PF unit is percent: 98.0 % goes out as 980 at scale -1.
        "PF_SF": -1, "PF": 98.0, "PFphA": 97.5, "PFphB": 98.2, "PFphC": 98.4,
        "TotWh_SF": 0, "TotWhExp": round(plant.export_wh), "TotWhImp": round(plant.import_wh),
        "Evt": 0,
    }


def battery(plant: Plant) -> list[tuple[int, dict[str, Any]]]:
    return [
        (124, {"WChaMax_SF": 0, "WChaMax": 5000, "ChaState_SF": -1, "ChaState": 57.3, "InBatV_SF": -1,
               "InBatV": 51.2, "ChaSt": "CHARGING", "MinRsvPct_SF": 0, "MinRsvPct": 10,
               "WChaDisChaGra_SF": 0, "WChaGra": 10, "WDisChaGra": 10, "StorCtl_Mod": 0}),
        (802, {"AHRtg_SF": 0, "AHRtg": 200, "WHRtg_SF": 0, "WHRtg": 10240, "SoC_SF": -1, "SoC": 57.3,
               "SoH_SF": 0, "SoH": 98, "ChaSt": "CHARGING", "V_SF": -1, "V": 51.2, "A_SF": -1, "A": -23.4,
               "W_SF": 0, "W": -1198, "Typ": "LITHIUM_ION", "State": "CONNECTED", "NCyc": 311,
               "WChaDisChaMax_SF": 0, "WChaRteMax": 5000, "WDisChaRteMax": 5000, "LocRemCtl": "REMOTE",
               "AlmRst": 0, "Evt1": 0, "Evt2": 0, "EvtVnd1": 0, "EvtVnd2": 0, "SetOp": "CONNECT",
               "SetInvState": "INVERTER_STARTED", "CellV_SF": -3, "AMax_SF": 0}),
    ]


def models_for(kind: str, serial: str, plant: Plant) -> list[tuple[int, dict[str, Any]]]:
    if kind == "sma":
        return [common("SMA", "STP10.0-3AV-40", serial), inverter_int(plant), mppt(plant), controls()]
    if kind == "fronius":
        return [common("Fronius", "Symo 8.2-3-M", serial), inverter_int(plant), mppt(plant), controls()]
    if kind == "fronius-meter":
        return [common("Fronius", "Smart Meter 63A", serial), meter(plant)]
    return [common("Wattbus Sim", "Hybrid F10", serial), inverter_float(plant), mppt(plant), controls(),
            *battery(plant)]
