"""This host's addresses, default gateways and host routes, read from the kernel over
rtnetlink; and its name servers, read from resolv.conf."""

import ipaddress
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from portwarden import limits
from portwarden.net import netlink
from portwarden.net.addresses import IPAddress


def unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address of an IPv4-mapped one (`::ffff:a.b.c.d`, as dual-stack sockets show
    IPv4 peers and bindings); any other address as it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_RTM_GETADDR = 22
_RTM_GETROUTE = 26
_RTM_GETNEXTHOP = 106
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_TABLE = 1, 4, 5, 15
_RTA_MULTIPATH = 9  # a list of next hops (struct rtnexthop, each with its own attributes)
_RTA_VIA = 18  # a next hop of another family (an IPv6 gateway for IPv4): family, address
_RTA_NH_ID = 30  # a next-hop object's id (`ip route add ... nhid N`)
_NHA_ID, _NHA_GROUP, _NHA_GATEWAY = 1, 2, 6  # a next-hop object: its id, members, gateway
_IFA_ADDRESS = 1
_IFA_LOCAL = 2
_IFA_BROADCAST = 4
_IFA_FLAGS = 8  # all the address flags as 32 bits; the header's byte holds only the low 8
# IPv6 addresses that come and go on their own: privacy (temporary) addresses, and ones still
# in or failed in duplicate address detection, or deprecated (no new connections use them).
# For IPv4 the same bits mean other things (0x01 is a secondary address): IPv6 only.
IFA_F_TEMPORARY, IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x01, 0x08, 0x20, 0x40
TRANSIENT = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE

_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
_RTATTR = struct.Struct("=HH")  # length, type
_RTNEXTHOP = struct.Struct("=HBBi")  # length, flags, hops, interface index; attributes follow
_RTVIA = struct.Struct("=H")  # family; the address follows
_NHMSG = struct.Struct("=BBBBI")  # family, scope, protocol, reserved, flags
_NEXTHOP_GRP = struct.Struct("=IBBH")  # a group member: id, weight, reserved
_NH_ID = struct.Struct("=I")
_RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst len, src len, tos, table, proto, scope, type, flags


def _dump(request_type: int, header: bytes) -> list[bytes]:
    """The messages of one rtnetlink dump, each without its netlink header."""
    return netlink.dump(socket.NETLINK_ROUTE, [(request_type, header)], "rtnetlink")


def _attributes(message: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _RTATTR.size <= len(message):
        length, kind = _RTATTR.unpack_from(message, offset)
        if length < _RTATTR.size:
            break
        found.setdefault(kind, message[offset + _RTATTR.size : offset + length])
        offset += netlink.align(length)
    return found


_SIZES = {int(socket.AF_INET): 4, int(socket.AF_INET6): 16}


class InterfaceAddress(NamedTuple):
    """One address of one network device (the index is the IPv6 scope of a link-local one)."""

    device: str
    ifindex: int
    address: IPAddress
    flags: int = 0  # IFA_F_* bits

    @property
    def transient(self) -> bool:
        """A temporary, tentative, DAD-failed or deprecated IPv6 address."""
        return self.address.version == 6 and bool(self.flags & TRANSIENT)


def _address_messages() -> Iterator[tuple[int, int, int, int, dict[int, bytes]]]:
    """Each IPv4 and IPv6 address message of the current network namespace, read now: family,
    prefix length, flags (the header's), interface index, attributes."""
    for message in _dump(_RTM_GETADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if len(message) < _IFADDRMSG.size or message[0] not in _SIZES:
            continue
        family, prefix, header_flags, _, index = _IFADDRMSG.unpack_from(message)
        yield family, prefix, header_flags, index, _attributes(message, _IFADDRMSG.size)


def _own_address(family: int, attributes: dict[int, bytes]) -> IPAddress | None:
    """IFA_LOCAL is this end's address; IFA_ADDRESS is the peer's on a point-to-point link."""
    value = attributes.get(_IFA_LOCAL) or attributes.get(_IFA_ADDRESS, b"")
    return ipaddress.ip_address(value) if len(value) == _SIZES[family] else None


def interface_addresses() -> tuple[InterfaceAddress, ...]:
    """Every address of every device in the current network namespace, read now."""
    found: dict[InterfaceAddress, None] = {}
    for family, _, header_flags, index, attributes in _address_messages():
        try:
            device = socket.if_indextoname(index)
        except OSError:  # the device went away while we read
            continue
        extended = attributes.get(_IFA_FLAGS, b"")
        flags = struct.unpack("=I", extended)[0] if len(extended) == 4 else header_flags
        address = _own_address(family, attributes)
        if address is not None:
            found[InterfaceAddress(device, index, address, flags)] = None
    return tuple(found)


def broadcast_addresses() -> frozenset[ipaddress.IPv4Address]:
    """The broadcast addresses of this host's IPv4 subnets (each address's IFA_BROADCAST, and
    the last address of its prefix) and their network addresses, for prefixes shorter than
    /31 (a /31 or /32 has neither): no packet comes from one, so a probe that claims to is
    forged, and blocking it would cut this host off its own subnet's broadcasts."""
    found: set[ipaddress.IPv4Address] = set()
    for family, prefix, _, _, attributes in _address_messages():
        address = _own_address(family, attributes)
        if not isinstance(address, ipaddress.IPv4Address):
            continue
        broadcast = attributes.get(_IFA_BROADCAST, b"")
        if len(broadcast) == 4:
            found.add(ipaddress.IPv4Address(broadcast))
        if prefix < 31:
            subnet = ipaddress.IPv4Network((address, prefix), strict=False)
            found.update((subnet.network_address, subnet.broadcast_address))
    return frozenset(found)


def local_addresses() -> frozenset[IPAddress]:
    """Every address configured on any interface of the current network namespace."""
    return frozenset(entry.address for entry in interface_addresses())


def default_gateways() -> frozenset[IPAddress]:
    """The next hops of every default route (IPv4 and IPv6) in this network namespace: one
    gateway, or each of a multipath route's (`nexthop via A nexthop via B`), of either family
    (`via inet6 ...` for IPv4), or those of its next-hop object (`nhid N`, see
    _object_gateways)."""
    found: set[IPAddress] = set()
    objects: set[int] = set()
    for message in _dump(_RTM_GETROUTE, _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)):
        if len(message) < _RTMSG.size or message[0] not in _SIZES or message[1] != 0:
            continue  # not IP, or not a default route (destination prefix length 0)
        attributes = _attributes(message, _RTMSG.size)
        found.update(_next_hops(attributes, message[0]))
        object_id = attributes.get(_RTA_NH_ID, b"")
        if len(object_id) == _NH_ID.size:
            objects.add(_NH_ID.unpack(object_id)[0])
        hops = attributes.get(_RTA_MULTIPATH, b"")
        offset = 0
        while offset + _RTNEXTHOP.size <= len(hops):
            length = _RTNEXTHOP.unpack_from(hops, offset)[0]
            if length < _RTNEXTHOP.size:
                break
            hop = _attributes(hops[offset : offset + length], _RTNEXTHOP.size)
            found.update(_next_hops(hop, message[0]))
            offset += netlink.align(length)
    if objects:
        found.update(_object_gateways(objects))
    return frozenset(found)


def _object_gateways(wanted: set[int]) -> set[IPAddress]:
    """The gateways of the next-hop objects `wanted` (ids), read with RTM_GETNEXTHOP: each
    one's own, or those of a group's members (NHA_GROUP). With the sysctl
    net.ipv4.nexthop_compat_mode=0 a route through one carries only its id, no gateway."""
    gateways: dict[int, IPAddress] = {}
    members: dict[int, list[int]] = {}
    for message in _dump(_RTM_GETNEXTHOP, _NHMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
        if len(message) < _NHMSG.size:
            continue
        attributes = _attributes(message, _NHMSG.size)
        raw_id, gateway = attributes.get(_NHA_ID, b""), attributes.get(_NHA_GATEWAY, b"")
        if len(raw_id) != _NH_ID.size:
            continue
        object_id = _NH_ID.unpack(raw_id)[0]
        if len(gateway) in _SIZES.values():
            gateways[object_id] = ipaddress.ip_address(gateway)
        group = attributes.get(_NHA_GROUP, b"")
        members[object_id] = [
            _NEXTHOP_GRP.unpack_from(group, at)[0]
            for at in range(0, len(group) - _NEXTHOP_GRP.size + 1, _NEXTHOP_GRP.size)
        ]
    found: set[IPAddress] = set()
    for _ in range(limits.NEXTHOP_DEPTH_MAX):
        found.update(gateways[i] for i in wanted if i in gateways)
        wanted = {m for i in wanted for m in members.get(i, ())}
    return found


def _next_hops(attributes: dict[int, bytes], family: int) -> list[IPAddress]:
    """The gateway in RTA_GATEWAY (the route's family) or RTA_VIA (any family)."""
    found = []
    gateway = attributes.get(_RTA_GATEWAY, b"")
    if len(gateway) == _SIZES[family]:
        found.append(ipaddress.ip_address(gateway))
    via = attributes.get(_RTA_VIA, b"")
    if len(via) >= _RTVIA.size:
        via_family = _RTVIA.unpack_from(via)[0]
        address = via[_RTVIA.size :]
        if len(address) == _SIZES.get(via_family):
            found.append(ipaddress.ip_address(address))
    return found


RESOLV_CONF = Path("/etc/resolv.conf")
# systemd-resolved: /etc/resolv.conf names only its stub on loopback; the servers it asks are here.
RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
_RESOLVED_STUBS = frozenset(ipaddress.ip_address(a) for a in ("127.0.0.53", "127.0.0.54"))


def name_servers(
    path: Path = RESOLV_CONF, upstream: Path = RESOLVED_UPSTREAM
) -> frozenset[IPAddress]:
    """The `nameserver` addresses of `path`; when it names only systemd-resolved's stub, also
    those of `upstream` (the servers the stub asks), if it is there."""
    found = _nameserver_lines(path)
    if found and found <= _RESOLVED_STUBS:
        found |= _nameserver_lines(upstream)
    return found


def _nameserver_lines(path: Path) -> frozenset[IPAddress]:
    found: set[IPAddress] = set()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.add(ipaddress.ip_address(fields[1].partition("%")[0]))
            except ValueError:
                continue
    return frozenset(found)


# rtm_type (linux/rtnetlink.h), named as `ip route` names them.
_ROUTE_TYPES = (
    "unspec",
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
    "xresolve",
)
BLOCKING_TYPES = frozenset({"blackhole", "unreachable", "prohibit"})  # what drops the address
_MAIN_TABLE = 254


class HostRoute(NamedTuple):
    """A route to exactly one address (a /32 or a /128), as `ip route` would show it."""

    kind: str  # unicast, blackhole, unreachable, prohibit, ... (rtm_type)
    gateways: tuple[IPAddress, ...]
    device: str | None
    table: int

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_TYPES

    def __str__(self) -> str:
        words = [self.kind, *(f"via {g}" for g in self.gateways)]
        if self.device is not None:
            words.append(f"dev {self.device}")
        if self.table != _MAIN_TABLE:
            words.append(f"table {self.table}")
        return " ".join(words)


def host_routes(address: IPAddress) -> list[HostRoute]:
    """The routes to exactly `address` in every routing table (`ip route show table all exact
    A`, the local table aside: an address of this host's is never blocked). Raises OSError."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    found = []
    for message in _dump(_RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
        if len(message) < _RTMSG.size or message[0] != family:
            continue
        _, dst_len, _, _, table, _, _, kind, _ = _RTMSG.unpack_from(message)
        attributes = _attributes(message, _RTMSG.size)
        if dst_len != address.max_prefixlen or attributes.get(_RTA_DST) != address.packed:
            continue
        wide_table = attributes.get(_RTA_TABLE, b"")
        if len(wide_table) == 4:
            table = struct.unpack("=I", wide_table)[0]
        if table == 255:  # RT_TABLE_LOCAL
            continue
        found.append(
            HostRoute(
                _ROUTE_TYPES[kind] if kind < len(_ROUTE_TYPES) else str(kind),
                tuple(_next_hops(attributes, family)),
                _device(attributes.get(_RTA_OIF, b"")),
                table,
            )
        )
    return found


def _device(oif: bytes) -> str | None:
    if len(oif) != 4:
        return None
    try:
        return socket.if_indextoname(struct.unpack("=i", oif)[0])
    except OSError:  # gone meanwhile (or index 0)
        return None


def scope_index(scope: str) -> int:
    """The index of the device an IPv6 scope names (`eth0` in `fe80::1%eth0`, or the index
    itself in digits, `fe80::1%2`), which bind() and connect() need for a link-local address.
    Raises ValueError when this host has no such device."""
    try:
        return socket.if_nametoindex(scope)
    except (OSError, ValueError):  # ValueError: a NUL in it
        pass
    if scope.isascii() and scope.isdigit():
        try:
            socket.if_indextoname(int(scope))
            return int(scope)
        except (OSError, OverflowError):
            pass
    raise ValueError(f"this host has no device {scope}")
