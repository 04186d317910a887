#!/bin/sh
# Compile the broker plugin: build.sh OUTPUT.so. The one recipe for every place the broker runs:
# `make broker-plugin` (tests, `make run`) and mosquitto/Dockerfile (compose). Needs a C compiler
# and Mosquitto's development headers (Debian: gcc libc6-dev mosquitto-dev libmosquitto-dev;
# Alpine: gcc musl-dev mosquitto-dev). Written next to OUTPUT and renamed into place, so a broker
# starting meanwhile never loads half a file.
set -eu
out=${1:?usage: build.sh OUTPUT.so}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$out")"
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared \
    -o "$out.tmp.$$" "$here/wattbus_client_ids.c"
mv -f "$out.tmp.$$" "$out"
