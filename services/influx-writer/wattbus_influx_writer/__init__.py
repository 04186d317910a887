"""influx-writer: every reading on the bus into InfluxDB (v1 /write or v2 write API), without loss."""
