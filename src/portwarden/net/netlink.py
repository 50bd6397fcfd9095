"""Netlink, the kernel's message socket: the message framing and the dump that rtnetlink
(addresses, routes), sock_diag (ports with a socket) and nftables share.

Layout from linux/netlink.h.
"""

import os
import socket
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from portwarden import limits

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3


class Message(NamedTuple):
    kind: int
    sequence: int
    payload: bytes  # what follows the netlink header


def align(length: int) -> int:
    return (length + 3) & ~3


def message(kind: int, flags: int, sequence: int, payload: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(payload), kind, flags, sequence, 0) + payload


def messages(data: bytes) -> Iterator[Message]:
    """The messages of one receive. Raises OSError at a length that does not fit."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _, sequence, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            raise OSError("netlink: malformed answer")
        yield Message(kind, sequence, data[offset + HEADER.size : offset + length])
        offset += align(length)


def error_code(found: Message) -> int:
    """The errno an NLMSG_ERROR or NLMSG_DONE carries: 0 for an acknowledgement or a clean end.
    A dump ends in NLMSG_DONE, whose int is negative when the kernel could not do it (sock_diag
    without a diag module for the protocol: ENOENT)."""
    if found.kind in (NLMSG_ERROR, NLMSG_DONE) and len(found.payload) >= 4:
        return -struct.unpack_from("=i", found.payload)[0]
    return 0


def read_dump(data: bytes, sequence: int, into: list[bytes], name: str) -> bool:
    """Add the payloads of dump `sequence` in one receive to `into`; False once it is done.
    Raises OSError, named `name`, when the kernel could not do it."""
    for found in messages(data):
        if found.sequence != sequence:
            continue
        code = error_code(found)
        if code > 0:
            raise OSError(code, f"{name}: {os.strerror(code)}")
        if found.kind == NLMSG_DONE:
            return False
        if found.kind != NLMSG_ERROR:
            into.append(found.payload)
    return True


def dump(protocol: int, requests: Iterable[tuple[int, bytes]], name: str) -> list[bytes]:
    """The payloads of every message the kernel answers to each dump request (type, body), the
    requests one after the other on one socket. Raises OSError (named `name`)."""
    return list(dump_each(protocol, requests, name))


def dump_each(protocol: int, requests: Iterable[tuple[int, bytes]], name: str) -> Iterator[bytes]:
    """The same, one receive at a time: a caller that keeps only some of a long dump (the port
    audit, among a local user's flood of sockets) never holds all of it."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol) as sock:
        sock.settimeout(limits.NETLINK_ANSWER_WAIT_S)
        for sequence, (kind, body) in enumerate(requests, start=1):
            sock.send(message(kind, NLM_F_REQUEST | NLM_F_DUMP, sequence, body))
            more = True
            while more:
                found: list[bytes] = []
                more = read_dump(sock.recv(65536), sequence, found, name)
                yield from found
