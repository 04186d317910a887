"""The loadpoint state's session figures and status word."""

from __future__ import annotations

from wattbus_surplus_controller.model import ChargerView, Setting
from wattbus_surplus_controller.session import Session, status


def test_session_integrates_power_from_plug_in_and_ends_at_unplug() -> None:
    session = Session()
    session.note(0.0, ChargerView(power_w=0.0, state="idle"))
    assert session.duration_s(0.0) is None and session.session_energy_wh(ChargerView()) is None
    session.note(10.0, ChargerView(power_w=0.0, state="connected"))
    for t in range(12, 3612, 2):  # one hour at 3.6 kW after the plug-in
        session.note(float(t), ChargerView(power_w=3600.0, state="charging"))
    view = ChargerView(power_w=3600.0, state="charging")
    assert session.duration_s(3610.0) == 3600.0
    energy = session.session_energy_wh(view)
    assert energy is not None and 3590.0 <= energy <= 3600.0
    # a charger with its own session counter (go-e) is believed
    assert session.session_energy_wh(ChargerView(state="charging", session_energy_wh=1234.0)) == 1234.0
    session.note(3700.0, ChargerView(power_w=0.0, state="idle"))
    assert session.duration_s(3700.0) is None


def test_status_names_why_the_car_is_or_is_not_charging() -> None:
    car = ChargerView(state="charging")
    assert status(Setting(False, 6, 3, "no vehicle connected"), ChargerView(state="idle"), None) == "no_vehicle"
    assert status(Setting(False, 6, 3, "vehicle full"), ChargerView(state="complete"), None) == "vehicle_full"
    assert status(Setting(False, 6, 3, "safe state (stopped): silent"), car, "silent") == "safe_state"
    assert status(Setting(False, 6, 1, "pv: surplus 300 W (average 280 W) below 1380 W to start"), car,
                  None) == "waiting_for_surplus"
    assert status(Setting(False, 6, 1, "pv: surplus 2000 W, starting after 60 s"), car, None) == "waiting_delay"
    assert status(Setting(False, 6, 3, "pv: surplus 5000 W, but 38.0 of 40 Wh import allowance used in 600 s"),
                  car, None) == "waiting_import_window"
    assert status(Setting(True, 6, 3, "pv: at minimum, surplus 3000 W, 4.0/40 Wh allowance used"), car,
                  None) == "charging_at_minimum"
    assert status(Setting(True, 10, 3, "pv: steady at 10 A, surplus 7000 W"), car, None) == "charging_from_surplus"
    assert status(Setting(True, 16, 3, "mode now: maximum current"), car, None) == "charging_now"
