"""The kernel's socket tables and who owns each socket.

Only sockets that can take traffic from outside are kept: TCP sockets in LISTEN and UDP sockets
that are not connected to one peer, and of those only the ones in the audit's `Scope`. They are
asked of the kernel over sock_diag, which also says which device a socket is bound to and
whether an IPv6 socket takes IPv4; /proc/net/tcp, tcp6, udp and udp6, which say neither, are
read only when sock_diag cannot answer. The owner (pid, program) is found by scanning
/proc/*/fd for the socket's inode; a process that exits during the scan is simply not found.
"""

import grp
import ipaddress
import os
import pwd
import re
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from portwarden import limits
from portwarden.net import diagfilter, sockdiag
from portwarden.net.addresses import PORTMAPPER_PORT, IPAddress, Proto
from portwarden.net.local import unmapped

PROC = Path("/proc")
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"
_WORD = struct.Struct("=I")  # the tables print addresses as host-order 32-bit words
_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")  # a port, or one 32-bit word of an address
_DECIMAL = re.compile(r"[0-9]{1,20}")  # a uid, an inode


class Socket(NamedTuple):
    proto: Proto
    address: IPAddress
    port: int
    uid: int
    inode: int
    device: int | None = None  # the index of the device it is bound to, 0 none; None: not known
    v6only: bool | None = None  # an IPv6 socket that takes no IPv4; None: not known

    @property
    def wildcard(self) -> bool:
        return self.address.is_unspecified


class Owner(NamedTuple):
    pid: int
    program: str
    uid: int | None = None  # the process's effective uid; None when its status was unreadable


def parse_table(text: str, proto: Proto) -> list[Socket]:
    """The open sockets in one table's text (tcp or tcp6 style); bad lines are skipped."""
    wanted = _TCP_LISTEN if proto is Proto.TCP else _UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        address_hex, _, port_hex = fields[1].partition(":")
        try:
            address = _address(address_hex)
            port, uid, inode = _hex(port_hex), _decimal(fields[7]), _decimal(fields[9])
        except ValueError:
            continue
        if 0 < port <= 65535:
            found.append(Socket(proto, address, port, uid, inode))
    return found


def _address(text: str) -> IPAddress:
    if len(text) not in (8, 32):
        raise ValueError("not an address")
    packed = b"".join(_WORD.pack(_hex(text[i : i + 8])) for i in range(0, len(text), 8))
    return unmapped(ipaddress.ip_address(packed))  # bound to ::ffff:a.b.c.d: that IPv4 only


def _hex(text: str) -> int:
    """A number the kernel printed in hex digits, nothing else: int() also takes a sign, `0x`,
    `_` and blanks, and a negative word would make struct.pack raise struct.error, not the
    ValueError a bad line is skipped for. Raises ValueError."""
    if not _HEX.fullmatch(text):
        raise ValueError("not hex digits")
    return int(text, 16)


def _decimal(text: str) -> int:
    """A number the kernel printed in decimal digits (ASCII ones only). Raises ValueError."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError("not decimal digits")
    return int(text)


_DIAG_QUERIES = {
    Proto.TCP: (socket.IPPROTO_TCP, sockdiag.TCP_LISTEN_ONLY),
    Proto.UDP: (socket.IPPROTO_UDP, sockdiag.UDP_UNCONNECTED),
}
_WILDCARDS = (ipaddress.IPv4Address(0), ipaddress.IPv6Address(0))


@dataclass(frozen=True)
class Scope:
    """The sockets an audit looks at: any on port `anywhere` (the portmapper's, asked wherever
    it listens), and those bound to one of `addresses` or to a wildcard with a port from
    `min_port` to `max_port` that is not in `skipped` for its protocol. The rest are left out
    while the tables are read, in the kernel where it can (a sock_diag filter), before
    AUDIT_SOCKETS_MAX is counted: a local user's flood of sockets on addresses or ports the
    audit does not look at (loopback, by default) cannot push out the ones it does."""

    addresses: frozenset[IPAddress]  # without a scope (`%device`): the tables show none
    min_port: int = 1
    max_port: int = 65535
    skipped: frozenset[tuple[Proto, int]] = frozenset()  # skipped on every audited address
    anywhere: int = PORTMAPPER_PORT

    @classmethod
    def port_only(cls, port: int) -> "Scope":
        """Every socket on `port`, on any address, and nothing else."""
        return cls(frozenset(), min_port=1, max_port=0, anywhere=port)

    def takes(self, proto: Proto, address: IPAddress, port: int) -> bool:
        if port == self.anywhere:
            return True
        return (
            self.min_port <= port <= self.max_port
            and (proto, port) not in self.skipped
            and (address.is_unspecified or address in self.addresses)
        )

    def bytecode(self, proto: Proto) -> bytes:
        """The same test as a sock_diag filter; b"" (no filter) when it would not fit."""
        skipped = sorted(port for skip_proto, port in self.skipped if skip_proto is proto)
        bound = diagfilter.AnyOf(tuple(map(diagfilter.bound_to, (*_WILDCARDS, *self.addresses))))
        audited = diagfilter.AllOf(
            (
                diagfilter.port_at_least(self.min_port),
                diagfilter.port_at_most(self.max_port),
                *map(diagfilter.port_is_not, skipped),
                bound,
            )
        )
        try:
            return diagfilter.compile_filter(
                diagfilter.AnyOf((diagfilter.port_is(self.anywhere), audited))
            )
        except ValueError:  # thousands of addresses or skipped ports: filtered here only
            return b""


class Tables(NamedTuple):
    """What the socket tables hold in a scope."""

    sockets: list[Socket]
    # Per protocol with more distinct sockets in scope than AUDIT_SOCKETS_MAX: how many sockets
    # in scope it had (all of them counted); only AUDIT_SOCKETS_MAX distinct ones were kept.
    cut: dict[Proto, int]


def open_sockets(protos: Iterable[Proto], scope: Scope) -> Tables:
    """Every listening TCP / unconnected UDP socket in `scope`, IPv4 and IPv6: from sock_diag,
    else from /proc/net. Sockets alike but for their owner (a user may open thousands on one
    port with SO_REUSEPORT) are kept once, the lowest uid's. Raises OSError (see
    `proc_sockets`)."""
    sockets: list[Socket] = []
    cut: dict[Proto, int] = {}
    for proto in protos:
        try:
            kept, seen = _distinct(_diag_sockets(proto, scope), proto, scope)
        except OSError:  # a kernel without inet_diag (or udp_diag)
            kept, seen = _distinct(iter(proc_sockets(proto)), proto, scope)
        sockets += kept
        if seen is not None:
            cut[proto] = seen
    return Tables(sockets, cut)


def _diag_sockets(proto: Proto, scope: Scope) -> Iterator[Socket]:
    protocol, states = _DIAG_QUERIES[proto]
    for s in sockdiag.sockets(protocol, states, scope.bytecode(proto)):
        yield Socket(proto, s.address, s.port, s.uid, s.inode, s.device, s.v6only)


def _distinct(
    found: Iterator[Socket], proto: Proto, scope: Scope
) -> tuple[list[Socket], int | None]:
    """At most AUDIT_SOCKETS_MAX distinct sockets in scope, and, if there were more, how many
    sockets were in scope: past the cap the rest are only counted, so memory stays bounded
    however many a user opens."""
    kept: dict[tuple[IPAddress, int, int | None, bool | None], Socket] = {}
    seen = 0
    full = False
    for sock in found:
        if sock.port == 0 or not scope.takes(proto, sock.address, sock.port):
            continue
        seen += 1
        key = (sock.address, sock.port, sock.device, sock.v6only)
        held = kept.get(key)
        if held is None and len(kept) >= limits.AUDIT_SOCKETS_MAX:
            full = True
        elif held is None or sock.uid < held.uid:
            kept[key] = sock
    return list(kept.values()), (seen if full else None)


def proc_sockets(proto: Proto, proc: Path = PROC) -> list[Socket]:
    """The same from /proc/net, without device or V6ONLY. Raises OSError, naming the file, when
    a table cannot be read (an IPv6 one may be absent: a kernel without IPv6)."""
    sockets: list[Socket] = []
    for name in (proto.value, proto.value + "6"):
        path = proc / "net" / name
        try:
            text = path.read_text()
        except FileNotFoundError:
            if name.endswith("6"):
                continue
            raise OSError(f"cannot read {path}: no such file") from None
        except OSError as error:
            raise OSError(f"cannot read {path}: {error.strerror or error}") from None
        sockets += parse_table(text, proto)
    return sockets


def owners(inodes: set[int], proc: Path = PROC) -> dict[int, Owner]:
    """Socket inode -> the lowest pid holding it (usually the parent of a forking daemon)."""
    return {inode: held[0] for inode, held in holders(inodes, proc).items()}


def holders(inodes: set[int], proc: Path = PROC) -> dict[int, list[Owner]]:
    """Socket inode -> every process holding it, lowest pid first (a socket-activated service
    is held by systemd too)."""
    found: dict[int, list[Owner]] = {}
    pids = sorted(int(entry.name) for entry in os.scandir(proc) if entry.name.isdigit())
    for pid in pids:
        try:
            fds = os.scandir(proc / str(pid) / "fd")
            with fds:
                links = [_link(fd.path) for fd in fds]
        except OSError:  # the process exited, or we may not look
            continue
        mine = {int(link[8:-1]) for link in links if link.startswith("socket:[")} & inodes
        if mine:
            owner = Owner(pid, _program(proc, pid), _uid(proc, pid))
            for inode in mine:
                found.setdefault(inode, []).append(owner)
    return found


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # that descriptor was closed meanwhile
        return ""


def _program(proc: Path, pid: int) -> str:
    """The process's name as it is (any local user can choose it, a newline included): it is
    escaped where it is shown, once."""
    try:
        return (proc / str(pid) / "comm").read_text(errors="replace").removesuffix("\n")
    except OSError:
        return "?"


def _uid(proc: Path, pid: int) -> int | None:
    """The process's effective uid (`Uid:` real, effective, saved, filesystem)."""
    try:
        status = (proc / str(pid) / "status").read_text(errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return None


def user_name(uid: int) -> str:
    return _name_of(pwd.getpwuid, uid)


def group_name(gid: int) -> str:
    return _name_of(grp.getgrgid, gid)


def _name_of(look_up: Callable[[int], Any], number: int) -> str:
    """The name of a uid or gid, or the number when it has none."""
    try:
        return str(look_up(number)[0])
    except KeyError:
        return str(number)
