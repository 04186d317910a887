"""Device simulators that speak the real wire protocols (Modbus, SML, ECU, HTTP, mDNS)."""
