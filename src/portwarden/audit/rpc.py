"""An ONC RPC portmapper client for one call: PMAPPROC_DUMP (program 100000, version 2,
procedure 4), over TCP (with record marking) or UDP.

The reply comes from whatever listens on port 111, so it is parsed as hostile bytes: every
length is checked against what is there, the reply is capped in size and time, and the only
thing that can come out besides the mappings is a PortmapperError with a short reason.
"""

import os
import socket
import struct
import time
from typing import NamedTuple

from portwarden.detect.probe import IPAddress, Proto
from portwarden.limits import PORTMAP_REPLY_MAX_BYTES, PORTMAP_TIMEOUT_S

PORTMAP_PORT = 111
PMAP_PROGRAM, PMAP_VERSION, PMAPPROC_DUMP = 100000, 2, 4
_CALL, _REPLY, _MSG_ACCEPTED, _SUCCESS, _RPC_VERSION = 0, 1, 0, 0, 2
_AUTH_MAX_BYTES = 400  # RFC 5531: an opaque_auth body is at most 400 bytes
_LAST_FRAGMENT = 0x8000_0000
_U32 = struct.Struct("!I")
_MAPPING = struct.Struct("!IIII")  # program, version, protocol, port
_IPPROTO = {6: Proto.TCP, 17: Proto.UDP}


class Mapping(NamedTuple):
    program: int
    version: int
    proto: Proto
    port: int


class PortmapperError(Exception):
    """The portmapper could not be asked, or answered something that is not a dump."""


def dump_call(xid: int) -> bytes:
    """The CALL message: header, AUTH_NULL credential and verifier, no arguments."""
    return struct.pack("!10I", xid, _CALL, _RPC_VERSION, PMAP_PROGRAM, PMAP_VERSION,
                       PMAPPROC_DUMP, 0, 0, 0, 0)  # fmt: skip


def parse_dump_reply(data: bytes, xid: int) -> tuple[Mapping, ...]:
    """The mappings in one REPLY message. Raises PortmapperError for anything else."""
    reader = _Reader(data)
    if reader.u32() != xid or reader.u32() != _REPLY:
        raise PortmapperError("answer is not an ONC RPC reply to our call")
    if reader.u32() != _MSG_ACCEPTED:
        raise PortmapperError("call was denied")
    reader.u32()  # verifier flavour
    verifier_length = reader.u32()
    if verifier_length > _AUTH_MAX_BYTES:
        raise PortmapperError("malformed reply (verifier too long)")
    reader.skip((verifier_length + 3) & ~3)
    status = reader.u32()
    if status != _SUCCESS:
        raise PortmapperError(f"call not accepted (accept_stat {status})")
    mappings: list[Mapping] = []
    while True:  # each turn consumes at least 4 bytes, and the reply is capped
        follows = reader.u32()
        if follows == 0:
            return tuple(mappings)
        if follows != 1:
            raise PortmapperError("malformed reply (bad list marker)")
        program, version, protocol, port = reader.take(_MAPPING)
        if protocol in _IPPROTO and 0 < port <= 65535:
            mappings.append(Mapping(program, version, _IPPROTO[protocol], port))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, shape: struct.Struct) -> tuple[int, ...]:
        if self._offset + shape.size > len(self._data):
            raise PortmapperError("truncated reply")
        values = shape.unpack_from(self._data, self._offset)
        self._offset += shape.size
        return values

    def u32(self) -> int:
        return self.take(_U32)[0]

    def skip(self, count: int) -> None:
        if self._offset + count > len(self._data):
            raise PortmapperError("truncated reply")
        self._offset += count


def dump(address: IPAddress, proto: Proto, timeout: float = PORTMAP_TIMEOUT_S,
         port: int = PORTMAP_PORT) -> tuple[Mapping, ...]:  # fmt: skip
    """Ask the portmapper at `address` for every registration. Takes at most `timeout` seconds.

    Raises PortmapperError (never anything else) when there is no usable answer.
    """
    xid = int.from_bytes(os.urandom(4), "big")
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(
            family, socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
        ) as sock:
            _set_timeout(sock, deadline)
            sock.connect((str(address), port))
            if proto is Proto.TCP:
                sock.sendall(_U32.pack(_LAST_FRAGMENT | 40) + dump_call(xid))
                return parse_dump_reply(_read_record(sock, deadline), xid)
            sock.send(dump_call(xid))
            return _udp_answer(sock, xid, deadline)
    except TimeoutError:
        raise PortmapperError(f"no answer within {timeout:g} s") from None
    except OSError as error:
        raise PortmapperError(error.strerror or type(error).__name__) from None


def _set_timeout(sock: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _read_record(sock: socket.socket, deadline: float) -> bytes:
    """One record-marked message: fragments until the last one, capped in size and time."""
    record = bytearray()
    while True:
        marker = _U32.unpack(_read_exactly(sock, 4, deadline))[0]
        length = marker & ~_LAST_FRAGMENT
        if len(record) + length > PORTMAP_REPLY_MAX_BYTES:
            raise PortmapperError(f"reply larger than {PORTMAP_REPLY_MAX_BYTES} bytes")
        record += _read_exactly(sock, length, deadline)
        if marker & _LAST_FRAGMENT:
            return bytes(record)


def _read_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < count:
        _set_timeout(sock, deadline)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise PortmapperError("connection closed before the reply was complete")
        data += chunk
    return bytes(data)


def _udp_answer(sock: socket.socket, xid: int, deadline: float) -> tuple[Mapping, ...]:
    """The first datagram that answers our call; stray ones are dropped until the deadline."""
    while True:
        _set_timeout(sock, deadline)
        data = sock.recv(65536)
        if data[:4] == _U32.pack(xid):
            return parse_dump_reply(data, xid)
