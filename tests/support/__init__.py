"""Test support: real servers (Mosquitto, InfluxDB, VictoriaMetrics) on free loopback ports."""
