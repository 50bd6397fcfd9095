"""An ONC RPC client for one call: the portmapper's PMAPPROC_DUMP (RFC 1833: program 100000,
version 2, procedure 4, AUTH_NULL), over TCP with record marking or over UDP.

The port audit uses it to name RPC services, `portwarden portmap check` to see whether rpcbind
answers a caller. Whatever listens on port 111 may be hostile, so its reply is parsed as hostile
bytes: every length is checked against what is there, the verifier and the whole reply are
capped, and one deadline covers the whole exchange. Nothing comes out but the mappings or a
PortmapperError whose `reason` says what kind of failure it was.
"""

import ipaddress
import os
import socket
import struct
import time
from typing import Literal, NamedTuple

from portwarden.detect.probe import Proto
from portwarden.limits import PORTMAP_REPLY_BYTES_MAX
from portwarden.net.local import IPAddress

PORTMAPPER_PORT = 111
_PROGRAM, _VERSION, _PROC_DUMP = 100000, 2, 4
_RPC_VERSION = 2
_CALL, _REPLY = 0, 1
_MSG_ACCEPTED, _MSG_DENIED = 0, 1
_SUCCESS = 0
_RPC_MISMATCH, _AUTH_ERROR = 0, 1
_AUTH_BYTES_MAX = 400  # RFC 5531: the body of an opaque_auth (credential, verifier)
_LAST_FRAGMENT = 0x8000_0000
_UDP_RESEND_S = 1.0
_U32 = struct.Struct("!I")
_ENTRY = struct.Struct("!IIII")  # program, version, protocol number, port
_PROTOCOLS = {socket.IPPROTO_TCP: Proto.TCP, socket.IPPROTO_UDP: Proto.UDP}
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

# silent: no answer within the timeout (dropped by a firewall, or a peer that never answers)
# refused: connection refused (a TCP reset, or ICMP port unreachable over UDP)
# denied: the portmapper refused the call (MSG_DENIED); always a PortmapperDenied
# malformed: an answer that is not a list of registrations (junk, cut short, too large, an error)
# failed: the call could not be made from here (a source address that is not local, no route)
Reason = Literal["silent", "refused", "denied", "malformed", "failed"]


class Mapping(NamedTuple):
    """One registration with the portmapper."""

    program: int
    version: int
    proto: Proto
    port: int


class PortmapperError(Exception):
    """No list of registrations; `reason` says why for a program, str() for a person."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


class PortmapperDenied(PortmapperError):
    """The portmapper refused the call: rpcbind's answer to a caller that TCP Wrappers deny."""

    def __init__(self, message: str) -> None:
        super().__init__("denied", message)


def _malformed(message: str) -> PortmapperError:
    return PortmapperError("malformed", message)


def dump(
    address: IPAddress | str,
    proto: Proto,
    timeout: float,
    source: str | None = None,
    port: int = PORTMAPPER_PORT,
) -> tuple[Mapping, ...]:
    """Every registration of the portmapper at `address`, asked over `proto` from the local
    address `source` (any, if None). Takes at most `timeout` seconds; over UDP the call is sent
    again every second until then.

    Raises PortmapperError (PortmapperDenied for a denial), never anything else.
    """
    deadline = time.monotonic() + timeout
    target, local = _ip(address), None if source is None else _ip(source)
    xid = _U32.unpack(os.urandom(4))[0]
    call = struct.pack("!10I", xid, _CALL, _RPC_VERSION, _PROGRAM, _VERSION, _PROC_DUMP,
                       0, 0, 0, 0)  # fmt: skip
    family = socket.AF_INET6 if target.version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    try:
        with socket.socket(family, kind) as sock:
            if local is not None:
                sock.bind((str(local), 0))
            sock.settimeout(_left(deadline))
            sock.connect((str(target), port))
            if proto is Proto.TCP:
                sock.sendall(_U32.pack(_LAST_FRAGMENT | len(call)) + call)
                reply = _read_record(sock, deadline)
            else:
                reply = _exchange_datagrams(sock, call, xid, deadline)
    except TimeoutError:
        raise PortmapperError("silent", f"no answer within {timeout:g} s") from None
    except ConnectionRefusedError as error:
        raise PortmapperError("refused", error.strerror or "connection refused") from None
    except ConnectionResetError:
        raise _malformed("connection reset before the reply was complete") from None
    except OSError as error:
        raise PortmapperError("failed", error.strerror or type(error).__name__) from None
    return parse_dump_reply(reply, xid)


def _ip(address: IPAddress | str) -> IPAddress:
    """An address as given, never a name to resolve (a DNS look-up would escape the timeout)."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise PortmapperError("failed", f"not an IP address: {address}") from None


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _refuse_larger(size: int) -> None:
    if size > PORTMAP_REPLY_BYTES_MAX:
        raise _malformed(f"reply larger than {PORTMAP_REPLY_BYTES_MAX} bytes")


def _read_record(sock: socket.socket, deadline: float) -> bytes:
    """One record-marked reply (RFC 5531 section 11), however many fragments, capped in size
    before anything is read."""
    record = bytearray()
    while True:
        (marker,) = _U32.unpack(_read_exactly(sock, 4, deadline))
        size = marker & ~_LAST_FRAGMENT
        _refuse_larger(len(record) + size)
        record += _read_exactly(sock, size, deadline)
        if marker & _LAST_FRAGMENT:
            return bytes(record)


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _malformed("connection closed before the reply was complete")
        data += chunk
    return bytes(data)


def _exchange_datagrams(sock: socket.socket, call: bytes, xid: int, deadline: float) -> bytes:
    """Send the call, again every second, until a datagram with our transaction id arrives;
    stray datagrams are dropped."""
    ours = _U32.pack(xid)
    while (left := deadline - time.monotonic()) > 0:
        sock.send(call)
        resend = time.monotonic() + min(left, _UDP_RESEND_S)
        while (wait := resend - time.monotonic()) > 0:
            sock.settimeout(wait)
            try:
                reply = sock.recv(PORTMAP_REPLY_BYTES_MAX + 1)  # one byte more: too large is seen
            except TimeoutError:
                break
            if reply.startswith(ours):
                return reply
    raise TimeoutError


def parse_dump_reply(reply: bytes, xid: int) -> tuple[Mapping, ...]:
    """The registrations in a PMAPPROC_DUMP reply to call `xid`; entries for protocols other
    than TCP and UDP, or without a port, are left out. Raises PortmapperError, nothing else."""
    _refuse_larger(len(reply))
    reader = _Reader(reply)
    if reader.u32() != xid or reader.u32() != _REPLY:
        raise _malformed("answer is not an ONC RPC reply to our call")
    status = reader.u32()
    if status == _MSG_DENIED:
        raise PortmapperDenied(_denial(reader))
    if status != _MSG_ACCEPTED:
        raise _malformed(f"malformed reply (reply status {status})")
    reader.skip_auth()  # the verifier
    accepted = reader.u32()
    if accepted != _SUCCESS:
        raise _malformed(_ACCEPT_ERRORS.get(accepted, f"accept status {accepted}"))
    mappings = []
    while (follows := reader.u32()) != 0:  # each turn reads at least 4 bytes of a capped reply
        if follows != 1:
            raise _malformed("malformed reply (bad list marker)")
        program, version, protocol, port = reader.take(_ENTRY)
        if protocol in _PROTOCOLS and 0 < port <= 65535:
            mappings.append(Mapping(program, version, _PROTOCOLS[protocol], port))
    return tuple(mappings)


def _denial(reader: "_Reader") -> str:
    """Why an MSG_DENIED reply refused the call (a cut-short one is malformed, not a denial)."""
    reason = reader.u32()
    if reason == _AUTH_ERROR:
        stat = reader.u32()
        return f"authentication error ({_AUTH_ERRORS.get(stat, f'auth_stat {stat}')})"
    if reason == _RPC_MISMATCH:
        return "RPC version mismatch"
    return f"denied (reject_stat {reason})"


class _Reader:
    """XDR decoding over bytes that may be short or lie about lengths."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _advance(self, size: int) -> int:
        if size > len(self._data) - self._at:
            raise _malformed("truncated reply")
        start = self._at
        self._at += size
        return start

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        return layout.unpack_from(self._data, self._advance(layout.size))

    def u32(self) -> int:
        return int(self.take(_U32)[0])

    def skip_auth(self) -> None:
        """An opaque_auth: flavour, length, body padded to 4 bytes."""
        self.u32()
        size = self.u32()
        if size > _AUTH_BYTES_MAX:
            raise _malformed(f"malformed reply (verifier longer than {_AUTH_BYTES_MAX} bytes)")
        self._advance((size + 3) & ~3)
