"""influx-writer: every reading on the bus into InfluxDB (v1 /write or v2 write API), without loss."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("influx-writer")
