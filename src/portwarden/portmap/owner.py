"""Which processes own a port, and whether they use TCP Wrappers.

hosts.allow and hosts.deny protect rpcbind only when rpcbind is linked with libwrap, and several
distributions build it without. A process linked with libwrap has libwrap.so mapped, so the
check looks at the memory maps of the processes that own the port: the sockets bound to it are
found in /proc/net/{tcp,tcp6,udp,udp6} (TCP listeners and UDP sockets), by inode, and their
owners by the `socket:[inode]` links in /proc/<pid>/fd. Another user's descriptors and maps
are readable only by root; without them no owner is found.
"""

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TABLES = ("tcp", "tcp6", "udp", "udp6")
_TCP_LISTEN = "0A"
_LIBWRAP = "libwrap.so"


@dataclass(frozen=True)
class Owner:
    """A process with a socket on the port."""

    pid: int
    name: str  # /proc/<pid>/comm
    libwrap: bool  # it maps libwrap.so


def _socket_inodes(port: int) -> set[str]:
    """The inodes of the TCP listeners and UDP sockets bound to `port`, IPv4 and IPv6."""
    inodes = set()
    for table in _TABLES:
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[1].rpartition(":")[2] != f"{port:04X}":
                continue
            if table.startswith("tcp") and fields[3] != _TCP_LISTEN:
                continue
            inodes.add(fields[9])
    return inodes


def _holds(pid: str, links: set[str]) -> bool:
    """Whether process `pid` has a descriptor open on one of the sockets in `links`."""
    folder = _PROC / pid / "fd"
    try:
        descriptors = os.listdir(folder)
    except OSError:  # gone, or another user's process and we are not root
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(folder / descriptor) in links:
                return True
        except OSError:
            continue
    return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def port_owners(port: int) -> tuple[Owner, ...]:
    """The processes with a socket bound to `port` in this network namespace, by pid."""
    links = {f"socket:[{inode}]" for inode in _socket_inodes(port)}
    if not links:
        return ()
    owners = []
    for pid in sorted(filter(str.isdigit, os.listdir(_PROC)), key=int):
        if not _holds(pid, links):
            continue
        maps = _read(_PROC / pid / "maps")
        if maps is None:  # it exited meanwhile, or its maps are not ours to read
            continue
        name = (_read(_PROC / pid / "comm") or "").strip()
        libwrap = any(line.rpartition("/")[2].startswith(_LIBWRAP) for line in maps.splitlines())
        owners.append(Owner(int(pid), name, libwrap))
    return tuple(owners)
