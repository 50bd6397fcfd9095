"""The portmapper client: PMAPPROC_DUMP (version 2) and RPCBPROC_DUMP (version 3) replies parsed
as hostile bytes, and whole exchanges with small fake portmappers on loopback (record marking,
deadlines, UDP resends, refusals, the fallback to version 2)."""

import contextlib
import ipaddress
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.net.addresses import Proto
from portwarden.net.portmapper import (
    Mapping,
    PortmapperDenied,
    PortmapperError,
    Registration,
    SourceAddressError,
    dump,
    parse_dump_reply,
    parse_rpcb_dump_reply,
    registrations,
)

TCP, UDP = Proto.TCP, Proto.UDP
ENTRIES = [(100000, 2, 6, 111), (100005, 3, 17, 20048)]
MAPPINGS = (Mapping(100000, 2, TCP, 111), Mapping(100005, 3, UDP, 20048))
LAST = 0x8000_0000


def accepted(xid: int, entries: list[tuple[int, int, int, int]], verifier: bytes = b"") -> bytes:
    """A successful reply: accepted, AUTH_NULL verifier (with this body), the list of entries."""
    body = struct.pack("!5I", xid, 1, 0, 0, len(verifier)) + verifier
    body += b"\0" * (-len(verifier) % 4) + struct.pack("!I", 0)
    for entry in entries:
        body += struct.pack("!5I", 1, *entry)
    return body + struct.pack("!I", 0)


def xdr_string(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data + b"\0" * (-len(data) % 4)


RpcbEntry = tuple[int, int, bytes, bytes, bytes]  # program, version, netid, address, owner


def rpcb_accepted(xid: int, entries: list[RpcbEntry]) -> bytes:
    """A successful RPCBPROC_DUMP reply: accepted, empty AUTH_NULL verifier, the rpcb list."""
    body = struct.pack("!6I", xid, 1, 0, 0, 0, 0)
    for program, version, *strings in entries:
        body += struct.pack("!3I", 1, program, version) + b"".join(map(xdr_string, strings))
    return body + struct.pack("!I", 0)


def mismatch(xid: int) -> bytes:
    """PROG_MISMATCH, as an old portmap answers a version 3 call: it speaks 2 to 2."""
    return struct.pack("!8I", xid, 1, 0, 0, 0, 2, 2, 2)


RPCB_ENTRIES: list[RpcbEntry] = [
    (100000, 4, b"tcp6", b"::.0.111", b"superuser"),
    (100000, 3, b"local", b"/run/rpcbind.sock", b"superuser"),  # no port: left out
    (100005, 3, b"udp", b"0.0.0.0.78.80", b"superuser"),
    (100024, 1, b"tcp", b"198.18.0.1.156.66", b"65534"),
    (100021, 4, b"udp6", b"2001:db8::1.3.235", b"unknown"),
]
REGISTRATIONS = (
    Registration(100000, 4, TCP, 111, "superuser", ipaddress.ip_address("::")),
    Registration(100005, 3, UDP, 20048, "superuser", ipaddress.ip_address("0.0.0.0")),
    Registration(100024, 1, TCP, 40002, "65534", ipaddress.ip_address("198.18.0.1")),
    Registration(100021, 4, UDP, 1003, "unknown", ipaddress.ip_address("2001:db8::1")),
)


def test_rpcb_dump_reply_gives_owners_and_leaves_out_what_names_no_port() -> None:
    odd = [
        (1, 1, b"sctp", b"0.0.0.0.1.1", b"superuser"),  # not TCP or UDP
        (2, 1, b"tcp", b"0.0.0.0.0.0", b"superuser"),  # port 0
        (3, 1, b"tcp", b"0.0.0.0.256.1", b"superuser"),  # not a byte
        (4, 1, b"tcp", b"0.0.0.0.1.0001", b"superuser"),
        (5, 1, b"tcp", b".1.1", b"superuser"),  # no host part
        (6, 1, b"tcp", b"1.1", b"superuser"),
        (7, 1, b"tcp", b"0.0.0.0.-1.1", b"superuser"),
        (8, 1, b"tcp", b"0.0.0.0.\xd9\xa1.1", b"superuser"),  # an Arabic-Indic digit one
        (9, 1, b"tcp", b"", b""),
        (14, 1, b"tcp", b"host.example.1.1", b"superuser"),  # a host that is not an address
        (15, 1, b"tcp", b"0.0.0.0.1", b"superuser"),
        (10, 1, b"tcp", b"0.0.0.0.1.1", b"x" * 129),  # longer than the cap: stepped over
        (11, 1, b"tcp" * 43, b"0.0.0.0.1.1", b"superuser"),
        (16, 1, b"tcp", b"::.1.1", b"superuser"),  # an IPv6 address for an IPv4 netid
        (17, 1, b"udp6", b"0.0.0.0.1.1", b"superuser"),  # and the reverse
    ]
    reply = rpcb_accepted(7, [*RPCB_ENTRIES[:3], *odd, *RPCB_ENTRIES[3:]])
    assert parse_rpcb_dump_reply(reply, 7) == REGISTRATIONS
    longest = (12, 1, b"tcp", b"0.0.0.0.255.255", b"1" * 128)
    hostile = (13, 1, b"udp6", b"::.0.7", b"\n\xff root")
    assert parse_rpcb_dump_reply(rpcb_accepted(7, [longest, hostile]), 7) == (
        Registration(12, 1, TCP, 65535, "1" * 128, ipaddress.ip_address("0.0.0.0")),
        Registration(13, 1, UDP, 7, "\n\ufffd root", ipaddress.ip_address("::")),  # one_line
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (rpcb_accepted(7, RPCB_ENTRIES)[:-8], "truncated reply"),
        (rpcb_accepted(7, RPCB_ENTRIES)[:-4], "truncated reply"),  # no end of the list
        (struct.pack("!9I", 7, 1, 0, 0, 0, 0, 1, 1, 1), "truncated reply"),  # no netid
        (struct.pack("!10I", 7, 1, 0, 0, 0, 0, 1, 1, 1, 0xFFFF_FFFF), "truncated reply"),
        (struct.pack("!10I", 7, 1, 0, 0, 0, 0, 1, 1, 1, 3) + b"tcp", "truncated reply"),  # pad
        (struct.pack("!7I", 7, 1, 0, 0, 0, 0, 0x100), r"malformed reply \(bad list marker\)"),
        (rpcb_accepted(8, RPCB_ENTRIES), "answer is not an ONC RPC reply to our call"),
        (mismatch(7), "program version mismatch"),
        (struct.pack("!6I", 7, 1, 0, 0, 0, 3), "procedure unavailable"),
        (
            rpcb_accepted(7, RPCB_ENTRIES * (limits.PORTMAP_REPLY_BYTES_MAX // 250)),
            "reply larger than",
        ),
    ],
)
def test_bad_rpcb_replies_are_malformed_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(PortmapperError, match=message) as caught:
        parse_rpcb_dump_reply(data, 7)
    assert caught.value.reason == "malformed"


def test_rpcb_denial_is_portmapper_denied() -> None:
    with pytest.raises(PortmapperDenied, match="too weak"):
        parse_rpcb_dump_reply(struct.pack("!5I", 7, 1, 1, 1, 5), 7)


@given(st.binary(max_size=400))
def test_any_bytes_after_a_good_rpcb_header_parse_or_raise_portmapper_error(tail: bytes) -> None:
    try:
        found = parse_rpcb_dump_reply(struct.pack("!6I", 7, 1, 0, 0, 0, 0) + tail, 7)
    except PortmapperError as error:
        assert error.reason in ("malformed", "denied") and "\n" not in str(error)
    else:
        assert all(0 < r.port <= 65535 and isinstance(r.proto, Proto) for r in found)
        assert all(r.owner is not None and len(r.owner) <= 128 for r in found)


@given(st.binary(max_size=100), st.integers(0, 2**32 - 1))
def test_any_bytes_at_all_parse_as_rpcb_or_raise_portmapper_error(data: bytes, xid: int) -> None:
    with contextlib.suppress(PortmapperError):
        parse_rpcb_dump_reply(data, xid)


_NETID = st.sampled_from([b"tcp", b"tcp6", b"udp", b"udp6", b"local", b"rdma", b""])
_ADDRESS = st.one_of(
    st.tuples(
        st.sampled_from([b"0.0.0.0", b"::", b"198.18.0.1"]),
        st.integers(0, 300),
        st.integers(0, 300),
    ).map(lambda t: b"%s.%d.%d" % t),
    st.binary(max_size=150),
)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            _NETID,
            _ADDRESS,
            st.binary(max_size=150),
        ),
        max_size=30,
    )
)
def test_any_rpcb_dump_round_trips(entries: list[RpcbEntry]) -> None:
    protos = {b"tcp": TCP, b"tcp6": TCP, b"udp": UDP, b"udp6": UDP}
    kept = []
    for program, version, netid, address, owner in entries:
        universal = re.fullmatch(rb"(.+)\.([0-9]{1,3})\.([0-9]{1,3})", address, re.DOTALL)
        high, low = (int(universal[2]), int(universal[3])) if universal else (0, 0)
        port = high * 256 + low if high < 256 and low < 256 else 0
        host = None
        with contextlib.suppress(ValueError):
            host = ipaddress.ip_address(universal[1].decode("ascii")) if universal else None
        family = host is not None and (host.version == 6) == netid.endswith(b"6")
        if netid in protos and port and family and len(address) <= 128 and len(owner) <= 128:
            owner_text = owner.decode("ascii", "replace")
            kept.append(Registration(program, version, protos[netid], port, owner_text, host))
    assert parse_rpcb_dump_reply(rpcb_accepted(1, entries), 1) == tuple(kept)


@pytest.mark.parametrize(
    ("host", "address", "dual_stack", "served"),
    [
        ("0.0.0.0", "198.18.0.1", False, True),
        ("0.0.0.0", "2001:db8::1", False, False),  # tcp at 0.0.0.0 is an IPv4 socket
        ("0.0.0.0", "2001:db8::1", True, False),
        ("::", "2001:db8::1", False, True),
        ("::", "198.18.0.1", False, False),  # tcp6 at :: with IPV6_V6ONLY, or not known
        ("::", "198.18.0.1", True, True),  # a dual-stack socket takes IPv4 too
        ("198.18.0.1", "198.18.0.1", False, True),
        ("198.18.0.1", "198.18.0.2", True, False),
        ("2001:db8::1", "198.18.0.1", True, False),
        (None, "2001:db8::1", False, True),  # version 2: no address said
    ],
)
def test_a_registration_serves_the_addresses_of_its_family(
    host: str | None, address: str, dual_stack: bool, served: bool
) -> None:
    at = None if host is None else ipaddress.ip_address(host)
    registration = Registration(100005, 3, TCP, 20048, "superuser", at)
    assert registration.serves(ipaddress.ip_address(address), dual_stack) is served


def test_dump_reply_is_parsed_and_entries_without_tcp_udp_or_port_are_left_out() -> None:
    data = accepted(7, [*ENTRIES, (1, 1, 99, 5), (2, 1, 6, 0), (3, 1, 17, 65536)], b"v" * 5)
    assert parse_dump_reply(data, 7) == MAPPINGS
    assert parse_dump_reply(accepted(7, [], b"v" * 400), 7) == ()  # the largest verifier allowed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated reply"),
        (accepted(8, ENTRIES), "answer is not an ONC RPC reply to our call"),
        (struct.pack("!2I", 7, 0), "answer is not an ONC RPC reply"),  # a CALL, not a REPLY
        (accepted(7, ENTRIES)[:-8], "truncated reply"),
        (struct.pack("!3I", 7, 1, 2), r"malformed reply \(reply status 2\)"),
        (struct.pack("!5I", 7, 1, 0, 0, 401), "verifier longer than 400 bytes"),
        (struct.pack("!5I", 7, 1, 0, 0, 400) + b"v" * 396, "truncated reply"),
        (struct.pack("!6I", 7, 1, 0, 0, 0, 1), "program unavailable"),
        (struct.pack("!6I", 7, 1, 0, 0, 0, 77), "accept status 77"),
        (struct.pack("!7I", 7, 1, 0, 0, 0, 0, 2), r"malformed reply \(bad list marker\)"),
        (struct.pack("!3I", 7, 1, 1), "truncated reply"),  # a denial cut short is no denial
        (accepted(7, [(1, 1, 6, 1)] * (limits.PORTMAP_REPLY_BYTES_MAX // 20)), "reply larger than"),
    ],
)
def test_bad_replies_are_malformed_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(PortmapperError, match=message) as caught:
        parse_dump_reply(data, 7)
    assert caught.value.reason == "malformed" and type(caught.value) is PortmapperError


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ((1, 5), "authentication error (credential too weak)"),  # rpcbind and TCP Wrappers
        ((1, 99), "authentication error (auth_stat 99)"),
        ((0, 2, 2), "RPC version mismatch"),
        ((7,), "denied (reject_stat 7)"),
    ],
)
def test_denials_are_portmapper_denied(body: tuple[int, ...], message: str) -> None:
    with pytest.raises(PortmapperDenied) as caught:
        parse_dump_reply(struct.pack(f"!{3 + len(body)}I", 7, 1, 1, *body), 7)
    assert (caught.value.reason, str(caught.value)) == ("denied", message)


@given(st.binary(max_size=400))
def test_any_bytes_after_a_good_header_parse_or_raise_portmapper_error(tail: bytes) -> None:
    try:
        mappings = parse_dump_reply(struct.pack("!6I", 7, 1, 0, 0, 0, 0) + tail, 7)
    except PortmapperError as error:
        assert error.reason in ("malformed", "denied") and "\n" not in str(error)
    else:
        assert all(0 < m.port <= 65535 and isinstance(m.proto, Proto) for m in mappings)


@given(st.binary(max_size=100), st.integers(0, 2**32 - 1))
def test_any_bytes_at_all_parse_or_raise_portmapper_error(data: bytes, xid: int) -> None:
    with contextlib.suppress(PortmapperError):
        parse_dump_reply(data, xid)


@given(st.lists(st.tuples(*[st.integers(0, 2**32 - 1)] * 4), max_size=50))
def test_any_dump_round_trips(entries: list[tuple[int, int, int, int]]) -> None:
    kept = tuple(
        Mapping(p, v, {6: TCP, 17: UDP}[proto], port)
        for p, v, proto, port in entries
        if proto in (6, 17) and 0 < port <= 65535
    )
    assert parse_dump_reply(accepted(1, entries), 1) == kept


# Whole exchanges with a fake portmapper on loopback: each gets the call's transaction id.

Script = Callable[[socket.socket, int], None]


@contextmanager
def tcp_portmapper(
    script: Script, accept: bool = True, versions: list[int] | None = None
) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that runs `script` on one connection; yields its port. The
    call's program version goes into `versions`."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn, contextlib.suppress(OSError):  # the client may be gone before the script ends
            call = conn.recv(44)
            if versions is not None:
                versions.append(struct.unpack("!I", call[20:24])[0])  # after the record mark
            script(conn, struct.unpack("!I", call[4:8])[0])
            conn.settimeout(5)
            while conn.recv(4096):  # until the client is done, so the close is not a reset
                pass

    thread = threading.Thread(target=serve, daemon=True)
    if accept:
        thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        if accept:
            thread.join(5)


def record(data: bytes, *cuts: int) -> bytes:
    """`data` in record-marking fragments, cut at these offsets."""
    bounds = [0, *cuts, len(data)]
    parts = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    return b"".join(
        struct.pack("!I", len(p) | (LAST if i == len(parts) - 1 else 0)) + p
        for i, p in enumerate(parts)
    )


def test_tcp_reply_in_fragments_from_a_chosen_source() -> None:
    peers = []

    def fragments(conn: socket.socket, xid: int) -> None:
        peers.append(conn.getpeername()[0])
        for byte in record(accepted(xid, ENTRIES), 3, 3, 30):  # one fragment is empty
            conn.send(bytes([byte]))  # a byte at a time: reads must add up

    with tcp_portmapper(fragments) as port:
        assert dump("127.0.0.1", TCP, 5, source="127.0.0.2", port=port) == MAPPINGS
    assert peers == ["127.0.0.2"]


def test_tcp_reply_larger_than_the_limit_is_refused_before_it_is_read() -> None:
    def huge(conn: socket.socket, xid: int) -> None:
        conn.sendall(
            struct.pack("!3I", 8, xid, 1) + struct.pack("!I", limits.PORTMAP_REPLY_BYTES_MAX)
        )

    with tcp_portmapper(huge) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert caught.value.reason == "malformed"
    assert str(caught.value).endswith(
        f"announces a record fragment of {limits.PORTMAP_REPLY_BYTES_MAX} "
        f"bytes after 8 bytes, more than {limits.PORTMAP_REPLY_BYTES_MAX} "
        "in all"
    )


def test_random_bytes_are_said_to_announce_a_fragment_not_a_reply() -> None:
    """300 random bytes over TCP: the first 4 are read as a record mark, and said to be one."""

    def junk(conn: socket.socket, xid: int) -> None:
        conn.sendall(bytes.fromhex("5a17c3e9") + bytes(range(256)) + b"x" * 40)

    with tcp_portmapper(junk) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert str(caught.value).endswith(
        f"announces a record fragment of {0x5A17C3E9} bytes, more "
        f"than {limits.PORTMAP_REPLY_BYTES_MAX} in all"
    )


def test_tcp_connection_closed_early_is_malformed() -> None:
    def cut(conn: socket.socket, xid: int) -> None:
        conn.sendall(record(accepted(xid, ENTRIES))[:20])
        conn.shutdown(socket.SHUT_WR)

    with tcp_portmapper(cut) as port, pytest.raises(PortmapperError, match="closed") as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert caught.value.reason == "malformed"


def test_one_deadline_covers_a_trickling_tcp_reply() -> None:
    """A byte every 0.05 s for 5 s: a deadline per read would wait for all of it."""

    def trickle(conn: socket.socket, xid: int) -> None:
        for byte in record(accepted(xid, ENTRIES * 100))[:100]:
            conn.send(bytes([byte]))
            time.sleep(0.05)

    started = time.monotonic()
    with tcp_portmapper(trickle) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 0.5, port=port)
    assert time.monotonic() - started < 3
    # Something answered, too slowly to make a reply: junk, not silence.
    assert caught.value.reason == "malformed"
    assert re.fullmatch(
        r"answer not complete within 0\.5 s \(\d+ bytes in 1 fragment, no "
        r"whole reply\)",
        str(caught.value),
    )


def test_endless_empty_fragments_are_refused_before_the_deadline() -> None:
    def endless(conn: socket.socket, xid: int) -> None:
        conn.sendall(struct.pack("!I", 0) * (limits.PORTMAP_REPLY_FRAGMENTS_MAX + 1))

    started = time.monotonic()
    with tcp_portmapper(endless) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert time.monotonic() - started < 3  # not the deadline
    assert caught.value.reason == "malformed"
    assert str(caught.value) == f"reply in more than {limits.PORTMAP_REPLY_FRAGMENTS_MAX} fragments"


def test_fragments_that_never_end_the_record_are_junk_not_silence() -> None:
    def unfinished(conn: socket.socket, xid: int) -> None:
        conn.sendall(struct.pack("!I", 4) + b"junk" + struct.pack("!I", 2) + b"ju")

    with tcp_portmapper(unfinished) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 0.6, port=port)
    assert (caught.value.reason, str(caught.value)) == (
        "malformed",
        "answer not complete within 0.6 s (14 bytes in 2 fragments, no whole reply)",
    )


def test_tcp_denial_refusal_and_silence_are_told_apart() -> None:
    def deny(conn: socket.socket, xid: int) -> None:
        conn.sendall(record(struct.pack("!5I", xid, 1, 1, 1, 5)))

    with tcp_portmapper(deny) as port, pytest.raises(PortmapperDenied, match="too weak"):
        dump("127.0.0.1", TCP, 5, port=port)
    with socket.socket() as bound:  # and not listening: its port refuses, and stays ours
        bound.bind(("127.0.0.1", 0))
        with pytest.raises(PortmapperError) as refused:
            dump("127.0.0.1", TCP, 5, port=bound.getsockname()[1])
    with tcp_portmapper(deny, accept=False) as port, pytest.raises(PortmapperError) as mute:
        dump("127.0.0.1", TCP, 0.3, port=port)  # listening, never answering
    assert (refused.value.reason, mute.value.reason) == ("refused", "unanswered")
    assert str(mute.value) == "connected, no RPC answer within 0.3 s"


def test_only_a_connection_that_is_never_made_is_silence() -> None:
    """A full accept queue drops the SYN, as a firewall would: the connect times out."""
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)  # one connection fills it
        filler.connect(server.getsockname())
        with pytest.raises(PortmapperError) as silent:
            dump("127.0.0.1", TCP, 0.3, port=server.getsockname()[1])
    assert (silent.value.reason, str(silent.value)) == ("silent", "no answer within 0.3 s")


@contextmanager
def udp_portmapper(
    answer: Callable[[int, int], list[bytes]], versions: list[int] | None = None
) -> Iterator[int]:
    """A UDP socket on 127.0.0.1 that sends back answer(call number, xid) for each call; each
    call's program version goes into `versions`."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.05)
    done = threading.Event()

    def serve() -> None:
        calls = 0
        while not done.is_set():
            try:
                call, peer = server.recvfrom(100)
            except TimeoutError:
                continue
            calls += 1
            if versions is not None:
                versions.append(struct.unpack("!I", call[16:20])[0])
            for datagram in answer(calls, struct.unpack("!I", call[:4])[0]):
                server.sendto(datagram, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_udp_call_is_resent_every_second_and_stray_datagrams_are_ignored() -> None:
    def second_call_only(calls: int, xid: int) -> list[bytes]:
        stray = accepted(xid ^ 1, [(1, 1, 6, 1)])
        return [stray, b"\0"] if calls == 1 else [stray, accepted(xid, ENTRIES)]

    started = time.monotonic()
    with udp_portmapper(second_call_only) as port:
        assert dump("127.0.0.1", UDP, 3, port=port) == MAPPINGS
    assert 0.9 < time.monotonic() - started < 2.5  # below the deadline


def test_udp_silence_refusal_and_oversized_datagram(monkeypatch: pytest.MonkeyPatch) -> None:
    with udp_portmapper(lambda calls, xid: []) as port, pytest.raises(PortmapperError) as silent:
        dump("127.0.0.1", UDP, 0.3, port=port)
    with pytest.raises(PortmapperError) as refused:
        dump("127.0.0.1", UDP, 3, port=port)  # closed now: ICMP port unreachable
    assert (silent.value.reason, refused.value.reason) == ("silent", "refused")
    with (
        udp_portmapper(lambda calls, xid: [b"junk", struct.pack("!I", xid ^ 1)]) as port,
        pytest.raises(PortmapperError) as strays,
    ):
        dump("127.0.0.1", UDP, 0.6, port=port)
    assert (strays.value.reason, str(strays.value)) == (
        "malformed",
        "only junk within 0.6 s (2 datagrams, none a reply to our call)",
    )
    monkeypatch.setattr(limits, "PORTMAP_REPLY_BYTES_MAX", 1000)
    too_large = pytest.raises(PortmapperError, match="larger than 1000 bytes")
    with (
        udp_portmapper(lambda calls, xid: [accepted(xid, ENTRIES * 25)]) as port,
        too_large as huge,
    ):
        dump("127.0.0.1", UDP, 3, port=port)
    assert huge.value.reason == "malformed"


def test_registrations_are_asked_with_version_3_and_have_owners() -> None:
    versions: list[int] = []

    def rpcbind(conn: socket.socket, xid: int) -> None:
        conn.sendall(record(rpcb_accepted(xid, RPCB_ENTRIES), 50))

    with tcp_portmapper(rpcbind, versions=versions) as port:
        assert registrations("127.0.0.1", TCP, 5, port=port) == REGISTRATIONS
    assert versions == [3]


def test_a_portmapper_that_speaks_only_version_2_is_asked_again_and_tells_no_owner() -> None:
    versions: list[int] = []

    def old_portmap(calls: int, xid: int) -> list[bytes]:
        return [mismatch(xid) if calls == 1 else accepted(xid, ENTRIES)]

    with udp_portmapper(old_portmap, versions) as port:
        found = registrations("127.0.0.1", UDP, 3, port=port)
    assert found == tuple(Registration(*m, owner=None) for m in MAPPINGS)
    assert versions == [3, 2]


def test_one_deadline_covers_both_versions() -> None:
    """Version 3 answers after 2 s (a mismatch), version 2 never: the call ends at the one
    3 s deadline, where a deadline per version ends it at 5 s. Each side has a second to
    spare on a loaded machine."""
    versions: list[int] = []

    def slow_then_silent(calls: int, xid: int) -> list[bytes]:
        if calls > 1:
            return []
        time.sleep(2)
        return [mismatch(xid)]

    started = time.monotonic()
    with (
        udp_portmapper(slow_then_silent, versions) as port,
        pytest.raises(PortmapperError) as caught,
    ):
        registrations("127.0.0.1", UDP, 3, port=port)
    assert (caught.value.reason, str(caught.value)) == ("silent", "no answer within 3 s")
    assert time.monotonic() - started < 4
    assert versions[0] == 3 and versions[-1] == 2  # the mismatch came in time (version 3
    # was sent again meanwhile: a call is resent every second)


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("127.0.0.1", "198.19.255.254"),
        ("portmapper.example", None),
        ("127.0.0.1", "::1"),
    ],
)
def test_a_call_that_cannot_be_made_from_here_failed(address: str, source: str | None) -> None:
    with pytest.raises(PortmapperError) as caught:
        dump(address, TCP, 1, source=source, port=9)
    assert caught.value.reason == "failed", caught.value


def test_a_source_that_is_not_this_hosts_is_said_to_be_so() -> None:
    with pytest.raises(SourceAddressError) as caught:
        dump("127.0.0.1", TCP, 1, source="198.19.255.254", port=9)
    assert str(caught.value) == "not an address of this host"
