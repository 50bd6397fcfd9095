"""scandetd's HostScanIgnore rules: `src/bits[:ports] [-> dst/bits[:ports]]`, ';'-separated.

An IPv6 endpoint takes its ports after the prefix length (`2001:db8::/32:1-1024`) or after a
bracketed address (`[2001:db8::1]:22`); without either, it is an address alone (a warning says
so when its last group could have been meant as a port). A rule without `->` matches any
destination. Both ends of a rule are in one family: one that mixes IPv4 and IPv6 could never
match, and is refused.
"""

import ipaddress
from dataclasses import dataclass

from portwarden.config import values
from portwarden.config.ignore import Network, host_bits_set, parse_network
from portwarden.net.addresses import IPAddress
from portwarden.text import port_ranges


@dataclass(frozen=True, slots=True)
class Endpoint:
    network: Network
    ports: frozenset[int] | None  # None: every port

    def matches(self, address: IPAddress, port: int) -> bool:
        return address in self.network and (self.ports is None or port in self.ports)

    def __str__(self) -> str:
        if self.ports is None:
            return str(self.network)
        return f"{self.network}:{port_ranges(self.ports)}"


@dataclass(frozen=True, slots=True)
class HostScanRule:
    src: Endpoint
    dst: Endpoint | None

    def matches(self, src: IPAddress, sport: int, dst: IPAddress, dport: int) -> bool:
        return self.src.matches(src, sport) and (self.dst is None or self.dst.matches(dst, dport))

    def __str__(self) -> str:
        return str(self.src) if self.dst is None else f"{self.src} -> {self.dst}"


def parse_rules(text: str) -> tuple[HostScanRule, ...]:
    """Raises ValueError naming the bad part."""
    rules = []
    for item in text.split(";"):
        if not item.strip():
            continue
        src, arrow, dst = item.partition("->")
        rule = HostScanRule(_endpoint(src), _endpoint(dst) if arrow else None)
        if rule.dst is not None and rule.dst.network.version != rule.src.network.version:
            raise ValueError(
                f"'{item.strip()}' mixes IPv4 and IPv6, so it can never match a "
                "packet; write one rule for each family"
            )
        rules.append(rule)
    return tuple(rules)


def _endpoint(text: str) -> Endpoint:
    address, ports = _split(text)
    return Endpoint(parse_network(address), None if ports is None else _ports(ports))


def _split(text: str) -> tuple[str, str | None]:
    """An endpoint's address or network as written, and its port list (None: none given)."""
    text = text.strip()
    if not text:
        raise ValueError("empty address in rule")
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"'{text}' has an unclosed or misplaced ']'")
        return address, rest[1:] if rest else None
    if "/" in text:
        address, _, mask = text.partition("/")
        mask, colon, ports = mask.partition(":")
        return f"{address}/{mask}", ports if colon else None
    if text.count(":") == 1:  # IPv4 address with ports
        address, _, ports = text.partition(":")
        return address, ports
    if text in ("*", "any"):
        raise ValueError("use 0.0.0.0/0 or ::/0 for any address")
    return text, None


def endpoint_warnings(text: str) -> list[str]:
    """What in valid rules may not mean what was meant, one line each: a network written with
    host bits (`198.18.0.1/24` matches all of 198.18.0.0/24), and an IPv6 endpoint without
    brackets whose last group could be a port (`2001:db8::1:53` is the address
    2001:db8::1:53, though 2001:db8::1 port 53 looks the same; only when both readings are
    valid addresses)."""
    found = []
    for item in text.split(";"):
        for part in (p.strip() for p in item.split("->") if p.strip()):
            address = _split(part)[0]
            network = parse_network(address)
            if host_bits_set(address, network):
                found.append(f"'{part}': host bits are set; it matches all of {network}")
            if part.startswith("[") or "/" in part or part.count(":") < 2:
                continue
            address, _, last = part.rpartition(":")
            if not last.isdigit() or not 1 <= int(last) <= 65535 or not _is_ipv6(address):
                continue
            found.append(
                f"'{part}' is taken as the address {part}; for port {last} of "
                f"{address}, write [{address}]:{last}"
            )
    return found


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ports(text: str) -> frozenset[int]:
    ports = values.port_set(text)
    if not ports:
        raise ValueError("empty port list after ':'")
    return ports


def ignored(
    rules: tuple[HostScanRule, ...], src: IPAddress, sport: int, dst: IPAddress, dport: int
) -> bool:
    return any(rule.matches(src, sport, dst, dport) for rule in rules)
