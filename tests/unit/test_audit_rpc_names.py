"""Which portmapper registrations may name an open port: only root's, since rpcbind lets any
local user register any program number for any port."""

import ipaddress
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.audit import check
from portwarden.audit.check import rpc_programs
from portwarden.audit.sockets import Socket
from portwarden.config.audit_policy import Policy
from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.portmapper import Registration

TCP, UDP = Proto.TCP, Proto.UDP
ANY4 = ipaddress.ip_address("0.0.0.0")
ANY6 = ipaddress.ip_address("::")
ROOTS = Socket(TCP, ANY4, 2049, 0, 11)
NOBODYS = Socket(TCP, ANY4, 40000, 65534, 12)
NOBODYS_UDP = Socket(UDP, ANY4, 40000, 65534, 13)
HERE = ipaddress.ip_address("198.18.0.1")  # the audited address


def on(*sockets: Socket) -> list[tuple[IPAddress, Socket]]:
    return [(HERE, sock) for sock in sockets]


def refused(program: int, port: str, owner: str) -> str:
    return (
        f"RPC program {program} for port {port} was registered by owner {owner}, not known "
        "to be root: the port is not named by it"
    )


def test_root_names_any_socket_and_nobody_else_names_one() -> None:
    registered = [
        Registration(100003, 3, TCP, 2049, "superuser"),
        Registration(100005, 1, TCP, 40000, "65534"),  # nobody names their own listener
        Registration(100021, 1, UDP, 40000, "unknown"),  # over UDP from loopback: anyone
        Registration(100024, 1, TCP, 2049, "65534"),  # nobody names root's
        Registration(100099, 1, TCP, 40001, "65534"),  # no socket there: nothing to say
    ]
    programs, warnings = rpc_programs(registered, on(ROOTS, NOBODYS, NOBODYS_UDP))
    assert programs == {(HERE, ROOTS): (100003,)}
    assert warnings == [
        refused(100024, "2049/tcp", "65534"),
        refused(100005, "40000/tcp", "65534"),
        refused(100021, "40000/udp", "unknown"),
    ]


def not_roots_socket(program: int, port: str, owner: str) -> str:
    return (
        f"RPC program {program} for port {port} was registered by owner {owner}, for a "
        "socket of nobody (uid 65534), not root's: the port is not named by it"
    )


def test_superuser_names_no_socket_of_another_user() -> None:
    """rpcbind records `superuser` also for a PMAPPROC_SET over UDP from a reserved port, which
    any user can send where unprivileged ports start at 0: it names root's sockets only."""
    registered = [Registration(100005, 1, TCP, 40000, "superuser")]
    assert rpc_programs(registered, on(NOBODYS)) == (
        {},
        [not_roots_socket(100005, "40000/tcp", "superuser")],
    )


def test_a_version_2_portmapper_names_only_roots_sockets() -> None:
    registered = [Registration(100003, 3, TCP, 2049, None), Registration(1, 1, TCP, 40000, None)]
    programs, warnings = rpc_programs(registered, on(ROOTS, NOBODYS))
    assert programs == {(HERE, ROOTS): (100003,)}
    assert warnings == [not_roots_socket(1, "40000/tcp", "not told (a version 2 portmapper)")]


def test_one_line_per_program_port_and_owner_and_a_hostile_owner_stays_on_it() -> None:
    nobodys_v6 = Socket(TCP, ANY6, 40000, 65534, 14)
    registered = [Registration(7, version, TCP, 40000, "x\nforged: line") for version in (1, 2, 3)]
    programs, warnings = rpc_programs(registered, on(NOBODYS, nobodys_v6))
    assert programs == {}
    assert warnings == [refused(7, "40000/tcp", "x\\nforged: line")]


def test_warnings_are_capped() -> None:
    registered = [Registration(program, 1, TCP, 40000, "1000") for program in range(25)]
    programs, warnings = rpc_programs(registered, on(NOBODYS))
    assert programs == {}
    assert len(warnings) == limits.AUDIT_RPC_WARNINGS_MAX + 1
    assert warnings[-1] == (
        f"{25 - limits.AUDIT_RPC_WARNINGS_MAX} more RPC registrations not known "
        "to be root's did not name ports"
    )
    one_more = [
        Registration(p, 1, TCP, 40000, "1000") for p in range(limits.AUDIT_RPC_WARNINGS_MAX + 1)
    ]
    assert rpc_programs(one_more, on(NOBODYS))[1][-1] == (
        "1 more RPC registration not known to be root's did not name ports"
    )


def test_roots_registration_wins_over_others_for_the_same_socket() -> None:
    roots = Socket(TCP, ANY4, 40000, 0, 15)
    registered = [
        Registration(100024, 1, TCP, 40000, "65534"),
        Registration(100005, 3, TCP, 40000, "superuser"),
    ]
    programs, warnings = rpc_programs(registered, on(roots))
    assert programs == {(HERE, roots): (100005,)}
    assert warnings == [refused(100024, "40000/tcp", "65534")]


def test_every_program_root_registered_for_a_socket_names_it_in_any_order() -> None:
    """nfs (100003) and nfs_acl (100227) share 2049 on every NFS server; rpcbind lists them in
    the order they registered. Both name the socket, always in the same order."""
    both = [
        Registration(100227, 3, TCP, 2049, "superuser"),
        Registration(100003, 3, TCP, 2049, "superuser"),
        Registration(100003, 4, TCP, 2049, "superuser"),
    ]
    for registered in (both, both[::-1]):
        assert rpc_programs(registered, on(ROOTS)) == ({(HERE, ROOTS): (100003, 100227)}, [])


def test_a_registration_names_the_port_only_on_its_own_address_or_a_wildcard() -> None:
    """rpcbind lists where the service said it listens: at 203.0.113.5 (not on this host) it
    names no listener here; at 198.18.0.1 only that address's; at 0.0.0.0 or :: every one."""
    there = ipaddress.ip_address("198.18.0.2")
    registered = [
        Registration(300001, 1, TCP, 5001, "superuser", ipaddress.ip_address("203.0.113.5")),
        Registration(300002, 1, TCP, 5001, "superuser", HERE),
        Registration(300003, 1, TCP, 5001, "superuser", ANY4),
        Registration(300004, 1, TCP, 5001, "superuser", ANY6),
        Registration(300005, 1, TCP, 5001, "65534", ipaddress.ip_address("203.0.113.5")),
    ]
    listener = Socket(TCP, ANY6, 5001, 0, 15)
    programs, warnings = rpc_programs(registered, [(HERE, listener), (there, listener)])
    assert programs == {
        (HERE, listener): (300002, 300003, 300004),
        (there, listener): (300003, 300004),
    }
    assert warnings == []  # nobody's registration is for neither address: nothing to say


ROOTS_RPCBIND = [Socket(proto, ANY4, 111, 0, 20 + n) for n, proto in enumerate((TCP, UDP))]
ASKED = (Registration(100005, 3, TCP, 2049, "superuser"),)


def sysctl_says(monkeypatch: pytest.MonkeyPatch, path: Path, value: str | None) -> list[str]:
    """Point the audit at a fake net.ipv4.ip_unprivileged_port_start (absent when None) and a
    fake portmapper that answers ASKED; returns the list of transports it was asked over."""
    if value is not None:
        path.write_text(value)
    monkeypatch.setattr(check, "_UNPRIVILEGED_PORT_START", path)
    asked: list[str] = []

    def registrations(address: object, proto: Proto, timeout: float) -> tuple[Registration, ...]:
        asked.append(proto.value)
        return ASKED

    monkeypatch.setattr(check, "registrations", registrations)
    return asked


@pytest.mark.parametrize("value", ["1024\n", "2000\n", None])
def test_superuser_is_trusted_where_only_root_binds_reserved_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    """Ports below 1024 are root's (by default, and on kernels before 4.11, which have no such
    setting): only root can register from one, so `superuser` means root."""
    asked = sysctl_says(monkeypatch, tmp_path / "start", value)
    assert check._registrations(ROOTS_RPCBIND, Policy()) == (ASKED, [], None)
    assert asked == ["tcp"]


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("0\n", "is 0"),
        ("1023\n", "is 1023"),
        ("junk", "cannot be read (invalid literal for int() with base 10: 'junk')"),
    ],
)
def test_superuser_names_nothing_where_anyone_binds_a_reserved_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, found: str
) -> None:
    """Where users may bind a port below 1024, any of them can send PMAPPROC_SET from one and
    rpcbind records `superuser`: the portmapper is not asked, no port gets an RPC name (as when
    port 111 is not root's), and one line says why and what to change."""
    asked = sysctl_says(monkeypatch, tmp_path / "start", value)
    warning = (
        f"net.ipv4.ip_unprivileged_port_start {found}: any user may register an RPC "
        "program as superuser from a port below 1024, so port 111 was not asked and no "
        "port is named by an RPC program (set net.ipv4.ip_unprivileged_port_start=1024, "
        "then restart rpcbind and the RPC services, to name them)"
    )
    assert check._registrations(ROOTS_RPCBIND, Policy()) == ((), [warning], None)
    assert asked == []
    assert check._registrations([], Policy()) == ((), [], None)  # no portmapper: nothing to say


def test_a_registration_names_sockets_of_its_family_only() -> None:
    """tcp at 0.0.0.0 names the port on IPv4 addresses, tcp6 at :: on IPv6 ones, and on an IPv4
    address only when the IPv6 socket takes it (dual stack, as the audit chose it for that
    address): there both name it."""
    here6 = ipaddress.ip_address("2001:db8::1")
    roots6 = Socket(TCP, ANY6, 2049, 0, 15)
    registered = [
        Registration(100003, 3, TCP, 2049, "superuser", ANY4),
        Registration(100227, 3, TCP, 2049, "superuser", ANY6),
    ]
    programs, _ = rpc_programs(registered, [(HERE, ROOTS), (here6, roots6), (HERE, roots6)])
    assert programs == {
        (HERE, ROOTS): (100003,),
        (here6, roots6): (100227,),
        (HERE, roots6): (100003, 100227),
    }
