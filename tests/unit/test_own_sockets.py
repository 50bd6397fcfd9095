"""The classic modes' own sockets are no service in the host view. The kernel lists them as
listeners and unconnected UDP sockets like any other; counted, a reload to a stealth or
advanced mode found their ports "served" a moment ago and kept them out of the tripwires for
SERVICE_GONE_GRACE (`stcp: watching 0 tcp ports`). The kernel's answers are stood in for;
tests/e2e/test_config_reload.py reloads a real daemon."""

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portwarden.net import ports
from portwarden.net.addresses import Proto
from portwarden.net.ports import ANY4, ANY6
from portwarden.net.sockdiag import DiagSocket
from portwarden.sensors import hostview, listener
from portwarden.sensors.hostview import HostView
from portwarden.sensors.listener import ListenerSensor

TRIPWIRE, SERVICE = 11, 22
SERVICE_INODE = 1  # another program's socket (ours are far past 1)
SERVED = frozenset({(SERVICE, ANY6), (SERVICE, ANY4)})
_KINDS = {Proto.TCP: socket.SOCK_STREAM, Proto.UDP: socket.SOCK_DGRAM}
_NUMBERS = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


@pytest.fixture(autouse=True)
def no_real_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classic sensor's sockets are made but not bound (the kernel's tables are stood in
    for): nothing of the host's is touched."""
    monkeypatch.setattr(listener, "_bind", lambda proto, _port: socket.socket(type=_KINDS[proto]))
    monkeypatch.setattr(hostview, "local_addresses", frozenset)


Kernel = Callable[[pytest.MonkeyPatch, Path, Proto, dict[int, int]], None]


def sock_diag(
    monkeypatch: pytest.MonkeyPatch, _folder: Path, proto: Proto, inodes: dict[int, int]
) -> None:
    """A kernel whose sock_diag lists, for `proto`, a dual-stack socket on each port of
    `inodes` (port -> the socket's inode)."""

    def sockets(protocol: int, _states: int, _program: bytes = b"") -> Iterator[DiagSocket]:
        if protocol != _NUMBERS[proto]:
            return iter(())
        wildcard = ipaddress.IPv6Address("::")
        return iter(
            DiagSocket(wildcard, port, 0, found, 0, False) for port, found in inodes.items()
        )

    monkeypatch.setattr(ports, "sockets", sockets)


def proc_net(
    monkeypatch: pytest.MonkeyPatch, folder: Path, proto: Proto, inodes: dict[int, int]
) -> None:
    """A kernel without sock_diag, whose /proc/net/tcp6 (udp6), in `folder`, lists the same."""

    def no_sock_diag(*_args: object) -> Iterator[DiagSocket]:
        raise OSError("no inet_diag")

    state = "0A" if proto is Proto.TCP else "07"
    lines = [
        f"   {n}: 00000000000000000000000000000000:{port:04X} 00000000000000000000000000000000:0000"
        f" {state} 00000000:00000000 00:00000000 00000000     0        0 {found} 2 0000000000000000"
        for n, (port, found) in enumerate(inodes.items())
    ]
    header = "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt uid"
    for name in ("tcp", "tcp6", "udp", "udp6"):
        listed = lines if name == proto.value + "6" else []
        (folder / name).write_text("\n".join([header, *listed]) + "\n")
    monkeypatch.setattr(ports, "sockets", no_sock_diag)
    monkeypatch.setattr(ports, "_PROC", folder)


@pytest.mark.parametrize("proto", list(Proto))
@pytest.mark.parametrize("kernel", [sock_diag, proc_net])
def test_the_classic_modes_sockets_are_no_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, proto: Proto, kernel: Kernel
) -> None:
    host = HostView()
    sensor = ListenerSensor(proto, (TRIPWIRE,), None, host)
    (ours,) = sensor.sockets.values()
    kernel(monkeypatch, tmp_path, proto, {TRIPWIRE: inode(ours), SERVICE: SERVICE_INODE})
    host.refresh()
    assert host.bound(proto) == SERVED
    # Once closed, its inode is not left out any more (a later socket may get it).
    sensor.close()
    host.refresh()
    assert host.bound(proto) == SERVED | {(TRIPWIRE, ANY6), (TRIPWIRE, ANY4)}


def test_a_sensor_cut_short_owns_nothing_any_more(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Out of descriptors halfway: the sockets it made are closed, and no longer ours."""
    made: dict[int, int] = {}

    def bind(proto: Proto, port: int) -> socket.socket:
        if port == SERVICE:
            raise OSError(24, "Too many open files")
        sock = socket.socket(type=_KINDS[proto])
        made[port] = inode(sock)
        return sock

    monkeypatch.setattr(listener, "_bind", bind)
    host = HostView()
    with pytest.raises(OSError, match=f"out of file descriptors at port {SERVICE}"):
        ListenerSensor(Proto.TCP, (TRIPWIRE, SERVICE), None, host)
    sock_diag(monkeypatch, tmp_path, Proto.TCP, made)
    host.refresh()
    assert host.bound(Proto.TCP) == {(TRIPWIRE, ANY6), (TRIPWIRE, ANY4)}
