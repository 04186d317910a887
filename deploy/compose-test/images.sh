#!/usr/bin/env bash
# The images compose.yaml pulls, built from Debian packages (no registry is reachable here):
#   a Debian bookworm base    debootstrap --variant=minbase, imported; with this machine's CA
#                             bundle, Debian sources and pip index settings (registries.py)
#   python:3.11-slim-bookworm Debian's python3 (3.11) in a venv at /usr/local, like the official image
#   eclipse-mosquitto:2       Debian's mosquitto at the official image's paths and uid, with an `apk`
#                             that installs the Debian build tools mosquitto/Dockerfile asks for
#   victoria-metrics          the database stand-in for influxdb:2.7 (compose.test.yaml)
# Usage: images.sh CACHE_DIR PYTHON. Needs DOCKER_HOST and DOCKER_CONFIG (run.sh). The base is
# rebuilt only when its inputs change (its tag carries their hash); the rest is Docker's build cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$1 py=$2
say() { printf '[compose-test] %s\n' "$*"; }
t0=$(date +%s)

inputs=$cache/base-inputs
rm -rf "$inputs"; mkdir -p "$inputs/ca"
"$py" "$here/registries.py" apt-sources > "$inputs/debian.sources"
"$py" "$here/registries.py" pip-conf > "$inputs/pip.conf"
mirror=$("$py" "$here/registries.py" mirror)
cp /etc/ssl/certs/ca-certificates.crt "$inputs/ca-certificates.crt"
# The machine's own CAs (a TLS-intercepting proxy's): kept when the image's bundle is regenerated.
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$inputs/ca/" \; 2>/dev/null || true
key=$( { echo "minbase ca-certificates bookworm $mirror"; sed -n '/^# --- base ---$/,/^# --- end base ---$/p' "$0"; \
         cd "$inputs" && find . -type f | sort | xargs cat; } | sha256sum | cut -c1-12)
base=wattbus-compose-test/debian:bookworm-$key

# --- base ---
if ! docker image inspect "$base" >/dev/null 2>&1; then
    say "building the Debian base image $base (debootstrap from $mirror, about a minute)"
    rootfs=$cache/rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -f "$rootfs/etc/apt/sources.list"
    cp "$inputs/debian.sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
    cp "$inputs/pip.conf" "$rootfs/etc/pip.conf"
    cp "$inputs/ca-certificates.crt" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp "$inputs"/ca/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    # As Docker's Debian images: no recommends, no caches, no docs in the layers.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$rootfs/etc/apt/apt.conf.d/90compose-test"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
fi
# --- end base ---
say "base image $base ($(( $(date +%s) - t0 )) s)"

t1=$(date +%s)
export BASE_IMAGE=$base
docker compose -f "$here/standins.yaml" build --quiet \
    || { say "building the stand-in images failed"; exit 1; }
say "stand-in images: $(docker compose -f "$here/standins.yaml" config --images | tr '\n' ' ') ($(( $(date +%s) - t1 )) s)"
