"""http-api: the site over HTTP (MeterHub JSON, GivTCP REST, own REST + OpenAPI) and the web UI."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("http-api")
