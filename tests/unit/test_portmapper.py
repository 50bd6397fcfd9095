"""The portmapper client: PMAPPROC_DUMP replies parsed as hostile bytes, and whole exchanges with
small fake portmappers on loopback (record marking, deadlines, UDP resends, refusals)."""

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.detect.probe import Proto
from portwarden.limits import PORTMAP_REPLY_BYTES_MAX
from portwarden.net import portmapper
from portwarden.net.portmapper import (
    Mapping,
    PortmapperDenied,
    PortmapperError,
    dump,
    parse_dump_reply,
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
        (accepted(7, [(1, 1, 6, 1)] * (PORTMAP_REPLY_BYTES_MAX // 20)), "reply larger than"),
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
def tcp_portmapper(script: Script, accept: bool = True) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that runs `script` on one connection; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn, contextlib.suppress(OSError):  # the client may be gone before the script ends
            call = conn.recv(44)
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
        conn.sendall(struct.pack("!3I", 8, xid, 1) + struct.pack("!I", PORTMAP_REPLY_BYTES_MAX))

    with tcp_portmapper(huge) as port, pytest.raises(PortmapperError, match="larger") as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert caught.value.reason == "malformed"


def test_tcp_connection_closed_early_is_malformed() -> None:
    def cut(conn: socket.socket, xid: int) -> None:
        conn.sendall(record(accepted(xid, ENTRIES))[:20])
        conn.shutdown(socket.SHUT_WR)

    with tcp_portmapper(cut) as port, pytest.raises(PortmapperError, match="closed") as caught:
        dump("127.0.0.1", TCP, 5, port=port)
    assert caught.value.reason == "malformed"


def test_one_deadline_covers_a_trickling_tcp_reply() -> None:
    def trickle(conn: socket.socket, xid: int) -> None:
        for byte in record(accepted(xid, ENTRIES * 100))[:30]:
            conn.send(bytes([byte]))
            time.sleep(0.05)

    started = time.monotonic()
    with tcp_portmapper(trickle) as port, pytest.raises(PortmapperError) as caught:
        dump("127.0.0.1", TCP, 0.5, port=port)
    assert (caught.value.reason, str(caught.value)) == ("silent", "no answer within 0.5 s")
    assert time.monotonic() - started < 1.5


def test_tcp_denial_refusal_and_silence_are_told_apart() -> None:
    def deny(conn: socket.socket, xid: int) -> None:
        conn.sendall(record(struct.pack("!5I", xid, 1, 1, 1, 5)))

    with tcp_portmapper(deny) as port, pytest.raises(PortmapperDenied, match="too weak"):
        dump("127.0.0.1", TCP, 5, port=port)
    with tcp_portmapper(deny, accept=False) as port:
        pass  # the port is closed again
    with pytest.raises(PortmapperError) as refused:
        dump("127.0.0.1", TCP, 5, port=port)
    with tcp_portmapper(deny, accept=False) as port, pytest.raises(PortmapperError) as silent:
        dump("127.0.0.1", TCP, 0.3, port=port)  # listening, never answering
    assert (refused.value.reason, silent.value.reason) == ("refused", "silent")


@contextmanager
def udp_portmapper(answer: Callable[[int, int], list[bytes]]) -> Iterator[int]:
    """A UDP socket on 127.0.0.1 that sends back answer(call number, xid) for each call."""
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
    assert 0.9 < time.monotonic() - started < 2


def test_udp_silence_refusal_and_oversized_datagram(monkeypatch: pytest.MonkeyPatch) -> None:
    with udp_portmapper(lambda calls, xid: []) as port, pytest.raises(PortmapperError) as silent:
        dump("127.0.0.1", UDP, 0.3, port=port)
    with pytest.raises(PortmapperError) as refused:
        dump("127.0.0.1", UDP, 3, port=port)  # closed now: ICMP port unreachable
    assert (silent.value.reason, refused.value.reason) == ("silent", "refused")
    monkeypatch.setattr(portmapper, "PORTMAP_REPLY_BYTES_MAX", 1000)
    too_large = pytest.raises(PortmapperError, match="larger than 1000 bytes")
    with (
        udp_portmapper(lambda calls, xid: [accepted(xid, ENTRIES * 25)]) as port,
        too_large as huge,
    ):
        dump("127.0.0.1", UDP, 3, port=port)
    assert huge.value.reason == "malformed"


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("127.0.0.1", "198.19.255.254"),
        ("portmapper.example", None),
        ("127.0.0.1", "::1"),
    ],  # fmt: skip
)
def test_a_call_that_cannot_be_made_from_here_failed(address: str, source: str | None) -> None:
    with pytest.raises(PortmapperError) as caught:
        dump(address, TCP, 1, source=source, port=9)
    assert caught.value.reason == "failed", caught.value
