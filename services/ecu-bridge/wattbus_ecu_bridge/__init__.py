"""ecu-bridge: APsystems ECU-R / ECU-B / ECU-C microinverter arrays on the wattbus (aps2mqtt compatible)."""
