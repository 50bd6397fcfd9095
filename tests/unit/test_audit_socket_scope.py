"""The audit reads only the sockets in its scope (audited addresses and wildcards, the port
range, not skipped; port 111 anywhere) before it counts them against AUDIT_SOCKETS_MAX: the
sock_diag filter program (checked here against a copy of the kernel's interpreter), the same
test in Python, and the cap on distinct sockets."""

import ipaddress
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.audit import sockets
from portwarden.audit.sockets import Scope, Socket
from portwarden.net import diagfilter
from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.diagfilter import AllOf, AnyOf, Condition

_OP = struct.Struct("=BBH")
_HOSTCOND = struct.Struct("=BBxxi")


def kernel_audit(code: bytes) -> None:
    """inet_diag_bc_audit(): every jump lands on an op, the end, or 4 bytes past it."""
    starts, offset = set(), 0
    while offset < len(code):
        starts.add(offset)
        kind, yes, _ = _OP.unpack_from(code, offset)
        assert yes >= 4 and yes % 4 == 0, "bad yes"
        offset += yes
    assert offset == len(code)
    for start in starts:
        kind, _, no = _OP.unpack_from(code, start)
        target = start + no
        assert (
            no % 4 == 0 and no >= 4 and (target in starts or target in (len(code), len(code) + 4))
        )


def kernel_run(code: bytes, address: IPAddress, port: int) -> bool:
    """inet_diag_bc_run() for the ops diagfilter makes (JMP, S_GE, S_LE, S_COND)."""
    offset = 0
    while offset < len(code):
        kind, yes, no = _OP.unpack_from(code, offset)
        if kind == 1:
            holds = False
        elif kind in (2, 3):
            bound = _OP.unpack_from(code, offset + 4)[2]
            holds = port >= bound if kind == 2 else port <= bound
        else:
            family, prefix, _ = _HOSTCOND.unpack_from(code, offset + 4)
            wanted = code[offset + 12 : offset + 12 + (4 if family == socket.AF_INET else 16)]
            mine = address.packed
            if family == socket.AF_INET and address.version == 6:
                mine = mine[12:] if mine[:12] == bytes(10) + b"\xff\xff" else b""
            elif (family == socket.AF_INET6) != (address.version == 6):
                mine = b""
            holds = mine == wanted and prefix == len(wanted) * 8
        offset += yes if holds else no
    return offset == len(code)


def holds(condition: Condition, address: IPAddress, port: int) -> bool:
    if isinstance(condition, AllOf):
        return all(holds(part, address, port) for part in condition.parts)
    if isinstance(condition, AnyOf):
        return any(holds(part, address, port) for part in condition.parts)
    return kernel_run(diagfilter.compile_filter(condition), address, port)  # one op: trusted


ADDRESSES = [
    ipaddress.ip_address(a)
    for a in ("0.0.0.0", "198.18.0.1", "127.0.0.1", "::", "2001:db8::1", "::ffff:198.18.0.1")
]
PORTS = st.sampled_from([0, 1, 110, 111, 112, 1023, 1024, 8080, 65534, 65535])
LEAVES = st.one_of(
    PORTS.map(diagfilter.port_at_least),
    PORTS.map(diagfilter.port_at_most),
    PORTS.map(diagfilter.port_is),
    PORTS.map(diagfilter.port_is_not),
    st.sampled_from(ADDRESSES[:5]).map(diagfilter.bound_to),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda parts: AllOf(tuple(parts))),
        st.lists(inner, max_size=4).map(lambda parts: AnyOf(tuple(parts))),
    ),
    max_leaves=12,
)


@given(CONDITIONS, st.sampled_from(ADDRESSES), PORTS)
def test_a_filter_program_accepts_exactly_what_its_condition_holds_for(
    condition: Condition, address: IPAddress, port: int
) -> None:
    code = diagfilter.compile_filter(condition)
    kernel_audit(code)
    assert kernel_run(code, address, port) == holds(condition, address, port)


def test_an_ipv4_address_matches_its_mapped_form_and_the_wildcard_only_itself() -> None:
    code = diagfilter.compile_filter(diagfilter.bound_to(ipaddress.ip_address("198.18.0.1")))
    assert kernel_run(code, ipaddress.ip_address("::ffff:198.18.0.1"), 1)
    assert not kernel_run(code, ipaddress.ip_address("0.0.0.0"), 1)
    wildcard = diagfilter.compile_filter(diagfilter.bound_to(ipaddress.ip_address("0.0.0.0")))
    assert kernel_run(wildcard, ipaddress.ip_address("0.0.0.0"), 1)
    assert not kernel_run(wildcard, ipaddress.ip_address("198.18.0.1"), 1)


def test_a_program_too_long_for_an_attribute_is_refused() -> None:
    many = AnyOf(
        tuple(diagfilter.bound_to(ipaddress.ip_address(f"2001:db8::{n:x}")) for n in range(3000))
    )
    with pytest.raises(ValueError):
        diagfilter.compile_filter(many)


A4, LOOP = ipaddress.ip_address("198.18.0.1"), ipaddress.ip_address("127.0.0.1")
SCOPE = Scope(frozenset({A4}), 1024, 60000, frozenset({(Proto.UDP, 5353)}))


@given(
    st.sampled_from(ADDRESSES + [LOOP]),
    PORTS | st.sampled_from([5353, 60001]),
    st.sampled_from(Proto),
)
def test_the_kernel_filter_and_the_scope_agree(address: IPAddress, port: int, proto: Proto) -> None:
    """The filter is checked while reading too (a kernel that ignores it, or /proc)."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # as the tables are read: the IPv4 address
    assert kernel_run(SCOPE.bytecode(proto), address, port) == SCOPE.takes(proto, address, port)


def test_the_scope_takes_the_audited_addresses_wildcards_range_and_111_anywhere() -> None:
    assert SCOPE.takes(Proto.UDP, LOOP, 111) and SCOPE.takes(Proto.TCP, A4, 8080)
    assert SCOPE.takes(Proto.UDP, ipaddress.ip_address("::"), 40000)
    assert not SCOPE.takes(Proto.UDP, LOOP, 40000)  # loopback is not audited
    assert not SCOPE.takes(Proto.UDP, A4, 5353) and SCOPE.takes(Proto.TCP, A4, 5353)
    assert not SCOPE.takes(Proto.TCP, A4, 60001) and not SCOPE.takes(Proto.TCP, A4, 80)
    only = Scope.port_only(111)
    assert only.takes(Proto.TCP, LOOP, 111) and not only.takes(Proto.TCP, A4, 8080)


def flood(count: int) -> Iterator[Socket]:
    """A user's `count` sockets on loopback, then root's and the user's on the audited address,
    one of them also opened 5 times with SO_REUSEPORT."""
    for n in range(count):
        yield Socket(Proto.UDP, LOOP, 20000 + n, 65534, n)
    for n in range(5):
        yield Socket(Proto.UDP, A4, 55531, 65534, 100_000 + n)
    yield Socket(Proto.UDP, A4, 39148, 0, 200_000)


def test_sockets_outside_the_scope_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "AUDIT_SOCKETS_MAX", 3)
    kept, cut = sockets._distinct(flood(1000), Proto.UDP, SCOPE)
    assert cut is None and sorted((s.port, s.uid) for s in kept) == [(39148, 0), (55531, 65534)]


def test_past_the_cap_sockets_are_counted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "AUDIT_SOCKETS_MAX", 1)
    kept, cut = sockets._distinct(flood(0), Proto.UDP, SCOPE)
    assert [s.port for s in kept] == [55531] and cut == 6  # 6 in scope, 2 distinct


def test_of_sockets_alike_the_lowest_uid_is_kept() -> None:
    alike = [
        Socket(Proto.UDP, A4, 5000, 1000, 1),
        Socket(Proto.UDP, A4, 5000, 0, 2),
        Socket(Proto.UDP, A4, 5000, 65534, 3),
    ]
    assert sockets._distinct(iter(alike), Proto.UDP, SCOPE) == ([alike[1]], None)
