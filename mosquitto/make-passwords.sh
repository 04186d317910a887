#!/bin/sh
# Create mosquitto/passwd (hashed) and secrets/<user> (plain, for the services) for every user
# in mosquitto/users.txt. Existing secrets are kept, so re-running it is safe.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secrets=${WATTBUS_SECRETS_DIR:-$here/../secrets}
passwd=${WATTBUS_PASSWD_FILE:-$here/passwd}
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found: apt-get install mosquitto" >&2; exit 1; }
mkdir -p "$secrets"
chmod 700 "$secrets"
tmp=$(mktemp)
grep -v '^\s*#' "$here/users.txt" | grep -v '^\s*$' | while read -r user; do
    [ -s "$secrets/$user" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$secrets/$user"
    chmod 600 "$secrets/$user"
    printf '%s:%s\n' "$user" "$(cat "$secrets/$user")" >> "$tmp"
done
mosquitto_passwd -U "$tmp"
# The http-api's bearer token for write endpoints (not a broker user).
[ -s "$secrets/http-api-token" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$secrets/http-api-token"
chmod 600 "$secrets/http-api-token"
mv "$tmp" "$passwd"
chmod 644 "$passwd"
echo "wrote $passwd and $(ls "$secrets" | wc -l) secrets in $secrets"
