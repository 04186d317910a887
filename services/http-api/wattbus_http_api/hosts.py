"""Which Host and Origin headers a write or a config read may carry (DNS rebinding, cross-site requests).

DNS rebinding: a page from `rebind.evil.example` re-resolves its own name to the gateway's
address, so the browser sends the page's requests to us as same-origin, with
`Host: rebind.evil.example`. Only a name can be rebound, so the Host must be a name of this
machine, a configured name (`allowed_hosts`), localhost, or an IP address literal (an address
literal is what a person types, and what a port forward or `docker compose` port mapping shows).

Cross-site requests: a browser puts the page's origin in `Origin` on every POST/PUT and on
cross-origin fetches; when present it must name the same host and port as `Host`.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6]:port` -> (lower-case name without a trailing dot, port); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        name, _, port_text = value.partition(":")
        if ":" in port_text:  # a bare IPv6 address without brackets is not a Host header
            return None
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        return None
    name = name.lower().rstrip(".")
    return (name, int(port_text) if port_text else None) if name else None


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def own_names() -> set[str]:
    """This machine's names as a browser may reach it: hostname, FQDN, and the mDNS `.local` name."""
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        name = name.lower().rstrip(".")
        if name:
            names.add(name)
            names.add(name.split(".", 1)[0] + ".local")
    return names


class HostPolicy:
    def __init__(self, allowed: list[str], names: set[str] | None = None) -> None:
        self.names = (own_names() if names is None else set(names)) | {
            a.lower().rstrip(".") for a in allowed if not a.startswith("*.")}
        self.suffixes = tuple(a[1:].lower().rstrip(".") for a in allowed if a.startswith("*."))

    def problem(self, host_header: str | None) -> str | None:
        """Why this Host header is refused, or None. No Host at all: not a browser (HTTP/1.0 tools)."""
        if host_header is None:
            return None
        found = split_host(host_header)
        if found is None:
            return f"Host {host_header!r} is not a host name or address"
        name = found[0]
        if is_address(name) or name in self.names or name.endswith(".localhost"):
            return None
        if self.suffixes and name.endswith(self.suffixes):
            return None
        return (f"Host {host_header!r} is not a name of this gateway (DNS rebinding protection): use its address "
                f"or one of {', '.join(sorted(self.names))}, or add the name to [http-api] allowed_hosts")


def origin_problem(origin: str, host_header: str | None) -> str | None:
    """Why an Origin header does not match the Host the request was sent to, or None."""
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return f"Origin {origin!r} is not a web page of this gateway"
    try:
        origin_port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return f"Origin {origin!r} has no valid port"
    host = split_host(host_header or "")
    if host is None:
        return f"Origin {origin!r} given without a Host to match it"
    name, port = host
    # Behind a TLS proxy the Host may carry no port while the page's origin is https on 443.
    same_port = port == origin_port or (port is None and parts.port is None)
    if parts.hostname.lower().rstrip(".") != name or not same_port:
        return (f"cross-site request refused: Origin {origin!r} is not this gateway ({host_header}); "
                "writes and config reads are answered only for its own pages")
    return None
