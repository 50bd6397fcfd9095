"""An ONC RPC client for one call: the portmapper's list of registrations (RFC 1833: program
100000, procedure 4, AUTH_NULL), over TCP with record marking or over UDP. Version 2
(PMAPPROC_DUMP) gives program, version, protocol and port; version 3 (rpcbind's RPCBPROC_DUMP)
also gives the owner rpcbind recorded for each registration.

The port audit uses version 3 (version 2 from a portmapper that speaks nothing else) to name RPC
services, `portwarden portmap check` version 2 to see whether rpcbind answers a caller. Whatever
listens on port 111 may be hostile, so its reply is parsed as hostile bytes: every length is
checked against what is there, strings, the verifier and the whole reply are capped, and one
deadline covers the whole exchange. Nothing comes out but the registrations or a PortmapperError
whose `reason` says what kind of failure it was.
"""

import errno
import ipaddress
import os
import socket
import struct
import time
from typing import Literal, NamedTuple

from portwarden import limits
from portwarden.net.addresses import PORTMAPPER_PORT, IPAddress, Proto
from portwarden.net.deadline import time_left
from portwarden.net.local import scope_index
from portwarden.text import counted

PORTMAPPER_PROGRAM = 100000
_PROGRAM, _PROC_DUMP = PORTMAPPER_PROGRAM, 4
_PMAP_VERSION, _RPCB_VERSION = 2, 3
_RPC_VERSION = 2
_CALL, _REPLY = 0, 1
_MSG_ACCEPTED, _MSG_DENIED = 0, 1
_SUCCESS, _PROG_MISMATCH = 0, 2
_RPC_MISMATCH, _AUTH_ERROR = 0, 1
_AUTH_BYTES_MAX = 400  # RFC 5531: the body of an opaque_auth (credential, verifier)
_LAST_FRAGMENT = 0x8000_0000
_U32 = struct.Struct("!I")
_ENTRY = struct.Struct("!IIII")  # program, version, protocol number, port
_PROGRAM_VERSION = struct.Struct("!II")
_PROTOCOLS = {socket.IPPROTO_TCP: Proto.TCP, socket.IPPROTO_UDP: Proto.UDP}
_NETIDS = {b"tcp": Proto.TCP, b"tcp6": Proto.TCP, b"udp": Proto.UDP, b"udp6": Proto.UDP}
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

# silent: no connection within the timeout over TCP, not a byte back over UDP (dropped by a
#   firewall, or over UDP a peer that never answers)
# unanswered: over TCP, the connection was accepted but not a byte came back within the timeout
#   (a portmapper that hangs or is stopped: the kernel accepts for it): something is there
# refused: connection refused (a TCP reset, or ICMP port unreachable over UDP)
# denied: the portmapper refused the call (MSG_DENIED); always a PortmapperDenied
# malformed: an answer that is not a list of registrations (junk, cut short, too large, too slow
#   to complete, an error)
# failed: the call could not be made from here (a source address that is not local, no route)
Reason = Literal["silent", "unanswered", "refused", "denied", "malformed", "failed"]


class Mapping(NamedTuple):
    """One registration with the portmapper."""

    program: int
    version: int
    proto: Proto
    port: int


class Registration(NamedTuple):
    """One registration with its owner, as rpcbind recorded it: "superuser" (uid 0 over its Unix
    socket), another uid in decimal (another local user over that socket), "unknown" (over UDP or
    TCP, where rpcbind cannot tell who called); None from a portmapper that speaks only version
    2, which does not say."""

    program: int
    version: int
    proto: Proto
    port: int
    owner: str | None
    # The host part of its universal address: the address the service listens on (0.0.0.0 or
    # ::, every address); None from a version 2 portmapper, which does not say.
    host: IPAddress | None = None

    def serves(self, address: IPAddress, dual_stack: bool = False) -> bool:
        """Whether it is for the port on `address`: a registration at 203.0.113.5 names no
        listener on this host's other addresses, and one at a wildcard address only those of
        its own family (tcp and udp at 0.0.0.0: IPv4; tcp6 and udp6 at ::, IPv6), except that
        one at :: serves IPv4 addresses too when the socket taking them is `dual_stack` (an
        IPv6 socket without IPV6_V6ONLY), which the caller knows and the portmapper does not
        say. A version 2 portmapper says no address: its registrations serve every one."""
        if self.host is None or self.host == address:
            return True
        if not self.host.is_unspecified:
            return False
        return self.host.version == address.version or (self.host.version == 6 and dual_stack)


class PortmapperError(Exception):
    """No list of registrations; `reason` says why for a program, str() for a person."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


class PortmapperDenied(PortmapperError):
    """The portmapper refused the call: rpcbind's answer to a caller that TCP Wrappers deny."""

    def __init__(self, message: str) -> None:
        super().__init__("denied", message)


class SourceAddressError(PortmapperError):
    """The source address asked for cannot be used (not an address of this host)."""

    def __init__(self, message: str) -> None:
        super().__init__("failed", message)


class _VersionMismatch(PortmapperError):
    """The portmapper does not speak the version asked (an old portmap: version 2 only)."""

    def __init__(self) -> None:
        super().__init__("malformed", _ACCEPT_ERRORS[_PROG_MISMATCH])


def _malformed(message: str) -> PortmapperError:
    return PortmapperError("malformed", message)


def dump(
    address: IPAddress | str,
    proto: Proto,
    timeout: float,
    source: str | None = None,
    port: int = PORTMAPPER_PORT,
) -> tuple[Mapping, ...]:
    """Every registration of the portmapper at `address` (PMAPPROC_DUMP, version 2), asked over
    `proto` from the local address `source` (any, if None). Takes at most `timeout` seconds;
    over UDP the call is sent again every second until then.

    Raises PortmapperError (PortmapperDenied for a denial), never anything else.
    """
    deadline = time.monotonic() + timeout
    reply, xid = _call(_PMAP_VERSION, address, proto, source, port, deadline, timeout)
    return parse_dump_reply(reply, xid)


def registrations(
    address: IPAddress | str, proto: Proto, timeout: float, port: int = PORTMAPPER_PORT
) -> tuple[Registration, ...]:
    """Every registration with its owner (RPCBPROC_DUMP, version 3); from a portmapper that
    speaks only version 2, PMAPPROC_DUMP's list with owner None. Both calls together take at
    most `timeout` seconds. Raises PortmapperError, never anything else."""
    deadline = time.monotonic() + timeout
    try:
        reply, xid = _call(_RPCB_VERSION, address, proto, None, port, deadline, timeout)
        return parse_rpcb_dump_reply(reply, xid)
    except _VersionMismatch:
        reply, xid = _call(_PMAP_VERSION, address, proto, None, port, deadline, timeout)
        return tuple(Registration(*m, owner=None) for m in parse_dump_reply(reply, xid))


def _call(
    version: int,
    address: IPAddress | str,
    proto: Proto,
    source: str | None,
    port: int,
    deadline: float,
    timeout: float,
) -> tuple[bytes, int]:
    """The reply to procedure 4 of this version of the portmapper program, and the call's xid;
    `timeout` is only for the message."""
    target, local = _ip(address), None if source is None else _ip(source)
    xid = _U32.unpack(os.urandom(4))[0]
    call = struct.pack("!10I", xid, _CALL, _RPC_VERSION, _PROGRAM, version, _PROC_DUMP, 0, 0, 0, 0)
    family = socket.AF_INET6 if target.version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    try:
        with socket.socket(family, kind) as sock:
            if local is not None:
                try:
                    sock.bind(_sockaddr(local, 0))
                except OSError as error:
                    raise SourceAddressError(_unusable_source(error)) from None
            sock.settimeout(time_left(deadline))
            sock.connect(_sockaddr(target, port))
            if proto is Proto.TCP:
                return _ask_connected(sock, call, deadline, timeout), xid
            return _exchange_datagrams(sock, call, xid, deadline, timeout), xid
    except TimeoutError:
        raise PortmapperError("silent", f"no answer within {timeout:g} s") from None
    except ConnectionRefusedError as error:
        raise PortmapperError("refused", error.strerror or "connection refused") from None
    except ConnectionResetError:
        raise _malformed("connection reset before the reply was complete") from None
    except OSError as error:
        raise PortmapperError("failed", error.strerror or type(error).__name__) from None


def _ask_connected(sock: socket.socket, call: bytes, deadline: float, timeout: float) -> bytes:
    """The reply over a TCP connection the peer has accepted: silence now is no firewall's."""
    try:
        sock.sendall(_U32.pack(_LAST_FRAGMENT | len(call)) + call)
        return _read_record(sock, deadline, timeout)
    except TimeoutError:
        raise PortmapperError(
            "unanswered", f"connected, no RPC answer within {timeout:g} s"
        ) from None


def _ip(address: IPAddress | str) -> IPAddress:
    """An address as given, never a name to resolve (a DNS look-up would escape the timeout)."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise PortmapperError("failed", f"not an IP address: {address}") from None


def _sockaddr(address: IPAddress, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """`address` and `port` for bind() and connect(); an address with a scope (`fe80::1%eth0`)
    with its device's index, without which the kernel refuses a link-local address (Python
    takes the scope from the tuple, never from the text). Raises OSError for a device this
    host does not have."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        try:
            index = scope_index(address.scope_id)
        except ValueError as error:
            raise OSError(errno.ENODEV, str(error)) from None
        return (str(address), port, 0, index)
    return (str(address), port)


def _refuse_larger(size: int) -> None:
    if size > limits.PORTMAP_REPLY_BYTES_MAX:
        raise _malformed(f"reply larger than {limits.PORTMAP_REPLY_BYTES_MAX} bytes")


def _read_record(sock: socket.socket, deadline: float, timeout: float) -> bytes:
    """One record-marked reply (RFC 5531 section 11), however many fragments (up to a cap),
    capped in size before anything is read. Bytes that do not make a whole reply by the deadline
    are a malformed answer, not silence."""
    record = bytearray()
    fragments = 0
    try:
        while True:
            (marker,) = _U32.unpack(_read_exactly(sock, 4, deadline))
            fragments += 1
            if fragments > limits.PORTMAP_REPLY_FRAGMENTS_MAX:
                raise _malformed(
                    f"reply in more than {limits.PORTMAP_REPLY_FRAGMENTS_MAX} fragments"
                )
            size = marker & ~_LAST_FRAGMENT
            # said as it is: any 4 bytes read so
            if len(record) + size > limits.PORTMAP_REPLY_BYTES_MAX:
                after = f" after {len(record)} bytes" if record else ""
                raise _malformed(
                    f"announces a record fragment of {size} bytes{after}, more than "
                    f"{limits.PORTMAP_REPLY_BYTES_MAX} in all"
                )
            record += _read_exactly(sock, size, deadline)
            if marker & _LAST_FRAGMENT:
                return bytes(record)
    except _Partial as partial:
        if fragments == 0 and not partial.data:
            raise TimeoutError from None
        got = 4 * fragments + len(record) + len(partial.data)
        raise _malformed(
            f"answer not complete within {timeout:g} s ({counted(got, 'byte')} "
            f"in {counted(max(fragments, 1), 'fragment')}, no whole reply)"
        ) from None


class _Partial(Exception):
    """The deadline passed in the middle of a read; `data` is what had come."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    try:
        while len(data) < size:
            sock.settimeout(time_left(deadline))
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise _malformed("connection closed before the reply was complete")
            data += chunk
    except TimeoutError:
        raise _Partial(bytes(data)) from None
    return bytes(data)


def _exchange_datagrams(
    sock: socket.socket, call: bytes, xid: int, deadline: float, timeout: float
) -> bytes:
    """Send the call, again every PORTMAP_UDP_RESEND_S, until a datagram with our transaction
    id arrives; stray datagrams are dropped, and if only strays came the answer is malformed,
    not silence."""
    ours = _U32.pack(xid)
    strays = 0
    while (left := deadline - time.monotonic()) > 0:
        sock.send(call)
        resend = time.monotonic() + min(left, limits.PORTMAP_UDP_RESEND_S)
        while (wait := resend - time.monotonic()) > 0:
            sock.settimeout(wait)
            try:
                # one byte more: too large is seen
                reply = sock.recv(limits.PORTMAP_REPLY_BYTES_MAX + 1)
            except TimeoutError:
                break
            if reply.startswith(ours):
                return reply
            strays += 1
    if strays:
        raise _malformed(
            f"only junk within {timeout:g} s ({strays} datagrams, none a reply to our call)"
        )
    raise TimeoutError


def parse_dump_reply(reply: bytes, xid: int) -> tuple[Mapping, ...]:
    """The registrations in a PMAPPROC_DUMP reply to call `xid`; entries for protocols other
    than TCP and UDP, or without a port, are left out. Raises PortmapperError, nothing else."""
    reader = _results(reply, xid)
    mappings = []
    while _follows(reader):
        program, version, protocol, port = reader.take(_ENTRY)
        if protocol in _PROTOCOLS and 0 < port <= 65535:
            mappings.append(Mapping(program, version, _PROTOCOLS[protocol], port))
    return tuple(mappings)


def parse_rpcb_dump_reply(reply: bytes, xid: int) -> tuple[Registration, ...]:
    """The registrations in an RPCBPROC_DUMP reply to call `xid`; entries for netids other
    than tcp, tcp6, udp and udp6, with an address that is not a universal address (a numeric
    host, a port), or with a string longer than 128 bytes, are left out. Raises PortmapperError,
    nothing else."""
    reader = _results(reply, xid)
    found = []
    while _follows(reader):
        program, version = reader.take(_PROGRAM_VERSION)
        netid, address, owner = reader.string(), reader.string(), reader.string()
        proto, universal = _NETIDS.get(netid or b""), _universal(address or b"")
        if universal is not None and (universal[0].version == 6) != (netid or b"").endswith(b"6"):
            universal = None  # tcp with an IPv6 address, tcp6 with an IPv4 one: no listener
        if proto is not None and universal is not None and owner is not None:
            host, port = universal
            found.append(
                Registration(program, version, proto, port, owner.decode("ascii", "replace"), host)
            )
    return tuple(found)


def _results(reply: bytes, xid: int) -> "_Reader":
    """A reader at the results of an accepted, successful reply to call `xid`."""
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
    if accepted == _PROG_MISMATCH:
        raise _VersionMismatch
    if accepted != _SUCCESS:
        raise _malformed(_ACCEPT_ERRORS.get(accepted, f"accept status {accepted}"))
    return reader


def _follows(reader: "_Reader") -> bool:
    """An XDR list's "another entry follows" marker. Each call reads 4 bytes of a capped
    reply, so a list cannot go on for ever."""
    follows = reader.u32()
    if follows not in (0, 1):
        raise _malformed("malformed reply (bad list marker)")
    return follows == 1


def _universal(address: bytes) -> tuple[IPAddress, int] | None:
    """The host and port of a universal address: "<host>.<high byte>.<low byte>" (RFC 5665),
    the host an IPv4 or IPv6 address in numbers."""
    parts = address.rsplit(b".", 2)
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 3 for p in parts[1:]):
        return None
    high, low = int(parts[1]), int(parts[2])
    if high > 255 or low > 255 or not high << 8 | low:
        return None
    try:
        return ipaddress.ip_address(parts[0].decode("ascii")), high << 8 | low
    except (UnicodeDecodeError, ValueError):
        return None


def _unusable_source(error: OSError) -> str:
    """Why a call cannot be made from the source address asked for, for people."""
    if error.errno == errno.EADDRNOTAVAIL:
        return "not an address of this host"
    return error.strerror or type(error).__name__


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

    def string(self) -> bytes | None:
        """An XDR string, padded to 4 bytes; None (but stepped over) if longer than the cap."""
        size = self.u32()
        start = self._advance((size + 3) & ~3)
        return self._data[start : start + size] if size <= limits.RPCB_STRING_BYTES_MAX else None

    def skip_auth(self) -> None:
        """An opaque_auth: flavour, length, body padded to 4 bytes."""
        self.u32()
        size = self.u32()
        if size > _AUTH_BYTES_MAX:
            raise _malformed(f"malformed reply (verifier longer than {_AUTH_BYTES_MAX} bytes)")
        self._advance((size + 3) & ~3)
