"""PortSentry's ignore file and the always-ignored addresses (loopback, every local address)."""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from portwarden.config.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_IGNORED: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True, slots=True)
class IgnoreList:
    """Networks whose traffic never triggers an alert or a block."""

    networks: tuple[Network, ...]

    def __contains__(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)

    @classmethod
    def build(cls, *groups: Iterable[Network | Address]) -> "IgnoreList":
        nets: dict[Network, None] = {}
        for group in groups:
            for item in group:
                nets[ipaddress.ip_network(item)] = None
        return cls(tuple(nets))


def parse_network(text: str) -> Network:
    """'addr', 'addr/bits' or the old 'addr/dotted.mask'; host bits are masked off (as PortSentry).

    Raises ValueError with a short reason.
    """
    address_text, slash, mask = text.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise ValueError(
            f"'{address_text}' is not an IP address (host names are not allowed)"
        ) from None
    if not slash:
        return ipaddress.ip_network(address)
    if mask.isdigit():
        bits = int(mask)
        if bits > address.max_prefixlen:
            raise ValueError(f"prefix /{mask} is longer than {address.max_prefixlen} bits")
    elif address.version == 4:
        bits = _dotted_mask_bits(mask)
    else:
        raise ValueError(f"'{mask}' is not a prefix length")
    return ipaddress.ip_network(f"{address}/{bits}", strict=False)


def _dotted_mask_bits(mask: str) -> int:
    try:
        value = int(ipaddress.IPv4Address(mask))
    except ValueError:
        raise ValueError(f"'{mask}' is neither a prefix length nor a dotted netmask") from None
    bits = bin(value).count("1")
    if value != (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF:
        raise ValueError(f"netmask '{mask}' is not contiguous")
    return bits


def parse_ignore_text(text: str, source: str) -> tuple[Network, ...]:
    """One address or network per line; '#' starts a comment. Raises ConfigError."""
    networks: list[Network] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        try:
            networks.append(parse_network(item))
        except ValueError as error:
            raise ConfigError(source, str(error), line=number, value=item) from None
    return tuple(networks)


def read_ignore_file(path: Path) -> tuple[Network, ...]:
    """Read an ignore file. Raises ConfigError if it cannot be read or has a bad line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(path, f"cannot read ignore file: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "ignore file is not valid UTF-8") from None
    return parse_ignore_text(text, str(path))
