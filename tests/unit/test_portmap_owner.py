"""Which process owns a port, and whether it maps libwrap: real sockets of a child process."""

import ctypes.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.portmap.owner import Credentials, credentials, port_owners

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
    if libwrap and LIBWRAP is None:
        pytest.skip("libwrap is not installed")
    argv = [sys.executable, "-c", LISTENER, LIBWRAP if libwrap else "", proto]
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


RPC = Credentials(107, 65534, frozenset({120}))


@pytest.mark.parametrize(
    ("mode", "owner", "group", "readable"),
    [
        (0o600, 0, 0, False),  # as some hardening guides set /etc/hosts.allow
        (0o644, 0, 0, True),
        (0o640, 0, 120, True),  # a supplementary group
        (0o640, 0, 65534, True),  # the effective group
        (0o604, 0, 120, False),  # the group's bits count, not the others'
        (0o044, 107, 0, False),  # the owner's bits count, not the others'
        (0o400, 107, 0, True),
    ],
)
def test_who_can_read_by_the_permission_bits(mode: int, owner: int, group: int,
                                             readable: bool) -> None:  # fmt: skip
    found = os.stat_result((stat.S_IFREG | mode, 0, 0, 1, owner, group, 0, 0, 0, 0))
    assert RPC.can_read(found) is readable
    assert Credentials(0, 0, frozenset()).can_read(found)  # root reads every file
