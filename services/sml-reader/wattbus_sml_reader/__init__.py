"""sml-reader: smart meters on optical IR heads and serial lines (SML, DSMR P1, IEC 62056-21)."""

from wattbus.lean import keep_openssl_out

# Before asyncio and paho are imported: a service without TLS need not load OpenSSL (wattbus.lean).
keep_openssl_out("sml-reader")
