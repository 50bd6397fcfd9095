"""A minimal ONC RPC client for the portmapper's PMAPPROC_DUMP (RFC 1833, version 2).

It answers one question: which programs does the portmapper at an address list, over TCP or
UDP, when asked from a given local source address. Replies are hostile input: every length is
checked before it is used, the total read is capped, and nothing but RpcError (or the socket's
own OSError, such as TimeoutError or ConnectionRefusedError) comes out.
"""

import os
import socket
import struct
import time
from typing import Literal, NamedTuple

from portwarden.limits import RPC_REPLY_BYTES_MAX

PORTMAPPER_PROGRAM = 100000
PORTMAPPER_PORT = 111
_VERSION = 2
_PROC_DUMP = 4
_CALL, _REPLY = 0, 1
_MSG_ACCEPTED, _MSG_DENIED = 0, 1
_SUCCESS = 0
_RPC_MISMATCH, _AUTH_ERROR = 0, 1
_LAST_FRAGMENT = 0x8000_0000
_UDP_RESEND_S = 1.0
_U32 = struct.Struct(">I")
_ENTRY = struct.Struct(">IIII")
_AUTH_ERRORS = {
    1: "bad credential",
    2: "rejected credential",
    3: "bad verifier",
    4: "rejected verifier",
    5: "credential too weak",
}
_ACCEPT_ERRORS = {
    1: "program unavailable",
    2: "program version mismatch",
    3: "procedure unavailable",
    4: "garbage arguments",
    5: "system error",
}

Transport = Literal["tcp", "udp"]


class Mapping(NamedTuple):
    """One registration: program, version, protocol number (6 TCP, 17 UDP), port."""

    prog: int
    vers: int
    proto: int
    port: int


class RpcError(Exception):
    """The reply was malformed or reported an error."""


class RpcDenied(RpcError):
    """The portmapper refused the call (rpcbind does this when TCP Wrappers deny the caller)."""


def dump(
    address: str, proto: Transport, timeout: float, source: str | None = None
) -> list[Mapping]:
    """PMAPPROC_DUMP to `address` port 111 over `proto`, optionally from local address `source`.

    Raises RpcDenied, RpcError, or OSError (TimeoutError: no answer; ConnectionRefusedError).
    """
    xid = _U32.unpack(os.urandom(4))[0]
    call = _U32.pack(xid) + struct.pack(
        ">IIIIIIIII", _CALL, 2, PORTMAPPER_PROGRAM, _VERSION, _PROC_DUMP, 0, 0, 0, 0
    )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    with socket.socket(family, kind) as sock:
        if source is not None:
            sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect((address, PORTMAPPER_PORT))
        if proto == "tcp":
            sock.sendall(_U32.pack(_LAST_FRAGMENT | len(call)) + call)
            reply = _read_record(sock, deadline)
        else:
            reply = _exchange_datagram(sock, call, xid, deadline)
    return parse_dump_reply(reply, xid)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no reply from the portmapper")
    return left


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RpcError("the portmapper closed the connection without a complete reply")
        data += chunk
    return bytes(data)


def _read_record(sock: socket.socket, deadline: float) -> bytes:
    """One record-marked TCP reply (RFC 5531 section 11), however many fragments."""
    record = bytearray()
    while True:
        (header,) = _U32.unpack(_read_exactly(sock, 4, deadline))
        size = header & ~_LAST_FRAGMENT
        if len(record) + size > RPC_REPLY_BYTES_MAX:
            raise RpcError(f"reply longer than {RPC_REPLY_BYTES_MAX} bytes")
        record += _read_exactly(sock, size, deadline)
        if header & _LAST_FRAGMENT:
            return bytes(record)


def _exchange_datagram(sock: socket.socket, call: bytes, xid: int, deadline: float) -> bytes:
    """Send, resending every second, until a datagram with our transaction id arrives."""
    while True:
        sock.send(call)
        resend = min(deadline, time.monotonic() + _UDP_RESEND_S)
        while time.monotonic() < resend:
            sock.settimeout(max(resend - time.monotonic(), 0.001))
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                break
            if reply[:4] == _U32.pack(xid):
                return reply
        _remaining(deadline)


def parse_dump_reply(reply: bytes, xid: int) -> list[Mapping]:
    """The mappings in a PMAPPROC_DUMP reply. Raises RpcDenied or RpcError, nothing else."""
    reader = _Reader(reply)
    if reader.u32() != xid or reader.u32() != _REPLY:
        raise RpcError("not a reply to our call")
    status = reader.u32()
    if status == _MSG_DENIED:
        reason = reader.u32()
        if reason == _AUTH_ERROR:
            detail = _AUTH_ERRORS.get(reader.u32(), "unknown reason")
            raise RpcDenied(f"authentication error ({detail})")
        if reason == _RPC_MISMATCH:
            raise RpcDenied("RPC version mismatch")
        raise RpcDenied(f"denied (reason {reason})")
    if status != _MSG_ACCEPTED:
        raise RpcError(f"unknown reply status {status}")
    reader.u32()  # verifier flavour
    reader.skip_opaque()
    accepted = reader.u32()
    if accepted != _SUCCESS:
        raise RpcError(_ACCEPT_ERRORS.get(accepted, f"accept status {accepted}"))
    mappings = []
    while reader.u32():
        mappings.append(Mapping(*reader.take(_ENTRY)))
    return mappings


class _Reader:
    """XDR decoding over bytes that may be short or lie about lengths."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _bytes(self, size: int) -> bytes:
        if size > len(self._data) - self._at:
            raise RpcError("reply cut short")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def u32(self) -> int:
        return int(_U32.unpack(self._bytes(4))[0])

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        return tuple(layout.unpack(self._bytes(layout.size)))

    def skip_opaque(self) -> None:
        size = self.u32()
        self._bytes((size + 3) & ~3)
