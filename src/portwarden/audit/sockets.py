"""The kernel's socket tables and who owns each socket.

Only sockets that can take traffic from outside are kept: TCP sockets in LISTEN and UDP sockets
that are not connected to one peer. They are asked of the kernel over sock_diag, which also says
which device a socket is bound to and whether an IPv6 socket takes IPv4; /proc/net/tcp, tcp6,
udp and udp6, which say neither, are read only when sock_diag cannot answer. The owner (pid,
program) is found by scanning /proc/*/fd for the socket's inode; a process that exits during
the scan is simply not found.
"""

import grp
import ipaddress
import os
import pwd
import socket
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from portwarden.detect.probe import IPAddress, Proto
from portwarden.limits import AUDIT_SOCKETS_MAX
from portwarden.net import sockdiag
from portwarden.net.local import unmapped

PROC = Path("/proc")
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"
_WORD = struct.Struct("=I")  # the tables print addresses as host-order 32-bit words


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
            port, uid, inode = int(port_hex, 16), int(fields[7]), int(fields[9])
        except ValueError:
            continue
        if 0 < port <= 65535:
            found.append(Socket(proto, address, port, uid, inode))
    return found


def _address(text: str) -> IPAddress:
    if len(text) not in (8, 32):
        raise ValueError("not an address")
    packed = b"".join(_WORD.pack(int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    return unmapped(ipaddress.ip_address(packed))  # bound to ::ffff:a.b.c.d: that IPv4 only


_DIAG_QUERIES = {Proto.TCP: (socket.IPPROTO_TCP, sockdiag.TCP_LISTEN_ONLY),
                 Proto.UDP: (socket.IPPROTO_UDP, sockdiag.UDP_UNCONNECTED)}  # fmt: skip


def open_sockets(protos: Iterable[Proto]) -> tuple[list[Socket], list[str]]:
    """Every listening TCP / unconnected UDP socket, IPv4 and IPv6, and any warnings: from
    sock_diag, else from /proc/net. Raises OSError (see `proc_sockets`)."""
    sockets: list[Socket] = []
    warnings: list[str] = []
    for proto in protos:
        try:
            found = sockdiag.sockets(*_DIAG_QUERIES[proto])
        except OSError:  # a kernel without inet_diag (or udp_diag)
            sockets += proc_sockets(proto)
            continue
        sockets += [Socket(proto, s.address, s.port, s.uid, s.inode, s.device, s.v6only)
                    for s in found if s.port > 0]  # fmt: skip
    if len(sockets) > AUDIT_SOCKETS_MAX:
        warnings.append(f"{len(sockets)} open sockets; only the first {AUDIT_SOCKETS_MAX} "
                        "are audited")  # fmt: skip
        sockets = sockets[:AUDIT_SOCKETS_MAX]
    return sockets, warnings


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
