"""The `[discovery]` config section and the network scope it allows.

Safety lives here: every network to sweep must be private (RFC 1918, loopback, link-local, ULA);
a deny list removes hosts or whole ranges; the host count is bounded so a typo such as /8 is
refused at start-up instead of turning into a sweep of 16 million addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta, field
from wattbus.bridge.ownership import DEFAULT_LEASE_S
from wattbus.config import ServiceCommon

Port = Annotated[int, Meta(ge=1, le=65535)]
UnitId = Annotated[int, Meta(ge=0, le=255)]


def _private_networks(values: list[str], key: str) -> list[ipaddress.IPv4Network]:
    nets: list[ipaddress.IPv4Network] = []
    for value in values:
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ValueError(f"{key}: {value!r} is not an IPv4 address or CIDR network ({exc})") from exc
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"{key}: {value!r} is IPv6; discovery sweeps IPv4 networks only")
        if key == "networks" and not net.is_private:
            raise ValueError(f"{key}: {value!r} is not a private network; discovery never sweeps public addresses")
        nets.append(net)
    return nets


class Config(ServiceCommon, kw_only=True):
    networks: list[str] = []  # CIDRs to sweep; empty = the host's own private /24s
    deny: list[str] = []  # addresses or CIDRs never contacted
    max_hosts: Annotated[int, Meta(ge=1, le=65536)] = 4096
    modbus_ports: list[Port] = field(default_factory=lambda: [502])
    sunspec_unit_ids: list[UnitId] = field(default_factory=lambda: [1, 2, 3, 100, 126, 240, 247])
    sunspec_bases: list[Annotated[int, Meta(ge=0, le=65535)]] = field(default_factory=lambda: [40000, 0, 50000])
    # where an APsystems ECU or a GivEnergy dongle may listen
    aps_giv_ports: list[Port] = field(default_factory=lambda: [8899])
    connect_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 0.5
    answer_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 1.0
    ecu_answer_timeout_s: Annotated[float, Meta(gt=0, le=10)] = 1.5
    concurrency: Annotated[int, Meta(ge=1, le=512)] = 128  # connections open at once
    rate_per_s: Annotated[float, Meta(gt=0, le=10000)] = 1000.0  # new connections per second
    sweep_interval_s: Annotated[float, Meta(ge=10)] = 900.0
    sweep_on_start: bool = True
    gone_after_misses: Annotated[int, Meta(ge=1, le=100)] = 2  # sweeps without the device before it is gone
    mdns: bool = True
    mdns_interfaces: list[str] = []  # interface addresses to browse on; empty = all
    http_timeout_s: Annotated[float, Meta(gt=0, le=30)] = 3.0
    # Replicas: the sweeper's lease; a stand-by takes over within it (0 = no stand-by, always sweep)
    lease_s: Annotated[float, Meta(ge=0, le=600)] = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        configured = _private_networks(self.networks, "networks")
        _private_networks(self.deny, "deny")
        if configured:
            Scope(configured, [], self.max_hosts)  # refuses a sweep larger than max_hosts
        if not self.modbus_ports and not self.aps_giv_ports and not self.mdns:
            raise ValueError("nothing to discover: modbus_ports and aps_giv_ports are empty and mdns is off")


class Scope:
    """The addresses discovery may contact: configured (or own) private networks minus the deny list."""

    def __init__(self, networks: list[ipaddress.IPv4Network], deny: list[ipaddress.IPv4Network],
                 max_hosts: int) -> None:
        self.networks = networks
        self.deny = deny
        total = sum(max(net.num_addresses - 2, 1) for net in networks)
        if total > max_hosts:
            shown = ", ".join(str(n) for n in networks)
            raise ValueError(f"networks {shown} hold {total} hosts, more than max_hosts = {max_hosts}")

    @classmethod
    def from_config(cls, config: Config) -> Scope:
        nets = _private_networks(config.networks, "networks") or own_private_networks()
        return cls(nets, _private_networks(config.deny, "deny"), config.max_hosts)

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks) and not any(ip in net for net in self.deny)

    def hosts(self) -> Iterator[str]:
        seen: set[ipaddress.IPv4Address] = set()
        for net in self.networks:
            for ip in (net.hosts() if net.prefixlen < 31 else iter(net)):
                if ip not in seen and not any(ip in d for d in self.deny):
                    seen.add(ip)
                    yield str(ip)


def own_private_networks() -> list[ipaddress.IPv4Network]:
    """The host's private IPv4 networks as /24s (or the interface's own, smaller network), like
    iotic; loopback is left out (configure 127.0.0.0/8 addresses explicitly)."""
    import ifaddr  # zeroconf's dependency: interface addresses without shelling out

    nets: list[ipaddress.IPv4Network] = []
    for adapter in ifaddr.get_adapters():
        for addr in adapter.ips:
            if not isinstance(addr.ip, str):
                continue
            ip = ipaddress.IPv4Address(addr.ip)
            if not ip.is_private or ip.is_loopback or ip.is_link_local:
                continue
            net = ipaddress.ip_network(f"{ip}/{max(24, addr.network_prefix)}", strict=False)
            if isinstance(net, ipaddress.IPv4Network) and net not in nets:
                nets.append(net)
    return nets
