"""integrations: Home Assistant MQTT discovery and user templates that republish readings anywhere."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("integrations")
