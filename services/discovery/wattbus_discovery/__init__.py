"""wattbus discovery: finds SunSpec, APsystems ECU, GivEnergy, go-e and Shelly devices on the LAN."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("discovery")
