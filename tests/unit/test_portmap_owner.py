"""Which process owns a port, and whether it maps libwrap: real sockets of a child process."""

import ctypes.util
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.audit.sockets import group_name, user_name
from portwarden.portmap import owner
from portwarden.portmap.owner import Credentials, Owner, credentials, port_owners
from tests.lab.acl import mode_600_and_reader

# A child with one socket on a free port (TCP listening, or UDP), with or without libwrap loaded;
# it prints the port and lives until its stdin closes.
LISTENER = """
import ctypes, socket, sys
if sys.argv[1]:
    ctypes.CDLL(sys.argv[1])
tcp = sys.argv[2] == "tcp"
sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
sock.bind(("::1", 0))
if tcp:
    sock.listen()
print(sock.getsockname()[1], flush=True)
sys.stdin.read()
"""
LIBWRAP = ctypes.util.find_library("wrap")


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("libwrap", [True, False])
def test_owner_of_a_port_and_whether_it_maps_libwrap(proto: str, libwrap: bool) -> None:
    library = LIBWRAP if libwrap else ""
    if library is None:
        pytest.skip("libwrap is not installed")
    argv = [sys.executable, "-c", LISTENER, library, proto]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            port = int(child.stdout.readline())
            owners = port_owners(port)
            name = Path(f"/proc/{child.pid}/comm").read_text().strip()
            assert [(o.pid, o.name, o.libwrap) for o in owners] == [(child.pid, name, libwrap)]
        finally:
            child.stdin.close()
    assert port_owners(port) == ()


def test_credentials_are_the_effective_ids_and_groups() -> None:
    found = credentials(os.getpid())
    assert found == Credentials(os.geteuid(), os.getegid(), frozenset(os.getgroups()))
    assert credentials(2**22 + 1) is None  # above pid_max: no such process


# Ids no account on this host has: a file's access is decided by its bits and ACL alone.
UID, GID, GROUP = 64999, 64998, 64997
RPC = Credentials(UID, GID, frozenset({GROUP}))
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root can take other ids")


@pytest.fixture
def open_folder(tmp_path: Path) -> Path:
    """A folder any user may enter (pytest's own are root's alone)."""
    tmp_path.chmod(0o755)
    tmp_path.parent.chmod(0o755)
    tmp_path.parent.parent.chmod(0o755)
    return tmp_path


@root_only
@pytest.mark.parametrize(
    ("mode", "owner", "group", "readable"),
    [
        (0o600, 0, 0, False),  # as some hardening guides set /etc/hosts.allow
        (0o644, 0, 0, True),
        (0o640, 0, GROUP, True),  # a supplementary group
        (0o640, 0, GID, True),  # the effective group
        (0o604, 0, GROUP, False),  # the group's bits count, not the others'
        (0o044, UID, 0, False),  # the owner's bits count, not the others'
        (0o400, UID, 0, True),
    ],
)
def test_who_can_read_as_the_kernel_decides(
    open_folder: Path, mode: int, owner: int, group: int, readable: bool
) -> None:
    path = open_folder / "hosts.allow"
    path.write_text("")
    os.chown(path, owner, group)
    path.chmod(mode)
    assert RPC.can_read(path) is readable
    assert Credentials(0, 0, frozenset()).can_read(path)  # root reads every file


@root_only
def test_an_acl_entry_lets_the_user_read_a_file_of_mode_600(open_folder: Path) -> None:
    path = open_folder / "hosts.allow"
    path.write_text("")
    path.chmod(0o600)
    assert RPC.can_read(path) is False
    try:
        os.setxattr(path, "system.posix_acl_access", mode_600_and_reader(UID))
    except OSError as error:
        pytest.skip(f"no POSIX ACLs here: {error.strerror}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the mask shows as the group's bits
    assert RPC.can_read(path) is True
    assert Credentials(UID + 1, GID, frozenset()).can_read(path) is False


def test_only_root_can_try_as_another_user(tmp_path: Path) -> None:
    """Without root, taking other ids fails: no answer rather than a wrong one. Tried in a
    child that gives up root first (as nobody), so the test runs as root too."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            code = 0 if RPC.can_read(tmp_path) is None else 1
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_rpcbind_not_running_is_read_for_by_the_user_it_switches_to(
    open_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's rpcbind switches to _rpc at start, with no supplementary group."""
    entry = pwd.struct_passwd(("_rpc", "x", UID, GID, "", "/run/rpcbind", "/usr/sbin/nologin"))
    names: list[str] = []

    def getpwnam(name: str) -> pwd.struct_passwd:
        names.append(name)
        if name != "_rpc":
            raise KeyError(name)
        return entry

    monkeypatch.setattr(owner.pwd, "getpwnam", getpwnam)
    assert owner.rpcbind_user() == Credentials(UID, GID, frozenset())
    [reader] = owner.readers(())
    assert reader.who == f"rpcbind is not running; when it starts it switches to {UID} (uid {UID})"
    systemd = (Owner(1, "systemd", libwrap=False),)  # socket activation: pid 1 alone
    assert owner.readers(owner.servers(systemd)) == (reader,)
    names.clear()
    monkeypatch.setattr(owner, "RPCBIND_USERS", ("none", "other"))
    assert owner.rpcbind_user() is None
    assert names == ["none", "other"]  # each tried, in order
    assert owner.readers(()) == ()


def test_with_no_reader_known_a_file_not_readable_by_all_is_a_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owner, "rpcbind_user", lambda: None)
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("")
    deny.write_text("")
    allow.chmod(0o600)
    deny.chmod(0o644)
    unread, doubts = owner.unread_files((allow, deny, tmp_path / "missing"), ())
    assert unread == []
    assert doubts == [
        f"{allow} is not readable by all (mode 600, owner {user_name(os.geteuid())}:"
        f"{group_name(os.getegid())}), and no rpcbind runs and passwd has no _rpc or rpc user "
        "to tell which user it will run as: unless that user can read it, TCP Wrappers will "
        "refuse every caller"
    ]
    # A server that does not use TCP Wrappers reads nothing: no doubt either.
    assert owner.unread_files((allow,), (Owner(4242, "rpcbind", libwrap=False),)) == ([], [])
