"""This host's own interface addresses, read from the kernel over rtnetlink (no subprocess)."""

import ipaddress
import socket
import struct

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_RTM_GETADDR = 22
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_IFA_ADDRESS = 1
_IFA_LOCAL = 2

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
_RTATTR = struct.Struct("=HH")  # length, type


def _align(n: int) -> int:
    return (n + 3) & ~3


def local_addresses() -> frozenset[IPAddress]:
    """Every address configured on any interface of the current network namespace."""
    found: set[IPAddress] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        request = _NLMSGHDR.pack(
            _NLMSGHDR.size + _IFADDRMSG.size, _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0
        ) + _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.sendto(request, (0, 0))
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    return frozenset(found)
                if kind == _NLMSG_DONE:
                    return frozenset(found)
                if kind == _NLMSG_ERROR:
                    raise OSError("rtnetlink address dump failed")
                found.update(_addresses(data[offset + _NLMSGHDR.size : offset + length]))
                offset += _align(length)


def _addresses(message: bytes) -> list[IPAddress]:
    if len(message) < _IFADDRMSG.size:
        return []
    family = message[0]
    size = {int(socket.AF_INET): 4, int(socket.AF_INET6): 16}.get(family)
    if size is None:
        return []
    result: list[IPAddress] = []
    offset = _IFADDRMSG.size
    while offset + _RTATTR.size <= len(message):
        length, kind = _RTATTR.unpack_from(message, offset)
        if length < _RTATTR.size:
            break
        payload = message[offset + _RTATTR.size : offset + length]
        if kind in (_IFA_ADDRESS, _IFA_LOCAL) and len(payload) == size:
            result.append(ipaddress.ip_address(payload))
        offset += _align(length)
    return result
