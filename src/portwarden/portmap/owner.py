"""Which processes own a port, and whether they use TCP Wrappers.

hosts.allow and hosts.deny protect rpcbind only when rpcbind is linked with libwrap, and several
distributions build it without. A process linked with libwrap has libwrap.so mapped, so the
check looks at the memory maps of the processes that own the port (found as the audit finds
them: the kernel's socket tables, then the `socket:[inode]` links in /proc/<pid>/fd). Another
user's descriptors and maps are readable only by root; without them no owner is found.
"""

import os
import pwd
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from portwarden import limits
from portwarden.audit.sockets import PROC, Scope, group_name, holders, open_sockets, user_name
from portwarden.net.addresses import Proto
from portwarden.text import one_line

_LIBWRAP = "libwrap.so"
# The users rpcbind switches to once started, by distribution: Debian's and Ubuntu's, Fedora's.
RPCBIND_USERS = ("_rpc", "rpc")


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
        sockets, _ = open_sockets((Proto.TCP, Proto.UDP), Scope.port_only(port))
    except OSError:
        return ()
    inodes = {s.inode for s in sockets}
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
    service manager, pid 1, holds the sockets too, but only hands them to rpcbind: alone, it
    serves nothing yet (rpcbind starts at the first call)."""
    return tuple(o for o in owners if o.pid != 1)


@dataclass(frozen=True)
class Credentials:
    """Who a process acts as when it opens a file: its effective uid and gid, its groups."""

    uid: int
    gid: int
    groups: frozenset[int]

    def can_read(self, path: Path) -> bool | None:
        """Whether it can read `path`, as the kernel decides (mode bits, POSIX ACLs, and the
        rest): `test -r` run as these ids, so access(2) answers. None when that cannot be
        tried (only root can take other ids) or gives no answer."""
        try:
            done = subprocess.run(
                ["test", "-r", str(path)],
                user=self.uid,
                group=self.gid,
                extra_groups=sorted(self.groups),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=limits.RPCBIND_FILE_TEST_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return {0: True, 1: False}.get(done.returncode)


def credentials(pid: int) -> Credentials | None:
    """From /proc/<pid>/status (effective ids: the second field of Uid and Gid); None when it
    cannot be read (the process exited) or makes no sense."""
    try:
        status = (PROC / str(pid) / "status").read_text(errors="replace")
        fields = dict(line.partition(":")[::2] for line in status.splitlines())
        return Credentials(
            int(fields["Uid"].split()[1]),
            int(fields["Gid"].split()[1]),
            frozenset(int(g) for g in fields.get("Groups", "").split()),
        )
    except (OSError, KeyError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Reader:
    """Who reads the wrappers files for the portmapper: `who` says it for people."""

    who: str
    credentials: Credentials


def readers(owners: Iterable[Owner]) -> tuple[Reader, ...]:
    """The users that read hosts.allow and hosts.deny for the portmapper: those of the serving
    processes that use TCP Wrappers; when no process serves port 111 (rpcbind is not running,
    or only the service manager holds the socket), the user rpcbind switches to when it starts
    (see `rpcbind_user`). Empty when neither is known."""
    serving = tuple(owners)
    found = []
    for owner in serving:
        who = credentials(owner.pid) if owner.libwrap else None
        if who is not None:
            found.append(
                Reader(
                    f"rpcbind (pid {owner.pid}, {one_line(owner.name)}) runs as {_user(who.uid)}",
                    who,
                )
            )
    if serving:
        return tuple(found)
    user = rpcbind_user()
    if user is None:
        return ()
    return (
        Reader(f"rpcbind is not running; when it starts it switches to {_user(user.uid)}", user),
    )


def rpcbind_user() -> Credentials | None:
    """The user rpcbind runs as once started: rpcbind built with `--with-rpcuser` (Debian's:
    `_rpc`; Fedora's: `rpc`) always switches to it, with its passwd group and no supplementary
    groups (setgid, setgroups(0, NULL), setuid); None when passwd has neither user."""
    for name in RPCBIND_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Credentials(entry.pw_uid, entry.pw_gid, frozenset())
    return None


def _user(uid: int) -> str:
    return f"{one_line(user_name(uid))} (uid {uid})"


def unread_files(paths: Iterable[Path], serving: tuple[Owner, ...]) -> tuple[list[str], list[str]]:
    """Which of `paths` TCP Wrappers cannot read for the portmapper (`serving`: the processes
    that serve port 111): one line for each file a reader cannot read; and, when no reader is
    known (no rpcbind serves, and passwd has none of RPCBIND_USERS), one line for each file not
    readable by all, a doubt rather than a fact."""
    found = readers(serving)
    if found or serving:
        return [why for why in (_unreadable(p, found) for p in paths) if why], []
    return [], [why for why in map(_not_world_readable, paths) if why]


def _unreadable(path: Path, found: Iterable[Reader]) -> str | None:
    """Why one of `found` cannot read `path`, in one line naming the file, the reader and the
    file's mode and owner; None when every one can (or the file does not exist yet: protect
    creates it readable by all)."""
    try:
        status = path.stat()
    except OSError:
        return None
    for reader in found:
        if reader.credentials.can_read(path) is False:
            return f"{path}: {reader.who}, which cannot read it ({_mode(status)})"
    return None


def _not_world_readable(path: Path) -> str | None:
    """For when no reader is known: `path` not readable by all, in one line; else None."""
    try:
        status = path.stat()
    except OSError:
        return None
    if status.st_mode & stat.S_IROTH:
        return None
    return (
        f"{path} is not readable by all ({_mode(status)}), and no rpcbind runs and passwd "
        f"has no {' or '.join(RPCBIND_USERS)} user to tell which user it will run as: unless "
        "that user can read it, TCP Wrappers will refuse every caller"
    )


def _mode(status: os.stat_result) -> str:
    return (
        f"mode {stat.S_IMODE(status.st_mode):o}, owner {one_line(user_name(status.st_uid))}:"
        f"{one_line(group_name(status.st_gid))}"
    )
