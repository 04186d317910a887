"""giv-bridge: GivEnergy inverters and batteries through the dongle on TCP 8899 (GivTCP compatible)."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("giv-bridge")
