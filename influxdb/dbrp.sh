#!/bin/sh
# Runs once inside the influxdb:2 container after its first setup (docker-entrypoint-initdb.d):
# map the InfluxQL database "wattbus" to the bucket, so Grafana's InfluxQL dashboards work on 2.x.
set -eu
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db wattbus --rp autogen --bucket-id "$bucket_id" --default
