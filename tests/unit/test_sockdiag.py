"""Parsing sock_diag answers (netlink.read_dump, sockdiag.source_ports, sockdiag.parse_message):
ports, devices and V6ONLY from SOCK_DIAG_BY_FAMILY messages, the end of the dump, errors, and
nothing but OSError (or None) from damaged bytes."""

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.net import sockdiag
from portwarden.net.netlink import read_dump
from portwarden.net.sockdiag import source_ports


def read_ports(found: set[int], data: bytes, sequence: int) -> bool:
    """One receive of a sock_diag dump, its ports added to `found`; False once it is done."""
    answers: list[bytes] = []
    try:
        return read_dump(data, sequence, answers, "sock_diag")
    finally:
        found |= source_ports(answers)


def message(kind: int, sequence: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, sequence, 0) + body


def socket_message(port: int, sequence: int = 1) -> bytes:
    return message(20, sequence, bytes([2, 10, 0, 0]) + struct.pack("!H", port) + bytes(66))


def test_ports_until_done_and_other_sequences_ignored() -> None:
    found: set[int] = set()
    assert read_ports(found, socket_message(22) + socket_message(25, sequence=9), 1)
    assert not read_ports(found, socket_message(80) + message(3, 1, bytes(4)), 1)
    assert found == {22, 80}


@pytest.mark.parametrize("kind", [2, 3])  # NLMSG_ERROR at once, or NLMSG_DONE with an error
def test_an_error_answer_is_an_oserror(kind: int) -> None:
    """A kernel without the protocol's diag module ends the dump with DONE and -ENOENT: that
    must send the caller to /proc, not read as "no sockets"."""
    with pytest.raises(OSError, match="sock_diag: No such file or directory"):
        read_ports(set(), socket_message(22) + message(kind, 1, struct.pack("=i", -2)), 1)


@given(st.binary(max_size=120))
def test_damaged_answers_raise_oserror_or_read(data: bytes) -> None:
    with contextlib.suppress(OSError):
        read_ports(set(), data, 1)


def diag_message(
    family: int,
    address: bytes,
    port: int,
    device: int,
    uid: int,
    inode: int,
    attributes: bytes = b"",
) -> bytes:
    """An inet_diag_msg as the kernel writes it, with rtattr attributes after it."""
    head = bytes([family, 10, 0, 0]) + struct.pack("!HH", port, 0)
    body = address.ljust(16, b"\0") + bytes(16) + struct.pack("=I8x", device)
    return head + body + struct.pack("=IIIII", 0, 0, 0, uid, inode) + attributes


def attribute(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


SHUTDOWN, V6ONLY = attribute(8, b"\0"), 11


def test_diag_sockets_carry_device_and_v6only() -> None:
    v6 = ipaddress.IPv6Address("2001:db8::1")
    only = diag_message(10, v6.packed, 8080, 2, 65534, 77, SHUTDOWN + attribute(V6ONLY, b"\1"))
    assert sockdiag.parse_message(only) == sockdiag.DiagSocket(v6, 8080, 65534, 77, 2, True)
    dual = diag_message(10, bytes(16), 53, 0, 0, 78, attribute(V6ONLY, b"\0"))
    assert sockdiag.parse_message(dual) == sockdiag.DiagSocket(
        ipaddress.IPv6Address("::"), 53, 0, 78, 0, False
    )
    mapped = ipaddress.IPv6Address("::ffff:198.18.0.1").packed
    assert sockdiag.parse_message(diag_message(10, mapped, 80, 0, 0, 79)) == sockdiag.DiagSocket(
        ipaddress.IPv4Address("198.18.0.1"), 80, 0, 79, 0, False
    )
    v4 = diag_message(2, bytes([198, 18, 0, 1]), 22, 3, 0, 80)
    assert sockdiag.parse_message(v4) == sockdiag.DiagSocket(
        ipaddress.IPv4Address("198.18.0.1"), 22, 0, 80, 3, False
    )
    assert sockdiag.parse_message(v4[:71]) is None
    assert sockdiag.parse_message(diag_message(1, bytes(16), 22, 0, 0, 1)) is None
    bad_length = v4 + struct.pack("=HH", 200, V6ONLY) + b"\1"
    assert sockdiag.parse_message(bad_length) == sockdiag.parse_message(v4)


@given(st.binary(max_size=200))
def test_any_diag_message_parses_or_is_none(data: bytes) -> None:
    found = sockdiag.parse_message(data)
    assert found is None or 0 <= found.port <= 65535
