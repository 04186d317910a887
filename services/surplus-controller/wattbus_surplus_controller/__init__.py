"""surplus-controller: PV-surplus EV charging and surplus loads, talking only through the bus."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("surplus-controller")
