"""Which process owns a port, and whether it maps libwrap: real sockets of a child process."""

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.portmap.owner import port_owners

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
