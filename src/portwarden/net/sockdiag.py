"""Which local ports have a socket, asked of the kernel over sock_diag (NETLINK_SOCK_DIAG).

/proc/net/tcp walks every bucket of the kernel's connection hash table, whose size follows the
machine's memory, not the number of sockets: 3.4 ms per file on a 24 GiB host with seven
sockets, and the daemon's loop asks every REFRESH_S. A sock_diag dump that asks for listening
sockets only walks the listening table: a few dozen microseconds.

Message layout from linux/sock_diag.h and linux/inet_diag.h.
"""

import os
import socket
import struct

NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_SPORT_AT = 4  # in inet_diag_msg: family, state, timer, retrans, then the id's source port
TCP_LISTEN_ONLY = 1 << 10  # TCPF_LISTEN
ANY_STATE = 0xFFFFFFFF
_DUMP_WAIT_S = 1.0


def socket_ports(protocol: int, states: int) -> frozenset[int]:
    """Local ports of the IPv4 and IPv6 sockets of `protocol` in `states` (a bit mask of TCP
    states). Raises OSError when the kernel cannot answer (no inet_diag support)."""
    found: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(_DUMP_WAIT_S)
        for sequence, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            body = _REQUEST.pack(family, protocol, 0, 0, states)
            sock.send(_HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY,
                                   _NLM_F_REQUEST | _NLM_F_DUMP, sequence, 0) + body)  # fmt: skip
            while read_ports(found, sock.recv(65536), sequence):
                pass
    return frozenset(found)


def read_ports(found: set[int], data: bytes, sequence: int) -> bool:
    """Add the ports in one receive; False once the dump is done."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, number, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise OSError("sock_diag: malformed answer")
        if number == sequence:
            # A dump ends in NLMSG_DONE, whose int is negative when the kernel could not do it
            # (no diag module for the protocol: ENOENT); NLMSG_ERROR when it refused at once.
            code = 0
            if kind in (_NLMSG_DONE, _NLMSG_ERROR) and length >= _HEADER.size + 4:
                code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
            if code > 0:
                raise OSError(code, f"sock_diag: {os.strerror(code)}")
            if kind == _NLMSG_DONE:
                return False
            if kind == _SOCK_DIAG_BY_FAMILY and length >= _HEADER.size + _SPORT_AT + 2:
                found.add(struct.unpack_from("!H", data, offset + _HEADER.size + _SPORT_AT)[0])
        offset += (length + 3) & ~3
    return True
