"""PortSentry's ignore file and the always-ignored addresses (loopback, every local address)."""

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from portwarden.config import values
from portwarden.config.conffile import capped
from portwarden.config.errors import ConfigError
from portwarden.net.addresses import IPAddress
from portwarden.net.local import unmapped
from portwarden.text import counted, one_line
from portwarden.textfile import BOM, numbered_lines

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLANKS = re.compile(r"[ \t]+")
# A host name: labels of letters, digits and inner hyphens (RFC 1123), a trailing dot allowed.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_INET_PART = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+")  # a part inet_addr() takes
_PORTSENTRY_MASK_BITS_MAX = 32  # NeverBlock() refused a mask whose atoi() was larger
_LEADING = {" ": "a blank", "\t": "a tab", BOM.decode(): "a byte-order mark"}

ALWAYS_IGNORED: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True)
class IgnoreList:
    """Networks whose traffic never triggers an alert or a block.

    Looked up for every probe, so single addresses go into a set and only real networks are
    scanned, as (version, network integer, mask integer).
    """

    networks: tuple[Network, ...]
    _hosts: frozenset[IPAddress] = field(init=False, repr=False, compare=False)
    _nets: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        single = {n.network_address for n in self.networks if n.num_addresses == 1}
        nets = tuple(
            (n.version, int(n.network_address), int(n.netmask))
            for n in self.networks
            if n.num_addresses > 1
        )
        object.__setattr__(self, "_hosts", frozenset(single))
        object.__setattr__(self, "_nets", nets)

    def __contains__(self, address: IPAddress) -> bool:
        address = unmapped(address)
        if address in self._hosts:
            return True
        value, version = int(address), address.version
        return any(v == version and value & mask == net for v, net, mask in self._nets)

    @classmethod
    def build(cls, *groups: Iterable[Network | IPAddress]) -> "IgnoreList":
        """The networks of all groups, each once, IPv4 before IPv6 and in address order, so
        that what shows them (check-config) prints the same every time."""
        nets = {ipaddress.ip_network(item) for group in groups for item in group}
        return cls(tuple(sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen))))


def parse_network(text: str) -> Network:
    """'addr', 'addr/bits' or the old 'addr/dotted.mask'; host bits are masked off (as PortSentry).

    An IPv4-mapped IPv6 entry (`::ffff:198.18.0.6`, `::ffff:1.2.3.0/120`) becomes the IPv4
    network, since mapped sources are looked up as IPv4 (IgnoreList). An address with a zone
    (`fe80::1%eth0`) is refused: sources carry none, so it would never match.
    Raises ValueError with a short reason.
    """
    address_text, slash, mask = text.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise _not_an_address(address_text, whole=not slash) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(
            f"'{address_text}' has a zone (%{address.scope_id}); write the address without it"
        )
    if not slash:
        bits: int = address.max_prefixlen
    elif values.ascii_digits(mask):
        bits = int(mask)
        if bits > address.max_prefixlen:
            raise ValueError(f"prefix /{mask} is longer than {address.max_prefixlen} bits")
    elif address.version == 4:
        bits = _dotted_mask_bits(mask)
    else:
        raise ValueError(f"'{mask}' is not a prefix length")
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None:
        if bits < 96:
            raise ValueError(
                "an IPv4-mapped address needs a prefix of /96 or longer; "
                f"write the IPv4 network ({mapped}/...)"
            )
        return ipaddress.ip_network(f"{mapped}/{bits - 96}", strict=False)
    return ipaddress.ip_network(f"{address}/{bits}", strict=False)


class InetForm(ValueError):
    """An IPv4 address in a form C's inet_addr() takes and we do not: fewer than four parts
    (1.2.3 is 1.2.0.3), or a part with a leading 0 (octal) or 0x (hex). str() says what
    PortSentry, which read the ignore file with inet_addr(), made of it; `text`, `parts` and
    `meant` are there for a reader of another file to say it in its own words."""

    def __init__(self, text: str, meant: ipaddress.IPv4Address) -> None:
        self.text, self.parts, self.meant = text, text.count(".") + 1, meant
        if self.parts != 4:
            said = (
                f"has {counted(self.parts, 'part')}, not 4: PortSentry (inet_addr) read it "
                f"as {meant}; write the four parts of the address meant"
            )
        else:
            said = (
                f"is not four decimal numbers: PortSentry (inet_addr) read a leading 0 as "
                f"octal (0x as hex), so it meant {meant}; {WRITE_DECIMAL}"
            )
        super().__init__(f"'{text}' {said}")


WRITE_DECIMAL = "write the address meant in decimal, without leading zeros"


def _not_an_address(text: str, whole: bool) -> ValueError:
    """Why `text` is not an address, as an error that quotes it (InetForm for a form that
    inet_addr() reads); `whole`: `text` is all that was given, not the address of a network."""
    if ":" in text:
        return ValueError(f"'{text}' is not an IPv6 address")
    theirs = _inet_addr(text)
    if theirs is not None:
        return InetForm(text, theirs)
    if _HOST_NAME.fullmatch(text) and not text.replace(".", "").isdigit():
        return ValueError(f"'{text}' is a host name: only addresses and networks are allowed")
    return ValueError(f"'{text}' is not an IP address{' or network' if whole else ''}")


def _inet_addr(text: str) -> ipaddress.IPv4Address | None:
    """What C's inet_addr() (which PortSentry read the ignore file with) made of `text`: 1 to 4
    parts, each decimal, octal after a leading 0, or hex after 0x; the last part fills the
    bytes left (1.2.3 is 1.2.0.3). None where it failed."""
    parts = text.split(".")
    if len(parts) > 4 or not all(_INET_PART.fullmatch(part) for part in parts):
        return None
    try:
        numbers = [
            int(part, 16 if part[:2].lower() == "0x" else 8 if part[:1] == "0" else 10)
            for part in parts
        ]
    except ValueError:  # 8 or 9 after a leading 0
        return None
    *head, last = numbers
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(parts)):
        return None
    return ipaddress.IPv4Address(sum(n << (24 - 8 * i) for i, n in enumerate(head)) | last)


def read_otherwise(text: str, network: Network) -> str | None:
    """How parse_network read `text` as `network` otherwise than written ("host bits are set",
    "an IPv4-mapped address is taken as its IPv4 form", or both), for a warning; None when it
    is as written."""
    said = ["host bits are set"] if host_bits_set(text, network) else []
    if _mapped(text) is not None:
        said.append("an IPv4-mapped address is taken as its IPv4 form")
    return "; ".join(said) or None


def host_bits_set(text: str, network: Network) -> bool:
    """Whether parse_network masked bits of `text`'s address off to make `network`."""
    return (_mapped(text) or ipaddress.ip_address(text.partition("/")[0])) != (
        network.network_address
    )


def _mapped(text: str) -> ipaddress.IPv4Address | None:
    address = ipaddress.ip_address(text.partition("/")[0])
    return address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None


def _dotted_mask_bits(mask: str) -> int:
    try:
        value = int(ipaddress.IPv4Address(mask))
    except ValueError:
        raise ValueError(f"'{mask}' is neither a prefix length nor a dotted netmask") from None
    bits = bin(value).count("1")
    if value != (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF:
        raise ValueError(f"netmask '{mask}' is not contiguous")
    return bits


def parse_ignore_text(
    text: str, source: str, bom: bool = False
) -> tuple[tuple[Network, ...], list[str]]:
    """One address or network per line; '#' starts a comment. Returns the networks and warnings.

    PortSentry read a line up to the first character that cannot be part of an address, so
    `10.0.0.1 router` meant 10.0.0.1: text after a blank is ignored with a warning (text glued
    to the address, `10.0.0.1x`, stays an error). An IPv4 entry PortSentry 1.2 did not honour
    (`_portsentry_missed`) is a warning too; `bom`: the file began with a byte-order mark (gone
    from `text`), which PortSentry read as part of the first line. Raises ConfigError.
    """
    networks: list[Network] = []
    warnings: list[str] = []
    missed: list[tuple[int, str]] = []
    for number, raw in numbered_lines(text):
        item, *rest = _BLANKS.split(raw.split("#", 1)[0].strip(), maxsplit=1)
        if not item:
            continue
        try:
            network = parse_network(item)
        except ValueError as error:
            # The reason quotes the address; when that is the whole item, it is shown once.
            reason = str(error).removeprefix(f"'{item}' ")
            raise ConfigError(source, reason, line=number, value=item) from None
        networks.append(network)
        if host_bits_set(item, network):  # (a mapped address means the same as IPv4)
            warnings.append(
                f"{source}:{number}: {one_line(item)}: host bits are set; ignoring all of {network}"
            )
        if rest:
            warnings.append(
                f'{source}:{number}: "{one_line(rest[0])}" after the address is ignored'
            )
        if network.prefixlen == 0:
            v = network.version
            warnings.append(
                f"{source}:{number}: {one_line(item)} ignores every IPv{v} source: "
                f"no detection, no blocking for IPv{v}"
            )
        why = _portsentry_missed((BOM.decode() if bom and number == 1 else "") + raw, item)
        if why is not None:
            these = "this host" if network.num_addresses == 1 else "these hosts"
            missed.append(
                (
                    number,
                    f"{source}:{number}: {one_line(item)}: PortSentry 1.2 {why} "
                    f"and did not ignore {these}; portwarden ignores "
                    f"{shown(network)}",
                )
            )
    warnings += capped(
        missed, itemgetter(0), itemgetter(1), source, "entries PortSentry 1.2 did not honour"
    )
    return tuple(networks), warnings


def _portsentry_missed(line: str, item: str) -> str | None:
    """Why PortSentry 1.2 did not ignore the hosts of the IPv4 entry `item` (which we read from
    `line`), or None where it did. Its NeverBlock() took the address from the characters at
    the line's start that may be part of one (digits, '.', ':', '/'), so a line that starts
    with a blank, a tab or a byte-order mark gave it no address; and it read the mask with
    atoi() (255.255.255.0 is 255) and refused one above 32 bits ("Invalid netmask in config
    file ... Ignoring entry"). It watched IPv4 only: an IPv6 entry differs in nothing."""
    if ":" in item:
        return None
    if not line.startswith(item):
        first = line[0]
        start = _LEADING.get(first, f"white space (U+{ord(first):04X})")
        return f"read no address from a line that starts with {start}"
    mask = item.partition("/")[2]
    dotted = bool(mask) and not values.ascii_digits(mask)  # (four decimal parts: parse_network)
    if dotted and int(mask.split(".")[0]) > _PORTSENTRY_MASK_BITS_MAX:  # atoi() stops at '.'
        return "rejected this netmask"
    return None


def shown(network: Network) -> str:
    """`network` as an administrator writes it: a single address without its /32."""
    return str(network.network_address if network.num_addresses == 1 else network)


def outermost(networks: Iterable[Network]) -> list[Network]:
    """`networks` without those inside another one of them (127.0.0.1/32 in 127.0.0.0/8), in
    their order, each once: what a person needs to read."""
    listed = list(dict.fromkeys(networks))
    return [n for n in listed if not any(n != o and within(n, o) for o in listed)]


def within(inner: Network, outer: Network) -> bool:
    """Whether every address of `inner` is in `outer` (False across IP versions). Two networks
    overlap only when one is within the other."""
    if isinstance(inner, ipaddress.IPv4Network):
        return isinstance(outer, ipaddress.IPv4Network) and inner.subnet_of(outer)
    return isinstance(outer, ipaddress.IPv6Network) and inner.subnet_of(outer)
