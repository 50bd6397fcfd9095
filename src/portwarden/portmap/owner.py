"""Which processes own a port, and whether they use TCP Wrappers.

hosts.allow and hosts.deny protect rpcbind only when rpcbind is linked with libwrap, and several
distributions build it without. A process linked with libwrap has libwrap.so mapped, so the
check looks at the memory maps of the processes that own the port (found as the audit finds
them: the kernel's socket tables, then the `socket:[inode]` links in /proc/<pid>/fd). Another
user's descriptors and maps are readable only by root; without them no owner is found.
"""

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from portwarden.audit.sockets import PROC, group_name, holders, open_sockets, user_name
from portwarden.detect.probe import Proto
from portwarden.text import one_line

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


def servers(owners: tuple[Owner, ...]) -> tuple[Owner, ...]:
    """The owners that answer on the port. With socket activation (Debian's rpcbind.socket) the
    service manager, pid 1, holds the sockets too, but only hands them to rpcbind."""
    return tuple(o for o in owners if o.pid != 1) or owners


@dataclass(frozen=True)
class Credentials:
    """Who a process acts as when it opens a file: its effective uid and gid, its groups."""

    uid: int
    gid: int
    groups: frozenset[int]

    def can_read(self, found: os.stat_result) -> bool:
        """Whether the permission bits let it read a file (root reads every file)."""
        if self.uid == 0:
            return True
        if found.st_uid == self.uid:
            return bool(found.st_mode & stat.S_IRUSR)
        if found.st_gid == self.gid or found.st_gid in self.groups:
            return bool(found.st_mode & stat.S_IRGRP)
        return bool(found.st_mode & stat.S_IROTH)


def credentials(pid: int) -> Credentials | None:
    """From /proc/<pid>/status (effective ids: the second field of Uid and Gid); None when it
    cannot be read (the process exited) or makes no sense."""
    try:
        status = (PROC / str(pid) / "status").read_text(errors="replace")
        fields = dict(line.partition(":")[::2] for line in status.splitlines())
        return Credentials(int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1]),
                           frozenset(int(g) for g in fields.get("Groups", "").split()))  # fmt: skip
    except (OSError, KeyError, IndexError, ValueError):
        return None


def unreadable(path: Path, owners: Iterable[Owner]) -> str | None:
    """Why a process among `owners` that uses TCP Wrappers cannot read `path`, in one line
    naming the file, the process, its user and the file's mode and owner; None when every one
    can (or the file does not exist yet: protect creates it readable by all)."""
    try:
        found = path.stat()
    except OSError:
        return None
    for owner in owners:
        who = credentials(owner.pid) if owner.libwrap else None
        if who is None or who.can_read(found):
            continue
        return (f"{path}: rpcbind (pid {owner.pid}, {one_line(owner.name)}) runs as "
                f"{one_line(user_name(who.uid))} (uid {who.uid}), which cannot read it (mode "
                f"{stat.S_IMODE(found.st_mode):o}, owner {one_line(user_name(found.st_uid))}:"
                f"{one_line(group_name(found.st_gid))})")  # fmt: skip
    return None
