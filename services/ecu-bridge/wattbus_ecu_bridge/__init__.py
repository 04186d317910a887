"""ecu-bridge: APsystems ECU-R / ECU-B / ECU-C microinverter arrays on the wattbus (aps2mqtt compatible)."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("ecu-bridge")
