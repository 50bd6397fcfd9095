"""Parsing sock_diag answers (netlink.read_dump, sockdiag.source_ports): ports from
SOCK_DIAG_BY_FAMILY messages, the end of the dump, errors, and nothing but OSError from damaged
bytes."""

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
