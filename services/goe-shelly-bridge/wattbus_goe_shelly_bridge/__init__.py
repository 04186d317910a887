"""goe-shelly-bridge: go-e chargers and Shelly relays and meters over their local HTTP APIs."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("goe-shelly-bridge")
