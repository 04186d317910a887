#!/bin/sh
# Create every secret compose.yaml lists, readable by the services and no one else:
#   secrets/<user>             a broker password for each user in mosquitto/users.txt
#   secrets/http-api-token     the bearer token for the http-api's write endpoints and setup pages
#   secrets/influxdb-password  InfluxDB's admin password (used at InfluxDB's first start only)
#   secrets/influxdb-token     InfluxDB's admin API token (first start; the writer and Grafana use it)
#   secrets/grafana-password   Grafana's admin password
# and mosquitto/passwd, the broker's hashed password file. Existing secrets are kept (re-running
# is safe, and repairs owner and mode); an empty one is made anew.
#
# Owner root, group 10001, mode 0440: the image's services run as uid 10001 in group `wattbus`
# (gid 10001), and compose gives the other containers that read a secret (mosquitto, influxdb,
# grafana) `group_add: ["10001"]`. Only root can set that owner, hence root (or sudo).
# WATTBUS_SECRETS_DIR and WATTBUS_PASSWD_FILE choose other places (the tests use them).
set -eu
SERVICE_GID=10001
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
secrets=${WATTBUS_SECRETS_DIR:-$here/../secrets}
passwd=${WATTBUS_PASSWD_FILE:-$here/passwd}

if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "make-passwords.sh: the secrets must belong to root and group $SERVICE_GID; running it with sudo" >&2
        exec sudo env WATTBUS_SECRETS_DIR="$secrets" WATTBUS_PASSWD_FILE="$passwd" sh "$self"
    fi
    echo "make-passwords.sh: must run as root: the secrets it writes belong to root and group" \
        "$SERVICE_GID (the services' group in the image), which only root can set, and sudo is not" \
        "installed. Run it as root: su -c '$self'" >&2
    exit 1
fi
command -v mosquitto_passwd >/dev/null || {
    echo "make-passwords.sh: mosquitto_passwd not found (it hashes the broker passwords): apt-get install mosquitto" >&2
    exit 1
}

if [ -d "$passwd" ]; then
    # `docker compose up` before this script: Docker made the missing bind-mount source a directory.
    rmdir "$passwd" 2>/dev/null || {
        echo "make-passwords.sh: $passwd is a directory with files in it; move it away and run again" >&2
        exit 1
    }
    echo "make-passwords.sh: removed the empty directory $passwd (Docker makes one when compose starts first)" >&2
fi

umask 077  # nothing written here is ever readable by others, not even for a moment
mkdir -p "$secrets"
secrets=$(cd "$secrets" && pwd)
chown root:root "$secrets"
chmod 700 "$secrets"
created=""
kept=""

# A random secret (~190 bits) in characters every consumer takes as they are (no quoting needed).
ensure() {
    if [ -s "$secrets/$1" ]; then
        kept="$kept $1"
    else
        head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$secrets/$1"
        created="$created $1"
    fi
    chown "root:$SERVICE_GID" "$secrets/$1"
    chmod 440 "$secrets/$1"
}

users=$(grep -v '^[[:space:]]*#' "$here/users.txt" | grep -v '^[[:space:]]*$')
tmp=$(mktemp "$passwd.XXXXXX")
trap 'rm -f "$tmp"' EXIT
for user in $users; do
    ensure "$user"
    printf '%s:%s\n' "$user" "$(cat "$secrets/$user")" >> "$tmp"
done
for name in http-api-token influxdb-password influxdb-token grafana-password; do
    ensure "$name"
done
mosquitto_passwd -U "$tmp" >/dev/null  # hashes in place: the plain text never reaches $passwd
chmod 644 "$tmp"  # the broker container's own user reads it; it holds only hashes
mv "$tmp" "$passwd"
trap - EXIT

cat <<EOF
wattbus secrets in $secrets
  directory root only (mode 700); each file owner root, group $SERVICE_GID (the services), mode 440
  created:${created:- none}
  kept:   ${kept:- none}
broker password file (hashed): $passwd ($(echo "$users" | wc -l) users)

Keep $secrets private and out of shared backups; nothing prints the secrets. Read one when needed:
  web UI and REST writes (Authorization: Bearer ...):   sudo cat $secrets/http-api-token
  Home Assistant's MQTT integration, user homeassistant: sudo cat $secrets/homeassistant
  mosquitto_sub / mosquitto_pub as user admin:           sudo cat $secrets/admin
  Grafana on :3000, user admin:                          sudo cat $secrets/grafana-password
InfluxDB takes influxdb-password and influxdb-token at its first start only: changing them later
needs the same change inside InfluxDB. A broker password changed here applies after
\`docker compose restart mosquitto\` and a restart of that user's service.
EOF
