"""Which processes own a port, and whether they use TCP Wrappers.

hosts.allow and hosts.deny protect rpcbind only when rpcbind is linked with libwrap, and several
distributions build it without. A process linked with libwrap has libwrap.so mapped, so the
check looks at the memory maps of the processes that own the port (found as the audit finds
them: the kernel's socket tables, then the `socket:[inode]` links in /proc/<pid>/fd). Another
user's descriptors and maps are readable only by root; without them no owner is found.
"""

from dataclasses import dataclass

from portwarden.audit.sockets import PROC, holders, open_sockets
from portwarden.detect.probe import Proto

_LIBWRAP = "libwrap.so"


@dataclass(frozen=True)
class Owner:
    """A process with a socket on the port."""

    pid: int
    name: str  # /proc/<pid>/comm
    libwrap: bool  # it maps libwrap.so


def port_owners(port: int) -> tuple[Owner, ...]:
    """The processes with a socket bound to `port` in this network namespace, by pid; none
    when the socket tables cannot be read."""
    try:
        sockets, _ = open_sockets((Proto.TCP, Proto.UDP))
    except OSError:
        return ()
    inodes = {s.inode for s in sockets if s.port == port}
    if not inodes:
        return ()
    found = {o.pid: o.program for held in holders(inodes).values() for o in held}
    owners = []
    for pid, name in sorted(found.items()):
        try:
            maps = (PROC / str(pid) / "maps").read_text(errors="replace")
        except OSError:  # it exited meanwhile, or its maps are not ours to read
            continue
        libwrap = any(line.rpartition("/")[2].startswith(_LIBWRAP) for line in maps.splitlines())
        owners.append(Owner(pid, name, libwrap))
    return tuple(owners)
