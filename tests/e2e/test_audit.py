"""`portwarden audit` in the lab's target: real listeners (TCP and UDP, IPv4 and IPv6, bound to
one address or to all, root's and another user's), a real rpcbind with programs registered by
root and by an unprivileged user, a policy across runs, a capture proving skipped ports are never
touched, and broken portmappers."""

import datetime
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import nmap
from tests.lab.daemon import RunningDaemon
from tests.lab.isolated import NEW_MOUNTS
from tests.lab.services import can_connect
from tests.lab.syslogd import SyslogReceiver
from tests.lab.tcpdump import captured, start_capture

A4, A6 = "198.18.0.1", "2001:db8::1"
PORTMAPPER = 111
NOBODY = 65534

# Run as root, then as `uid` (dropped in the process unless started as `uid`: the interpreter
# under /root is out of reach of other users) before the socket is made, so it is that user's.
# Bound to `device` (SO_BINDTODEVICE) unless it is empty; a TCP listener that is not `accepts`
# never takes a connection off its queue.
_LISTEN = """
import os, socket, sys, time
proto, address, port, v6only, name, uid, device, accepts = sys.argv[1:9]
with open("/proc/self/comm", "w") as comm:
    comm.write(name)
if os.getuid() != int(uid):
    os.setgroups([])
    os.setresgid(int(uid), int(uid), int(uid))
    os.setresuid(int(uid), int(uid), int(uid))
family = socket.AF_INET6 if ":" in address else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
if device:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, int(port)))
if proto == "tcp":
    s.listen(16)
print("listening", flush=True)
while True:
    if proto == "tcp" and accepts == "1":
        s.accept()[0].close()
    elif proto == "tcp":
        time.sleep(60)
    else:
        s.recv(100)
"""

# A registration with rpcbind as user `uid`, as any local user can make one: "local" is
# RPCBPROC_SET (version 3) on rpcbind's Unix socket, where rpcbind records the caller's uid as the
# owner ("superuser" for root); "udp" is PMAPPROC_SET (version 2) over UDP from loopback, where it
# records "unknown", and "udp888" the same from the reserved port 888, where it records
# "superuser". Run inside rpcbind's mount namespace, which holds its private /run.
_REGISTER = """
import os, socket, struct, sys
how, uid, program, version, netid, port = sys.argv[1:7]
os.setgroups([])
os.setresgid(int(uid), int(uid), int(uid))
os.setresuid(int(uid), int(uid), int(uid))
def string(text):
    data = text.encode()
    return struct.pack("!I", len(data)) + data + bytes(-len(data) % 4)
if how == "local":
    host = "::" if netid.endswith("6") else "0.0.0.0"
    call = struct.pack("!12I", 1, 0, 2, 100000, 3, 1, 0, 0, 0, 0, int(program), int(version))
    call += string(netid) + string(f"{host}.{int(port) >> 8}.{int(port) & 255}")
    call += string("superuser")  # a claim rpcbind ignores: it records who called
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect("/run/rpcbind.sock")
        s.sendall(struct.pack("!I", 0x80000000 | len(call)) + call)
        reply = s.recv(100)
else:
    protocol = 6 if netid.startswith("tcp") else 17
    call = struct.pack("!14I", 1, 0, 2, 100000, 2, 1, 0, 0, 0, 0, int(program), int(version),
                       protocol, int(port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if how == "udp888":
            s.bind(("127.0.0.1", 888))
        s.settimeout(5)
        s.sendto(call, ("127.0.0.1", 111))
        reply = s.recv(100)
assert reply[-4:] == b"\\0\\0\\0\\1", "rpcbind refused the registration"
"""


def listen(
    host: Host,
    proto: str,
    address: str,
    port: int,
    name: str,
    v6only: bool = False,
    uid: int = 0,
    device: str = "",
    accepts: bool = True,
) -> subprocess.Popen:
    """A real listener with its own program name, run as `uid`; returns once it is bound."""
    proc = host.popen(
        [
            sys.executable,
            "-c",
            _LISTEN,
            proto,
            address,
            str(port),
            str(int(v6only)),
            name,
            str(uid),
            device,
            str(int(accepts)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    return proc


def stop(host: Host, proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)
    host.processes.remove(proc)


def start_rpcbind(host: Host) -> subprocess.Popen:
    """A real rpcbind with a private /run, so the machine's own /run is never touched."""
    proc = host.popen(
        [
            *NEW_MOUNTS,
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && exec rpcbind -f -w",
        ]
    )
    deadline = time.monotonic() + 10
    while host.run(["rpcinfo", "-p", "127.0.0.1"], check=False).returncode != 0:
        assert time.monotonic() < deadline, "rpcbind did not start"
        time.sleep(0.05)
    return proc


def in_mounts_of(rpcbind: subprocess.Popen) -> list[str]:
    """The start of a command run in rpcbind's mount namespace, which holds its private /run:
    `rpcbind.pid` is rpcbind's own (ip netns exec, unshare and sh each exec the next)."""
    return ["nsenter", "-t", str(rpcbind.pid), "-m", "--"]


def register(
    host: Host,
    rpcbind: subprocess.Popen,
    how: str,
    uid: int,
    program: int,
    version: int,
    netid: str,
    port: int,
) -> None:
    host.run(
        [
            *in_mounts_of(rpcbind),
            sys.executable,
            "-c",
            _REGISTER,
            how,
            str(uid),
            str(program),
            str(version),
            netid,
            str(port),
        ],
        timeout=20,
    )


def unregister(host: Host, rpcbind: subprocess.Popen, program: int, version: int) -> None:
    """Debian's rpcinfo, as root on rpcbind's Unix socket: every netid, whoever registered it
    (a clean-up: a program that was never registered is no error)."""
    host.run(
        [*in_mounts_of(rpcbind), "rpcinfo", "-d", str(program), str(version)],
        check=False,
        timeout=20,
    )


def rpcinfo_owners(host: Host) -> dict[tuple[int, int, str, int], str]:
    """(program, version, netid, port) -> owner, as Debian's rpcinfo lists them (RPCBPROC_DUMP
    version 4), for the tcp, tcp6, udp and udp6 entries."""
    lines = host.run(["rpcinfo", "127.0.0.1"], timeout=20).stdout.splitlines()[1:]
    owners = {}
    for program, version, netid, address, *_, owner in map(str.split, lines):
        if netid in ("tcp", "tcp6", "udp", "udp6"):
            high, low = address.split(".")[-2:]
            owners[(int(program), int(version), netid, int(high) * 256 + int(low))] = owner
    return owners


# Listeners in the target: (proto, bound address, port, program name, IPV6_V6ONLY).
LISTENERS = [
    ("tcp", "::", 8080, "pwa-dual8080", False),  # IPv4 and IPv6
    ("udp", "::", 5300, "pwa-dual5300", False),
    ("tcp", A4, 8081, "pwa-v4only8081", False),  # one address only
    ("tcp", "::", 8082, "pwa-v6only8082", True),  # IPv6 only, though bound to the wildcard
    ("udp", A6, 5301, "pwa-v6only5301", False),
    ("udp", "0.0.0.0", 20048, "pwa-mountd", False),  # registered as mountd (100005)
    ("tcp", "::", 40111, "pwa-rpc400111", False),  # registered as 400111, not in /etc/rpc
]

# What the audit must find, (interface, port, proto) -> (service, program).
EXPECTED = {
    (A4, 111, "tcp"): ("portmapper", "rpcbind"),
    (A6, 111, "tcp"): ("portmapper", "rpcbind"),
    (A4, 111, "udp"): ("portmapper", "rpcbind"),
    (A6, 111, "udp"): ("portmapper", "rpcbind"),
    (A4, 8080, "tcp"): ("http-alt", "pwa-dual8080"),
    (A6, 8080, "tcp"): ("http-alt", "pwa-dual8080"),
    (A4, 5300, "udp"): (None, "pwa-dual5300"),
    (A6, 5300, "udp"): (None, "pwa-dual5300"),
    (A4, 8081, "tcp"): ("tproxy", "pwa-v4only8081"),
    (A6, 8082, "tcp"): (None, "pwa-v6only8082"),
    (A6, 5301, "udp"): (None, "pwa-v6only5301"),
    (A4, 20048, "udp"): ("mountd", "pwa-mountd"),
    (A4, 40111, "tcp"): ("RPC_400111", "pwa-rpc400111"),
    (A6, 40111, "tcp"): ("RPC_400111", "pwa-rpc400111"),
}


@pytest.fixture(scope="module")
def services(lab: Lab) -> Iterator[dict[int, subprocess.Popen]]:
    """The target's services for the whole module, by port: rpcbind on 111, and the listeners,
    two of them registered by root."""
    target = lab.target
    started = {PORTMAPPER: start_rpcbind(target)}
    started |= {
        port: listen(target, proto, address, port, name, v6only)
        for proto, address, port, name, v6only in LISTENERS
    }
    for program, version, netid, port in ((100005, 3, "udp", 20048), (400111, 1, "tcp6", 40111)):
        register(target, started[PORTMAPPER], "local", 0, program, version, netid, port)
    yield started
    target.stop_processes()


def audit_command(
    host: Host, folder: Path, conf: str, *flags: str, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """Run `portwarden audit` in `host` with STATE_DIR in `folder`, under `wrapper`."""
    path = folder / "portwarden.conf"
    path.write_text(f'STATE_DIR="{folder}/state"\n{conf}\n')
    result = host.run(
        [*wrapper, sys.executable, "-m", "portwarden", "audit", "-c", str(path), *flags],
        check=False,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def audit(host: Host, folder: Path, conf: str, *flags: str) -> tuple[int, dict[str, Any], str]:
    """Run `portwarden audit --json` in `host`; returns exit status, the JSON, stderr."""
    result = audit_command(host, folder, conf, "--json", *flags)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


ONLY_LAB = f'AUDIT_INTERFACES="{A4}, {A6}"'


def found(report: dict[str, Any]) -> dict[tuple[str, int, str], tuple[str | None, str]]:
    return {
        (p["interface"], p["port"], p["proto"]): (p["service"], p["program"])
        for p in report["open_ports"]
    }


def kinds(report: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return sorted((f["kind"], f["interface"], f["port"], f["proto"]) for f in report["findings"])


def test_audit_finds_exactly_the_open_ports_with_names_and_owners(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    status, report, _ = audit(lab.target, tmp_path, ONLY_LAB, "--no-state")
    assert report["interfaces"] == [A4, A6]
    assert found(report) == EXPECTED
    by_port = {(p["interface"], p["port"], p["proto"]): p for p in report["open_ports"]}
    mountd = by_port[(A4, 20048, "udp")]
    assert (mountd["rpc_program"], mountd["pid"], mountd["user"]) == (
        100005,
        services[20048].pid,
        "root",
    )
    assert by_port[(A6, 40111, "tcp")]["rpc_program"] == 400111
    # rpcbind makes its sockets as root (uid 0 in the tables), then runs as _rpc: its user.
    assert by_port[(A4, 111, "tcp")]["user"] == "_rpc"
    # Nothing listed, so every open port is new; the report is one JSON object.
    assert status == 1 and len(report["findings"]) == len(EXPECTED)
    assert report["warnings"] == []


POLICY = (
    f'{ONLY_LAB}\nAUDIT_REQUIRED="portmapper/tcp,portmapper/udp,mountd/udp; {A4}:8081/tcp"\n'
    'AUDIT_OPTIONAL="8080/tcp,5300/udp,8082/tcp,5301/udp,RPC_400111/tcp"\n'
    'AUDIT_IGNORE="9091/tcp"'
)


def test_policy_across_runs_missing_restarted_new_and_ignored(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    target = lab.target
    status, report, _ = audit(target, tmp_path, POLICY)
    assert (status, report["findings"], report["warnings"]) == (0, [], [])

    stop(target, services.pop(8081))
    status, report, _ = audit(target, tmp_path, POLICY)
    assert status == 1 and kinds(report) == [("ServiceMissing", A4, 8081, "tcp")]
    [line] = report["findings"]
    assert (line["severity"], line["service"]) == ("crit", "tproxy")
    assert line["device"] == "eth0"  # the device its address is on, as its ServiceRestarted
    assert audit(target, tmp_path, POLICY)[0] == 0  # reported once, as samhain does

    services[8081] = listen(target, "tcp", A4, 8081, "pwa-v4only8081")
    status, report, _ = audit(target, tmp_path, POLICY)
    assert status == 1 and kinds(report) == [("ServiceRestarted", A4, 8081, "tcp")]
    assert report["findings"][0]["program"] == "pwa-v4only8081"
    assert report["findings"][0]["severity"] == "notice"
    assert report["findings"][0]["device"] == "eth0"

    new = listen(target, "tcp", A6, 9090, "pwa-new9090")
    ignored = listen(target, "tcp", "::", 9091, "pwa-ignored")
    status, report, _ = audit(target, tmp_path, POLICY)
    assert status == 1 and kinds(report) == [("ServiceNew", A6, 9090, "tcp")]
    assert report["findings"][0]["pid"] == new.pid
    assert {(A4, 9091, "tcp"), (A6, 9091, "tcp")} <= found(report).keys()
    stop(target, new)
    stop(target, ignored)


def test_text_report_lines(lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path) -> None:
    path = tmp_path / "portwarden.conf"
    path.write_text(f'STATE_DIR="{tmp_path}/state"\n{ONLY_LAB}\nAUDIT_UDP="0"\n')
    result = lab.target.run(
        [sys.executable, "-m", "portwarden", "audit", "-c", str(path)], check=False, timeout=60
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"ServiceNew: {A4}:20048/udp" not in result.stdout  # AUDIT_UDP="0"
    assert (
        f"ServiceNew: {A4}:8081/tcp (maybe_tproxy) program=pwa-v4only8081 "
        f"pid={services[8081].pid} user=root"
    ) in lines
    assert f"ServiceNew: {A6}:40111/tcp (RPC_400111) program=pwa-rpc400111" in result.stdout


def test_the_suggested_policy_names_every_open_port(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """`--suggest` after a migration: its line, put in the file, leaves no ServiceNew."""
    conf = f'{ONLY_LAB}\nAUDIT_REQUIRED="portmapper/tcp"\nAUDIT_OPTIONAL="8080/tcp"'
    result = audit_command(lab.target, tmp_path, conf, "--suggest")
    assert result.returncode == 0, result.stderr
    comment, line = result.stdout.splitlines()
    assert comment.startswith(f"# what is open now on {A4}, {A6} (")
    assert line.startswith('AUDIT_OPTIONAL="8080/tcp; ') and "mountd/udp" in line
    assert not (tmp_path / "state" / "audit.json").exists()  # the state is not kept
    status, report, _ = audit(
        lab.target, tmp_path, f"{conf}\n".replace('AUDIT_OPTIONAL="8080/tcp"', line), "--no-state"
    )
    assert (status, report["findings"]) == (0, [])


def syns(host: Host, capture: Path) -> list[str]:
    return [line for line in captured(host, capture) if "Flags [S]," in line]


def test_the_audit_connects_to_no_service(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Wildcard listeners (8080 and 40111 on the IPv6 wildcard) are judged from the kernel's
    tables: the capture sees no connection from the audit, only the test's own control
    connection from the client afterwards; the skipped 8080 is not reported."""
    target = lab.target
    capture = tmp_path / "syn.pcap"
    tcpdump = start_capture(target, capture, "tcp dst port 8080 or tcp dst port 40111")
    _, report, _ = audit(target, tmp_path, f'{ONLY_LAB}\nAUDIT_SKIP="8080/tcp"', "--no-state")
    assert can_connect(lab.client, A4, 40111)  # the control: the capture does see a connection
    deadline = time.monotonic() + 5
    while not syns(target, capture) and time.monotonic() < deadline:
        time.sleep(0.05)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(timeout=10)
    [control] = syns(target, capture)
    assert f"{lab.client.ipv4}." in control and f"> {A4}.40111:" in control
    assert {(A4, 40111, "tcp"), (A6, 40111, "tcp")} <= found(report).keys()
    assert not {(A4, 8080, "tcp"), (A6, 8080, "tcp")} & found(report).keys()


def test_devices_are_read_again_before_every_check(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    target = lab.target
    conf = 'AUDIT_DEVICES="eth0"\nAUDIT_UDP="0"'
    before = audit(target, tmp_path, conf)[1]
    assert A4 in before["interfaces"] and A6 in before["interfaces"]
    target.run(["ip", "addr", "add", "198.18.0.201/24", "dev", "eth0"])
    try:
        after = audit(target, tmp_path, conf)[1]
    finally:
        target.run(["ip", "addr", "del", "198.18.0.201/24", "dev", "eth0"])
    assert "198.18.0.201" in after["interfaces"]
    assert sorted(
        (f["kind"], f["port"]) for f in after["findings"] if f["interface"] == "198.18.0.201"
    ) == [("ServiceNew", 111), ("ServiceNew", 8080), ("ServiceNew", 40111)]


_DUMP = """
import json, sys
from portwarden.net.addresses import Proto
from portwarden.net.portmapper import registrations
found = registrations("127.0.0.1", Proto(sys.argv[1]), 5)
print(json.dumps([(r.program, r.version, r.proto.value, r.port, r.owner) for r in found]))
"""


def test_registrations_and_owners_match_rpcinfo(
    lab: Lab, services: dict[int, subprocess.Popen]
) -> None:
    """Our RPCBPROC_DUMP client against Debian's rpcinfo, over TCP and UDP."""
    listed = rpcinfo_owners(lab.target).items()
    expected = {
        (program, version, netid.rstrip("6"), port, owner)
        for (program, version, netid, port), owner in listed
    }
    assert (100005, 3, "udp", 20048, "superuser") in expected
    for proto in ("tcp", "udp"):
        output = lab.target.run([sys.executable, "-c", _DUMP, proto], timeout=20).stdout
        assert {tuple(entry) for entry in json.loads(output)} == expected


def test_only_roots_registrations_name_ports(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """rpcbind lets any local user register any program: on its Unix socket it records the
    user's uid as the owner, over UDP from loopback "unknown". Such a registration names no
    port, so RPC names in the policy cannot hide a user's listener (nor another's); root's
    registrations still name ports, also a user's."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    listeners = [
        listen(target, "tcp", "0.0.0.0", 40121, "pwa-root40121"),
        listen(target, "tcp", "0.0.0.0", 40122, "pwa-nobody40122", uid=NOBODY),
        listen(target, "tcp", "0.0.0.0", 40123, "pwa-nobody40123", uid=NOBODY),
    ]
    registrations = [
        ("local", NOBODY, 100005, 1, "tcp", 40121),  # mountd, for root's listener
        ("local", NOBODY, 100024, 1, "tcp", 40122),  # status, for their own
        ("udp", NOBODY, 100021, 1, "tcp", 40123),  # nlockmgr, for their own
        ("local", 0, 100011, 1, "tcp", 40122),  # rquotad, by root for nobody's listener
    ]
    conf = f'{ONLY_LAB}\nAUDIT_OPTIONAL="mountd/tcp,status/tcp,nlockmgr/tcp"'
    try:
        for registration in registrations:
            register(target, rpcbind, *registration)
        owners = rpcinfo_owners(target)
        status, report, stderr = audit(target, tmp_path, conf, "--no-state")
    finally:
        for _, _, program, version, _, _ in registrations:
            unregister(target, rpcbind, program, version)
        for proc in listeners:
            stop(target, proc)
    # What rpcbind recorded, as Debian's rpcinfo shows it: the premise of this test.
    recorded = [
        owners[(program, version, netid, port)]
        for _, _, program, version, netid, port in registrations
    ]
    assert recorded == ["65534", "65534", "unknown", "superuser"]
    ports = {p["port"]: p for p in report["open_ports"] if p["interface"] == A4}
    named = {
        port: (
            ports[port]["rpc_program"],
            ports[port]["service"],
            ports[port]["user"],
            ports[port]["policy"],
        )
        for port in (40121, 40122, 40123, 20048)
    }
    assert named == {
        40121: (None, None, "root", "unlisted"),
        40122: (None, None, "nobody", "unlisted"),  # root's registration, nobody's socket
        40123: (None, None, "nobody", "unlisted"),
        20048: (100005, "mountd", "root", "unlisted"),  # registered by root in the fixture
    }
    assert status == 1
    assert sorted(
        (f["kind"], f["port"])
        for f in report["findings"]
        if f["interface"] == A4 and f["port"] in (40121, 40122, 40123)
    ) == [("ServiceNew", 40121), ("ServiceNew", 40122), ("ServiceNew", 40123)]
    refused = [(100005, "40121", "65534"), (100024, "40122", "65534"), (100021, "40123", "unknown")]
    warnings = [
        f"RPC program {program} for port {port}/tcp was registered by owner {owner}, "
        "not known to be root: the port is not named by it"
        for program, port, owner in refused
    ]
    warnings.append(
        "RPC program 100011 for port 40122/tcp was registered by owner superuser, "
        "for a socket of nobody (uid 65534), not root's: the port is not named by it"
    )
    assert sorted(report["warnings"]) == sorted(warnings)
    assert f"portwarden: warning: {warnings[0]}" in stderr.splitlines()


def mountd_ports(report: dict[str, Any]) -> list[tuple[int, Any, Any]]:
    """(port, RPC program, policy) of the ports on A4 that the test names mountd: the real
    one's (20048/udp) and root's listener (30001/tcp)."""
    return sorted(
        (p["port"], p["rpc_program"], p["policy"])
        for p in report["open_ports"]
        if p["interface"] == A4 and p["port"] in (20048, 30001)
    )


def missing(report: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    return [
        (f["interface"], f["port"], f["service"])
        for f in report["findings"]
        if f["kind"] == "ServiceMissing"
    ]


def test_superuser_names_nothing_where_anyone_can_send_from_a_reserved_port(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Where unprivileged ports start at 0, any user can send PMAPPROC_SET from port 888 and
    rpcbind records `superuser`: nobody names root's listener on 30001/tcp `mountd`, which
    would then pass for the required mountd/tcp (the real one, in the fixture, is on UDP only).
    There no registration is trusted: nothing is named, mountd/tcp is still missing, and one
    warning says why. With the setting at 1024, root's registrations name their ports."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    sysctl = "net.ipv4.ip_unprivileged_port_start"
    conf = f'{ONLY_LAB}\nAUDIT_REQUIRED="mountd/tcp"\nAUDIT_OPTIONAL="20048/udp,30001/tcp"'
    before = target.run(["sysctl", "-n", sysctl]).stdout.strip()
    listener = listen(target, "tcp", "0.0.0.0", 30001, "pwa-root30001")
    try:
        assert before == "1024"  # a new network namespace's default
        _, trusted, _ = audit(target, tmp_path, conf, "--no-state")
        target.run(["sysctl", "-q", f"{sysctl}=0"])
        register(target, rpcbind, "udp888", NOBODY, 100005, 1, "tcp", 30001)
        owners = rpcinfo_owners(target)
        status, report, stderr = audit(target, tmp_path, conf, "--no-state")
    finally:
        target.run(["sysctl", "-q", f"{sysctl}={before}"])
        unregister(target, rpcbind, 100005, 1)
        stop(target, listener)
    assert owners[(100005, 1, "tcp", 30001)] == "superuser"  # the premise
    assert mountd_ports(trusted) == [(20048, 100005, "optional"), (30001, None, "optional")]
    assert missing(trusted) == [("any", None, "mountd")]
    assert not any(sysctl in warning for warning in trusted["warnings"])
    assert mountd_ports(report) == [(20048, None, "optional"), (30001, None, "optional")]
    assert status == 1 and missing(report) == [("any", None, "mountd")]
    warning = (
        f"{sysctl} is 0: any user may register an RPC program as superuser from a port "
        "below 1024, so port 111 was not asked and no port is named by an RPC program "
        f"(set {sysctl}=1024, then restart rpcbind and the RPC services, to name "
        "them)"
    )
    assert report["warnings"] == [warning]
    assert stderr.splitlines() == [f"portwarden: warning: {warning}"]


_FAKE_PORTMAPPER = """
import socket, sys, threading, time
mode = sys.argv[1]
with open("/proc/self/comm", "w") as comm:
    comm.write("pwa-fake111")
junk = b"HTTP/1.0 200 OK\\r\\n\\r\\n" * 3
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 111)); s.listen(8)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # silent: keep it open and say nothing
        if mode == "garbage":  # a well-formed record holding junk
            c.sendall((0x80000000 | len(junk)).to_bytes(4, "big") + junk)
        elif mode == "huge":
            c.sendall(b"\\xff\\xff\\xff\\xff" + b"x" * 1000)
        elif mode == "dribble":  # a byte now and then, never a whole reply
            threading.Thread(target=dribble, args=(c,), daemon=True).start()
        elif mode == "fragments":  # empty fragments, none the last, without end
            threading.Thread(target=fragments, args=(c,), daemon=True).start()
def dribble(c):
    while True:
        c.send(b"\\x00"); time.sleep(0.1)
def fragments(c):
    while True:
        c.sendall(b"\\0\\0\\0\\0" * 64)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 111))
    while True:
        data, peer = s.recvfrom(100)
        if mode == "garbage":
            s.sendto(data[:4] + junk, peer)
        elif mode == "huge":
            entry = b"\\0\\0\\0\\1" * 5  # all words 1: as version 2 or 3, the list never ends
            s.sendto(data[:4] + b"\\0\\0\\0\\1" + b"\\0" * 16 + entry * 50, peer)
        elif mode in ("dribble", "fragments"):  # junk, never a reply to the call
            s.sendto(b"junk", peer)
threading.Thread(target=udp, daemon=True).start()
print("listening", flush=True)
tcp()
"""


@pytest.mark.parametrize(
    ("mode", "tcp_reason", "udp_reason"),
    [
        ("garbage", "answer is not an ONC RPC reply", "answer is not an ONC RPC reply"),
        ("silent", "connected, no RPC answer within 2 s", "no answer within 2 s"),
        (
            "huge",
            "announces a record fragment of 2147483647 bytes, more than 262144 in all",
            "truncated reply",
        ),
        ("dribble", "answer not complete within 2 s (", "only junk within 2 s ("),
        ("fragments", "reply in more than 256 fragments", "only junk within 2 s ("),
    ],
)
def test_broken_portmapper_is_a_clear_warning_within_bounded_time(
    lab: Lab, tmp_path: Path, mode: str, tcp_reason: str, udp_reason: str
) -> None:
    """The fake portmapper runs in an attacker host (the target keeps its real rpcbind)."""
    host = lab.attackers[0]
    fake = host.popen(
        [sys.executable, "-c", _FAKE_PORTMAPPER, mode], stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout is not None and "listening" in fake.stdout.readline()
    try:
        started = time.monotonic()
        status, report, stderr = audit(
            host, tmp_path, f'AUDIT_INTERFACES="{host.ipv4}"', "--no-state"
        )
        took = time.monotonic() - started
    finally:
        stop(host, fake)
    # 2 s per transport, plus a start-up that is slow on a loaded machine; without the
    # deadline the dribbling ones never end (the command's 60 s timeout). That one
    # deadline covers both versions is test_portmapper.py's.
    assert took < 15, took
    assert status == 1  # 111/tcp and 111/udp are open and unlisted
    assert found(report) == {
        (host.ipv4, 111, "tcp"): ("sunrpc", "pwa-fake111"),
        (host.ipv4, 111, "udp"): ("sunrpc", "pwa-fake111"),
    }
    tcp_warning, udp_warning = report["warnings"]
    assert tcp_warning.startswith("portmapper at 127.0.0.1 port 111/tcp: " + tcp_reason)
    assert udp_warning.startswith("portmapper at 127.0.0.1 port 111/udp: " + udp_reason)
    assert f"portwarden: warning: {tcp_warning}" in stderr.splitlines()


def test_a_portmapper_that_accepts_and_stays_silent_is_a_finding(lab: Lab, tmp_path: Path) -> None:
    """A required RPC item cannot be checked: PortmapperUnusable, exit 1, not "0 findings"."""
    host = lab.attackers[0]
    fake = host.popen(
        [sys.executable, "-c", _FAKE_PORTMAPPER, "silent"], stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout is not None and "listening" in fake.stdout.readline()
    conf = (
        f'AUDIT_INTERFACES="{host.ipv4}"\nAUDIT_REQUIRED="mountd/tcp"\n'
        'AUDIT_OPTIONAL="111/tcp,111/udp"'
    )
    try:
        status, report, _ = audit(host, tmp_path, conf, "--no-state")
    finally:
        stop(host, fake)
    reason = "tcp: connected, no RPC answer within 2 s; udp: no answer within 2 s"
    assert status == 1 and report["findings"] == [
        {
            "event": "audit",
            "kind": "PortmapperUnusable",
            "severity": "err",
            "interface": "127.0.0.1",
            "device": None,
            "port": 111,
            "proto": "tcp",
            "service": "portmapper",
            "services": ["portmapper"],
            "rpc_program": 100000,
            "program": "pwa-fake111",
            "pid": fake.pid,
            "user": "root",
            "was_port": None,
            "reason": reason,
        }
    ]


def check_now(daemon: RunningDaemon) -> None:
    """A reload: the daemon checks at once (AUDIT_INTERVAL is 10 s at least)."""
    daemon.proc.send_signal(signal.SIGHUP)


def test_the_daemon_audits_periodically_and_alerts(lab: Lab, tmp_path: Path) -> None:
    """AUDIT_INTERVAL in the running daemon: findings reach the log, syslog (with their
    severity), the JSON event log and `status`, each once however soon the next check comes
    (a reload right after a check, before the loop has saved its state)."""
    target = lab.target
    required = listen(target, "tcp", "0.0.0.0", 40401, "pw-required")
    receiver = SyslogReceiver(tmp_path / "log")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        f'TCP_PORTS="11"\nAUDIT_INTERVAL="10"\nAUDIT_REQUIRED="40401/tcp"\n'
        f'AUDIT_SEVERITY_NEW="warning"\nSYSLOG_SOCKET="{receiver.path}"\n'
    )
    daemon = RunningDaemon(target, conf)
    try:
        daemon.wait_for("ready:")
        listen(target, "tcp", "0.0.0.0", 40402, "pw-newcomer")
        check_now(daemon)
        line = daemon.wait_for(r"audit ServiceNew: \S+:40402/tcp .*", timeout=10).group(0)
        assert "program=pw-newcomer" in line
        # syslog facility daemon (3), severity warning (4) as configured
        receiver.wait_for(rf"^<{3 * 8 + 4}>.* audit: ServiceNew: {target.ipv4}:40402/tcp")
        for _ in range(3):  # checks one after another, before the loop saves each one's state
            check_now(daemon)
            time.sleep(0.1)
        stop(target, required)
        check_now(daemon)
        daemon.wait_for(r"audit ServiceMissing: any:40401/tcp", timeout=10)
        receiver.wait_for(rf"^<{3 * 8 + 2}>.* audit: ServiceMissing: any:40401/tcp")  # crit
        mark = daemon.mark()
        listen(target, "tcp", "0.0.0.0", 40401, "pw-required")
        check_now(daemon)
        daemon.wait_for(r"audit ServiceRestarted: \S+:40401/tcp", timeout=10, since=mark)
        status = json.loads(
            target.run(
                [sys.executable, "-m", "portwarden", "status", "--json", "-c", str(conf)]
            ).stdout
        )
        assert "open ports on" in status["audit"]["summary"]
        assert status["audit"]["summary"].startswith(status["audit"]["time"])
        check_now(daemon)
    finally:
        daemon.stop()  # after the check in progress, whose findings it reports
        receiver.sock.close()
    kinds = [e["kind"] for e in audit_events(tmp_path) if e["port"] in (40401, 40402)]
    assert kinds == ["ServiceNew", "ServiceMissing", "ServiceRestarted"]


def audit_events(folder: Path) -> list[dict[str, Any]]:
    """The audit findings in the daemon's JSON event log."""
    events = [json.loads(x) for x in (folder / "state" / "events.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "audit"]


def test_a_state_the_daemon_cannot_save_does_not_repeat_its_findings(
    lab: Lab, tmp_path: Path
) -> None:
    """Each check compares with the check before it, not with the file the loop saves: when
    the loop cannot save it, the next check still knows what was reported."""
    target = lab.target
    (tmp_path / "state" / "audit.json").mkdir(parents=True)  # no file can be written there
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        f'TCP_PORTS="11"\nAUDIT_INTERVAL="10"\n{ONLY_LAB}\n'
        'SYSLOG_SOCKET=""\n'
    )
    daemon = RunningDaemon(target, conf)
    listener = listen(target, "tcp", "0.0.0.0", 40403, "pw-unsaved")
    try:
        daemon.wait_for("ready:")
        for _ in range(3):
            mark = daemon.mark()
            check_now(daemon)
            daemon.wait_for("audit: cannot keep the audit state", since=mark)
    finally:
        daemon.stop()
        stop(target, listener)
    new = [e for e in audit_events(tmp_path) if e["port"] == 40403]
    assert [(e["kind"], e["interface"]) for e in new] == [("ServiceNew", A4)]


def test_the_command_does_not_take_the_daemons_news(lab: Lab, tmp_path: Path) -> None:
    """`portwarden audit` while the daemon runs: it reports, and the daemon still alerts."""
    target = lab.target
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        'TCP_PORTS="11"\nAUDIT_INTERVAL="10"\nAUDIT_REQUIRED="40411/tcp"\n'
        'SYSLOG_SOCKET=""\n'
    )
    daemon = RunningDaemon(target, conf)
    try:
        daemon.wait_for(r"audit ServiceMissing: any:40411/tcp")  # its first check is done
        mark = daemon.mark()
        listen(target, "tcp", "0.0.0.0", 40412, "pw-between")
        command = target.run(
            [sys.executable, "-m", "portwarden", "audit", "-c", str(conf)], check=False
        )
        assert command.returncode == 1 and "ServiceNew" in command.stdout
        assert ":40412/tcp" in command.stdout
        check_now(daemon)
        daemon.wait_for(r"audit ServiceNew: \S+:40412/tcp", timeout=10, since=mark)
    finally:
        daemon.stop()


def unit_capabilities() -> list[str]:
    """CapabilityBoundingSet of the shipped systemd unit, as setpriv names them."""
    unit = Path(__file__).parents[2] / "packaging" / "portwarden.service"
    line = next(x for x in unit.read_text().splitlines() if x.startswith("CapabilityBoundingSet="))
    return [name.removeprefix("CAP_").lower() for name in line.partition("=")[2].split()]


def test_the_units_capabilities_are_enough(lab: Lab, tmp_path: Path) -> None:
    """The daemon with only the unit's capabilities (setpriv bounding set, as systemd sets it
    for root): stealth detection, an nftables block, and the audit naming the program of a
    service that runs as another user (its /proc/PID/fd is mode 0500)."""
    target = lab.target
    # Started as nobody (not switched to it), so its /proc/PID/fd belongs to nobody.
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    proc = target.popen(
        [
            *as_nobody,
            "/usr/bin/python3",
            "-c",
            _LISTEN,
            "tcp",
            "0.0.0.0",
            "40421",
            "0",
            "pw-nobody",
            str(NOBODY),
            "",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        'TCP_PORTS="11,15,79"\nBLOCK_TCP="1"\nAUDIT_INTERVAL="60"\n'
    )
    bounding = ",".join(["-all", *(f"+{name}" for name in unit_capabilities())])
    daemon = RunningDaemon(target, conf, wrapper=["setpriv", f"--bounding-set={bounding}"])
    try:
        daemon.wait_for("ready:")
        status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
        effective = int(status.split("CapEff:")[1].split()[0], 16)
        assert bin(effective).count("1") == len(unit_capabilities()), status
        line = daemon.wait_for(r"audit ServiceNew: \S+:40421/tcp .*").group(0)
        assert "program=pw-nobody" in line and "user=nobody" in line, line
        attacker = lab.attackers[0]
        nmap(attacker.run, "-sS", "-p", "11,15,79", target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    finally:
        daemon.stop()


# A portmapper run by `uid` (a local user, where unprivileged ports start at 0) that claims
# root ("superuser") registered mountd for port 40500/tcp: RPCBPROC_DUMP over TCP and UDP.
_SPOOFING_PORTMAPPER = """
import os, socket, struct, sys, threading
uid = int(sys.argv[1])
with open("/proc/self/comm", "w") as comm:
    comm.write("pwa-fake-rpcb")
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
def string(text):
    data = text.encode()
    return struct.pack("!I", len(data)) + data + bytes(-len(data) % 4)
entries = b""
for program, netid, port in ((100000, "tcp", 111), (100000, "udp", 111), (100005, "tcp", 40500)):
    entries += struct.pack("!III", 1, program, 3) + string(netid)
    entries += string(f"0.0.0.0.{port >> 8}.{port & 255}") + string("superuser")
def reply(call):
    return call[:4] + struct.pack("!5I", 1, 0, 0, 0, 0) + entries + struct.pack("!I", 0)
tcp = socket.create_server(("0.0.0.0", 111))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 111))
def serve_udp():
    while True:
        call, peer = udp.recvfrom(400)
        udp.sendto(reply(call), peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("listening", flush=True)
while True:
    c, _ = tcp.accept()
    with c:
        size = int.from_bytes(c.recv(4), "big") & 0x7FFFFFFF
        call = b""
        while len(call) < size:
            call += c.recv(size - len(call))
        answer = reply(call)
        c.sendall((0x80000000 | len(answer)).to_bytes(4, "big") + answer)
"""


def test_a_portmapper_that_root_does_not_hold_names_nothing(lab: Lab, tmp_path: Path) -> None:
    """With unprivileged ports from 0 (Docker's default in containers), user nobody runs a
    portmapper on port 111 that says root registered mountd for nobody's own listener. Its
    answers must not name that port: the port-111 socket is not root's."""
    host = lab.attackers[1]
    host.run(["sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"])
    try:
        fake = host.popen(
            [sys.executable, "-c", _SPOOFING_PORTMAPPER, str(NOBODY)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert fake.stdout is not None and "listening" in fake.stdout.readline()
        listener = listen(host, "tcp", "0.0.0.0", 40500, "pwa-nobody40500", uid=NOBODY)
        conf = f'AUDIT_INTERFACES="{host.ipv4}"\nAUDIT_OPTIONAL="111/tcp,111/udp,mountd/tcp"'
        status, report, stderr = audit(host, tmp_path, conf, "--no-state")
    finally:
        host.stop_processes()
        host.run(["sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=1024"])
    ports = {p["port"]: p for p in report["open_ports"]}
    assert ports[111]["user"] == "nobody" and ports[111]["program"] == "pwa-fake-rpcb"
    spoofed = ports[40500]
    assert (spoofed["rpc_program"], spoofed["service"], spoofed["policy"]) == (
        None,
        None,
        "unlisted",
    )
    assert status == 1 and kinds(report) == [("ServiceNew", host.ipv4, 40500, "tcp")]
    assert report["findings"][0]["pid"] == listener.pid
    warning = (
        "port 111 (tcp, udp) is held by nobody (uid 65534), not by root: it was not "
        "asked, so no port is named by an RPC program"
    )
    assert report["warnings"] == [warning]
    assert stderr.splitlines() == [f"portwarden: warning: {warning}"]


def test_a_state_that_cannot_be_kept_still_gives_the_report(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """A corrupt portwarden.db, then a read-only STATE_DIR: the report is printed, the exit
    status still says whether there were findings, and stderr says what was not kept."""
    target, conf = lab.target, f'{ONLY_LAB}\nAUDIT_UDP="0"'
    first = audit_command(target, tmp_path, conf)
    assert first.returncode == 1 and first.stderr == ""  # every port is new the first time
    database, state = tmp_path / "state" / "portwarden.db", tmp_path / "state"
    database.write_bytes(b"not a database\n" * 512)
    corrupt = audit_command(target, tmp_path, conf)
    assert corrupt.returncode == 0 and corrupt.stdout.startswith(f"# audit of {A4}, {A6} at ")
    assert corrupt.stderr == (
        "portwarden: warning: the audit was not recorded for `portwarden "
        f"status` in {database}: file is not a database\n"
    )

    database.unlink()
    read_only = [
        *NEW_MOUNTS,
        "sh",
        "-c",
        'mount --bind -o ro "$0" "$0" && exec "$@"',
        str(state),
    ]
    listener = listen(target, "tcp", "0.0.0.0", 40431, "pwa-new40431")
    try:
        result = audit_command(target, tmp_path, conf, wrapper=read_only)
    finally:
        stop(target, listener)
    assert result.returncode == 1, result.stderr
    assert f"ServiceNew: {A4}:40431/tcp" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"portwarden: warning: cannot keep the audit state in {state}/")
    assert lines[1].startswith(
        f"portwarden: warning: the audit was not recorded for `portwarden status` in {database}: "
    )
    assert not database.exists()


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        ('AUDIT_DEVICES="eht0"', "AUDIT_DEVICES: device eht0 is absent or has no address now"),
        (
            'AUDIT_INTERFACES="198.18.0.99"',
            "AUDIT_INTERFACES: 198.18.0.99 is not an address of this host now",
        ),
    ],
)
def test_an_audit_of_no_address_is_an_error_not_a_clean_bill(
    lab: Lab, tmp_path: Path, conf: str, reason: str
) -> None:
    """A mistyped device or an address the host does not have: nothing was checked, which
    must not look like "no findings" (exit 0)."""
    result = audit_command(lab.target, tmp_path, conf)
    error = (
        f"portwarden: error: audit: nothing was checked: no address to check ({reason}; "
        "not checked)"
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error + "\n")
    status = lab.target.run(
        [
            sys.executable,
            "-m",
            "portwarden",
            "status",
            "--json",
            "-c",
            str(tmp_path / "portwarden.conf"),
        ],
        check=False,
    )
    last = json.loads(status.stdout)["audit"]
    assert last["summary"].endswith(
        f": nothing was checked: no address to check ({reason}; not checked)"
    )


def test_the_daemon_says_once_that_nothing_was_checked_and_when_it_checks_again(
    lab: Lab, tmp_path: Path
) -> None:
    """Once per episode, not at every check: again only when the reason changes or after a
    check that could look (the device appears)."""
    receiver = SyslogReceiver(tmp_path / "log")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        'TCP_PORTS="11"\nAUDIT_INTERVAL="10"\nAUDIT_DEVICES="eht0"\n'
        f'SYSLOG_SOCKET="{receiver.path}"\n'
    )
    daemon = RunningDaemon(lab.target, conf)
    unchecked = re.escape(
        "audit: nothing was checked: no address to check (AUDIT_DEVICES: device eht0 "
    )
    try:
        daemon.wait_for(f"ERROR {unchecked}")
        receiver.wait_for(rf"^<{3 * 8 + 4}>.* portwarden\[\d+\]: {unchecked}")  # not an attack
        mark = daemon.mark()
        check_now(daemon)
        daemon.wait_for("configuration reloaded", since=mark)
        lab.target.run(["ip", "link", "add", "eht0", "type", "veth", "peer", "name", "eht0p"])
        lab.target.run(["ip", "addr", "add", "198.18.9.1/32", "dev", "eht0"])
        lab.target.run(["ip", "link", "set", "eht0", "up"])
        check_now(daemon)
        daemon.wait_for("INFO audit: checked again", since=mark, timeout=10)
        assert len(re.findall(f"ERROR {unchecked}", daemon.log())) == 1
    finally:
        lab.target.run(["ip", "link", "del", "eht0"], check=False)
        daemon.stop()
        receiver.sock.close()
    events = [
        json.loads(line) for line in (tmp_path / "state" / "events.jsonl").read_text().splitlines()
    ]
    reasons = [e["reason"] for e in events if e["event"] == "audit-unchecked"]
    assert len(reasons) == 1 and reasons[0].startswith("no address to check (AUDIT_DEVICES: ")
    assert "ServiceNew" not in daemon.log()[:mark]  # findings only once it could look


def accept_queue(host: Host, port: int) -> int:
    """Connections waiting in the accept queue of the TCP listener on `port` (ss's Recv-Q)."""
    [line] = host.run(["ss", "-Hltn", f"sport = :{port}"]).stdout.splitlines()
    return int(line.split()[1])


# Below the ephemeral ports (net.ipv4.ip_local_port_range: 32768-60999 by default, from 31000
# with the local_port_range fixture), so no client socket on the target can hold it already.
IDLE_PORT = 20600


def test_a_listener_that_never_accepts_is_left_alone(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """A connect() per audited address used to stay in the queue of a listener that never
    accepts, as a CLOSE-WAIT connection, at every check."""
    target = lab.target
    low, _ = target.run(["sysctl", "-n", "net.ipv4.ip_local_port_range"]).stdout.split()
    assert int(low) > IDLE_PORT
    idle = listen(target, "tcp", "::", IDLE_PORT, f"pwa-idle{IDLE_PORT}", accepts=False)
    try:
        _, report, _ = audit(target, tmp_path, ONLY_LAB, "--no-state")
        queued = accept_queue(target, IDLE_PORT)
        state = ["ss", "-Htn", "state", "close-wait", f"sport = :{IDLE_PORT}"]
        waiting = target.run(state).stdout
    finally:
        stop(target, idle)
    assert {(A4, IDLE_PORT, "tcp"), (A6, IDLE_PORT, "tcp")} <= found(report).keys()
    assert (queued, waiting) == (0, "")


# A second device with addresses of its own in an attacker host (the target keeps its services):
# one end of a veth pair whose other end stays in the host too (no dummy module here).
DUMMY, D4, D6 = "pwveth0", "198.18.9.1", "2001:db8:9::1"


@pytest.fixture
def two_devices(lab: Lab) -> Iterator[Host]:
    host = lab.attackers[2]
    host.run(["ip", "link", "add", DUMMY, "type", "veth", "peer", "name", "pwveth1"])
    try:
        host.run(["ip", "link", "set", "pwveth1", "up"])
        host.run(["ip", "link", "set", DUMMY, "up"])
        host.run(["ip", "addr", "add", f"{D4}/32", "dev", DUMMY])
        host.run(["ip", "-6", "addr", "add", f"{D6}/128", "dev", DUMMY, "nodad"])
        yield host
    finally:
        host.stop_processes()
        host.run(["ip", "link", "del", DUMMY], check=False)


def test_device_bound_and_v6only_listeners_are_open_where_the_kernel_delivers(
    two_devices: Host, tmp_path: Path
) -> None:
    """From sock_diag: the device a socket is bound to (SO_BINDTODEVICE) and IPV6_V6ONLY. A
    wildcard bound to a device is open on that device's addresses only (a TCP one used to be
    open nowhere: the confirming connect() came over lo; a UDP one everywhere)."""
    host = two_devices
    e4, e6 = host.ipv4, host.ipv6
    for args in [
        ("tcp", "::", 40610, "pwa-eth0-40610", False, "eth0"),
        ("udp", "0.0.0.0", 40611, "pwa-dummy40611", False, DUMMY),
        ("tcp", "::", 40612, "pwa-v6only40612", True, ""),
        ("udp", "::", 40613, "pwa-v6only40613", True, ""),
        ("udp", "::", 40614, "pwa-eth0-40614", False, "eth0"),
    ]:
        proto, address, port, name, v6only, device = args
        listen(host, proto, address, port, name, v6only, device=device)
    conf = f'AUDIT_INTERFACES="{e4}, {e6}, {D4}, {D6}"'
    _, report, _ = audit(host, tmp_path, conf, "--no-state")
    where: dict[tuple[int, str], set[str]] = {}
    for interface, port, proto in found(report):
        where.setdefault((port, proto), set()).add(interface)
    assert where == {
        (40610, "tcp"): {e4, e6},
        (40611, "udp"): {D4},
        (40612, "tcp"): {e6, D6},
        (40613, "udp"): {e6, D6},
        (40614, "udp"): {e4, e6},
    }


def test_an_rpc_service_that_moves_is_a_port_switch(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Program 400200, registered by root with the real rpcbind, moves from 40701 to 40702
    between two checks: one ServicePortSwitch line, not a ServiceNew and a missing port."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    conf = f'{ONLY_LAB}\nAUDIT_UDP="0"\nAUDIT_OPTIONAL="RPC_400200/tcp"'
    first = listen(target, "tcp", "0.0.0.0", 40701, "pwa-rpc-first")
    try:
        register(target, rpcbind, "local", 0, 400200, 1, "tcp", 40701)
        _, report, _ = audit(target, tmp_path, conf)
        assert (A4, 40701, "tcp") in found(report)
        assert ("ServiceNew", A4, 40701, "tcp") not in kinds(report)  # optional
        stop(target, first)
        unregister(target, rpcbind, 400200, 1)
        moved = listen(target, "tcp", "0.0.0.0", 40702, "pwa-rpc-moved")
        register(target, rpcbind, "local", 0, 400200, 1, "tcp", 40702)
        text = audit_command(target, tmp_path, conf)
    finally:
        unregister(target, rpcbind, 400200, 1)
    stop(target, moved)
    assert text.returncode == 1, text.stderr
    findings = [line for line in text.stdout.splitlines() if line.startswith("Service")]
    assert findings == [
        f"ServicePortSwitch: {A4}:40702/tcp (RPC_400200), was 40701/tcp "
        f"program=pwa-rpc-moved pid={moved.pid} user=root"
    ]


ALLOWED = (
    f'{ONLY_LAB}\nAUDIT_IGNORE="8080/tcp,5300/udp,8081/tcp,8082/tcp,5301/udp,20048/udp,40111/tcp"'
)


def settle(host: Host, folder: Path, conf: str) -> None:
    """Two audits, so that listeners other tests of the module left behind are news no more:
    the second one finds nothing."""
    audit(host, folder, conf)
    status, report, _ = audit(host, folder, conf)
    assert (status, kinds(report)) == (0, [])


def test_a_port_taken_out_of_the_policy_is_new(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """111/udp, allowed, is taken out of AUDIT_OPTIONAL while rpcbind keeps it open: it is
    ServiceNew (once), and the exit status says so."""
    target = lab.target
    settle(target, tmp_path, f'{ALLOWED}\nAUDIT_OPTIONAL="111/tcp,111/udp"')
    status, report, _ = audit(target, tmp_path, f'{ALLOWED}\nAUDIT_OPTIONAL="111/tcp"')
    assert status == 1
    assert kinds(report) == [("ServiceNew", A4, 111, "udp"), ("ServiceNew", A6, 111, "udp")]
    status, report, _ = audit(target, tmp_path, f'{ALLOWED}\nAUDIT_OPTIONAL="111/tcp"')
    assert (status, kinds(report)) == (0, [])  # reported once


def test_rpc_programs_that_swap_ports_are_port_switches(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Programs 400201 and 400202, registered by root with the real rpcbind, swap their ports
    while both ports stay open: two ServicePortSwitch lines."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    conf = f'{ALLOWED}\nAUDIT_UDP="0"\nAUDIT_OPTIONAL="111/tcp,RPC_400201/tcp,RPC_400202/tcp"'
    first = listen(target, "tcp", "0.0.0.0", 40801, "pwa-rpc-first")
    second = listen(target, "tcp", "0.0.0.0", 40802, "pwa-rpc-second")
    try:
        register(target, rpcbind, "local", 0, 400201, 1, "tcp", 40801)
        register(target, rpcbind, "local", 0, 400202, 1, "tcp", 40802)
        settle(target, tmp_path, conf)
        unregister(target, rpcbind, 400201, 1)
        unregister(target, rpcbind, 400202, 1)
        register(target, rpcbind, "local", 0, 400201, 1, "tcp", 40802)
        register(target, rpcbind, "local", 0, 400202, 1, "tcp", 40801)
        text = audit_command(target, tmp_path, conf)
    finally:
        unregister(target, rpcbind, 400201, 1)
        unregister(target, rpcbind, 400202, 1)
        stop(target, first)
        stop(target, second)
    assert text.returncode == 1, text.stderr
    findings = sorted(line for line in text.stdout.splitlines() if line.startswith("Service"))
    assert findings == [
        f"ServicePortSwitch: {A4}:40801/tcp (RPC_400202), was 40802/tcp program=pwa-rpc-first "
        f"pid={first.pid} user=root",
        f"ServicePortSwitch: {A4}:40802/tcp (RPC_400201), was 40801/tcp program=pwa-rpc-second "
        f"pid={second.pid} user=root",
    ]


def audit_while_stopped(
    rpcbind: subprocess.Popen, target: Host, tmp_path: Path, conf: str
) -> tuple[int, dict[str, Any], str]:
    """An audit while rpcbind is stopped (SIGSTOP): a portmapper that never answers."""
    rpcbind.send_signal(signal.SIGSTOP)
    try:
        return audit(target, tmp_path, conf)
    finally:
        rpcbind.send_signal(signal.SIGCONT)


def test_a_portmapper_that_hangs_leaves_rpc_requirements_as_they_were(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """rpcbind stopped (SIGSTOP) between checks: the requirements by RPC name are unknown, not
    missing; the ports they covered are not new; a warning names the portmapper's failure; and
    when it answers again nothing is 'restarted'."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    settle(target, tmp_path, POLICY)
    status, report, stderr = audit_while_stopped(rpcbind, target, tmp_path, POLICY)
    assert (status, kinds(report)) == (1, [("PortmapperUnusable", "127.0.0.1", 111, "tcp")])
    warning = (
        "portmapper at 127.0.0.1 port 111/tcp: connected, no RPC answer within 2 s; RPC "
        "services are not named by it, and requirements by RPC name keep their last "
        "state"
    )
    assert warning in report["warnings"]
    assert f"portwarden: warning: {warning}" in stderr.splitlines()
    status, report, _ = audit(target, tmp_path, POLICY)
    assert (status, report["findings"], report["warnings"]) == (0, [], [])


def test_a_requirement_that_can_never_match_is_a_configuration_error(
    lab: Lab, tmp_path: Path
) -> None:
    """`RPC_abc` in AUDIT_REQUIRED: a one-line error, exit 2, nothing checked; in AUDIT_OPTIONAL
    the same item is a warning, written as the command's other warnings are."""
    result = audit_command(
        lab.target, tmp_path, f'{ONLY_LAB}\nAUDIT_REQUIRED="22/tcp; RPC_abc/tcp"'
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"portwarden: error: {tmp_path}/portwarden.conf:3: AUDIT_REQUIRED="
        '"22/tcp; RPC_abc/tcp": RPC_abc/tcp is no RPC_<number> (a program '
        "number, 0 to 4294967295, without leading zeros) and never matches: "
        "a requirement that can never be met\n"
    )
    result = audit_command(
        lab.target, tmp_path, f'{ONLY_LAB}\nAUDIT_OPTIONAL="ssh/tcp"', "--no-state"
    )
    assert result.returncode in (0, 1)
    assert (
        f"portwarden: warning: {tmp_path}/portwarden.conf:3: AUDIT_OPTIONAL: ssh/tcp is no "
        "RPC program in /etc/rpc and never matches; for the service, write 22/tcp"
    ) in result.stderr.splitlines()


def test_the_first_audit_after_an_upgrade_reports_no_port_it_knew(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """The state rewritten as version 1 wrote it (no unlisted flag, one program or null): the
    ports still open and still unlisted are not ServiceNew again, and it is read silently."""
    target = lab.target
    conf = f'{ONLY_LAB}\nAUDIT_OPTIONAL="8080/tcp"'
    audit(target, tmp_path, conf)  # every other port is unlisted, and reported once
    path = tmp_path / "state" / "audit.json"
    state = json.loads(path.read_text())
    assert state["version"] == 3 and any(entry[4] for entry in state["seen"])
    seen = [[*entry[:3], (entry[3] or [None])[0]] for entry in state["seen"]]
    path.write_text(json.dumps({"version": 1, "seen": seen, "missing": state["missing"]}))
    status, report, stderr = audit(target, tmp_path, conf)
    assert (status, kinds(report), report["warnings"]) == (0, [], [])
    assert "audit state" not in stderr


def test_a_port_ignored_by_rpc_name_does_not_flap_while_rpcbind_hangs(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """mountd (20048/udp, registered by root) ignored by its RPC name: no ServiceNew when
    rpcbind is stopped (its name is unknown then), nor after it answers again."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    conf = ALLOWED.replace("20048/udp", "mountd/udp") + '\nAUDIT_OPTIONAL="111/tcp,111/udp"'
    settle(target, tmp_path, conf)
    status, report, _ = audit_while_stopped(rpcbind, target, tmp_path, conf)
    assert (status, kinds(report)) == (1, [("PortmapperUnusable", "127.0.0.1", 111, "tcp")])
    assert any("no RPC answer within 2 s" in warning for warning in report["warnings"])
    status, report, _ = audit(target, tmp_path, conf)
    assert (status, kinds(report), report["warnings"]) == (0, [], [])


def test_two_programs_on_one_port_both_name_it_in_either_order(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """nfs (100003) and nfs_acl (100227) registered by root for 2049/tcp, as on every NFS
    server, in one order and then the other: AUDIT_REQUIRED="nfs/tcp" is met both times, the
    port is named by both, and the order changes nothing."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    conf = f'{ALLOWED}\nAUDIT_UDP="0"\nAUDIT_OPTIONAL="111/tcp"\nAUDIT_REQUIRED="nfs/tcp"'
    nfsd = listen(target, "tcp", "0.0.0.0", 2049, "pwa-nfsd")
    try:
        reports = []
        for order in ((100227, 100003), (100003, 100227)):
            for program in order:
                register(target, rpcbind, "local", 0, program, 3, "tcp", 2049)
            reports.append(audit(target, tmp_path, conf))
            text = audit_command(target, tmp_path, conf, "--no-state")
            for program in order:
                unregister(target, rpcbind, program, 3)
            assert (
                f"open {A4}:2049/tcp (nfs,nfs_acl) program=pwa-nfsd pid={nfsd.pid} "
                "user=root policy=required"
            ) in text.stdout.splitlines()
    finally:
        for program in (100003, 100227):
            unregister(target, rpcbind, program, 3)
        stop(target, nfsd)
    for _, report, _ in reports:  # other tests' listeners may be news: only 2049 and nfs count
        assert [f for f in report["findings"] if f["port"] in (2049, None)] == []
        nfs = next(p for p in report["open_ports"] if (p["interface"], p["port"]) == (A4, 2049))
        assert (nfs["service"], nfs["services"]) == ("nfs", ["nfs", "nfs_acl"])
        assert (nfs["rpc_program"], nfs["rpc_programs"]) == (100003, [100003, 100227])


def test_an_rpc_requirement_with_port_111_skipped_is_a_configuration_error(
    lab: Lab, tmp_path: Path
) -> None:
    """Port 111 skipped (TCP, and UDP or AUDIT_UDP=0): the portmapper is never asked, so a
    requirement by RPC name could never be met; a one-line error, exit 2."""
    result = audit_command(
        lab.target,
        tmp_path,
        f'{ONLY_LAB}\nAUDIT_REQUIRED="nfs/tcp"\nAUDIT_SKIP="111/tcp"\nAUDIT_UDP="0"',
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"portwarden: error: {tmp_path}/portwarden.conf:3: AUDIT_REQUIRED="
        "\"nfs/tcp\": 'nfs/tcp' is required, but AUDIT_SKIP has 111/tcp and "
        "AUDIT_UDP is 0: RPC names in AUDIT_REQUIRED need port 111 "
        "audited\n"
    )


def audit_runs(host: Host, conf: Path) -> float:
    """The time of the daemon's last audit (0 before the first)."""
    status = host.run([sys.executable, "-m", "portwarden", "status", "--json", "-c", str(conf)])
    last = json.loads(status.stdout)["counters"]["audit_last_run"]  # UTC, ISO 8601, or null
    return datetime.datetime.fromisoformat(last).timestamp() if last else 0.0


def test_the_daemon_logs_a_warning_once_and_alerts_an_unusable_portmapper(
    lab: Lab, services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """A registration that is not root's is a warning at every check: the log has it once.
    Then rpcbind hangs: PortmapperUnusable goes to the log, syslog (severity err) and the JSON
    event log, as other findings do."""
    target, rpcbind = lab.target, services[PORTMAPPER]
    listener = listen(target, "tcp", "0.0.0.0", 40131, "pwa-unknown40131")
    register(target, rpcbind, "udp", 0, 300131, 1, "tcp", 40131)
    receiver = SyslogReceiver(tmp_path / "log")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        f'TCP_PORTS="11"\nAUDIT_INTERVAL="10"\n{ONLY_LAB}\n'
        'AUDIT_REQUIRED="mountd/udp"\nAUDIT_OPTIONAL="40131/tcp"\n'
        f'SYSLOG_SOCKET="{receiver.path}"\n'
    )
    warning = (
        "audit: RPC program 300131 for port 40131/tcp was registered by owner unknown, not "
        "known to be root: the port is not named by it"
    )
    daemon = RunningDaemon(target, conf)
    try:
        daemon.wait_for(re.escape(warning))
        for _ in range(3):  # three checks more (the time is kept in whole seconds)
            last = audit_runs(target, conf)
            deadline = time.monotonic() + 15
            while audit_runs(target, conf) <= last:
                assert time.monotonic() < deadline, "the daemon stopped checking"
                check_now(daemon)
                time.sleep(0.3)
        assert daemon.log().count(warning) == 1
        rpcbind.send_signal(signal.SIGSTOP)
        try:
            check_now(daemon)
            line = daemon.wait_for(r"audit PortmapperUnusable: .*", timeout=20).group(0)
            receiver.wait_for(rf"^<{3 * 8 + 3}>.* audit: PortmapperUnusable: 127\.0\.0\.1:111/tcp")
        finally:
            rpcbind.send_signal(signal.SIGCONT)
        assert line.startswith(
            "audit PortmapperUnusable: 127.0.0.1:111/tcp (portmapper) "
            f"program=rpcbind pid={rpcbind.pid} user="
        )
        assert 'reason="tcp: connected, no RPC answer within 2 s; udp: no answer' in line
        events = [
            json.loads(x) for x in (tmp_path / "state" / "events.jsonl").read_text().splitlines()
        ]
        unusable = [e for e in events if e.get("kind") == "PortmapperUnusable"]
        assert unusable and unusable[0]["reason"].startswith("tcp: connected, no RPC answer")
    finally:
        daemon.stop()
        receiver.sock.close()
        unregister(target, rpcbind, 300131, 1)
        stop(target, listener)


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        (
            f'AUDIT_INTERFACES="{A4}"\nAUDIT_REQUIRED="2001:db8::1:8082/tcp"',
            "2001:db8::1 is not in AUDIT_INTERFACES, nor can it be an address of AUDIT_DEVICES: "
            "never checked",
        ),
        (
            'AUDIT_REQUIRED="127.0.0.1:8086/tcp"',
            "127.0.0.1 is loopback's, never checked (AUDIT_INTERFACES and AUDIT_DEVICES are empty: "
            "every address but loopback's)",
        ),
        (
            'AUDIT_REQUIRED="0.0.0.0:8084/tcp"',
            "0.0.0.0 is a wildcard, not an address the audit "
            "checks (a group without an interface applies to "
            "every address)",
        ),
        (
            'AUDIT_REQUIRED="lo:8086/tcp"',
            "device lo is never checked (AUDIT_INTERFACES and "
            "AUDIT_DEVICES are empty: every address but loopback's)",
        ),
        (
            'AUDIT_REQUIRED="ALL:22/tcp"',
            "ALL is no device of this host (a group without an interface applies to every address)",
        ),
        (
            f'{ONLY_LAB}\nAUDIT_REQUIRED="nosuchdev:22/tcp"',
            "device nosuchdev is not in AUDIT_DEVICES and holds none of AUDIT_INTERFACES: never "
            "checked",
        ),
    ],
)
def test_a_requirement_on_an_interface_never_audited_is_a_configuration_error(
    lab: Lab, tmp_path: Path, conf: str, reason: str
) -> None:
    """It would be a ServiceMissing at every check: the audit and check-config refuse it."""
    target = lab.target
    result = audit_command(target, tmp_path, conf)
    value = conf.rpartition("AUDIT_REQUIRED=")[2]
    line = 3 if conf.startswith("AUDIT_INTERFACES") else 2  # after STATE_DIR
    group = value.strip('"')
    error = (
        f"portwarden: error: {tmp_path}/portwarden.conf:{line}: AUDIT_REQUIRED={value}: "
        f"'{group}': {reason}\n"
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error)
    checked = target.run(
        [
            sys.executable,
            "-m",
            "portwarden",
            "check-config",
            "-c",
            str(tmp_path / "portwarden.conf"),
        ],
        check=False,
    )
    assert (checked.returncode, checked.stderr) == (2, error)


def test_a_requirement_on_a_device_absent_now_is_a_warning(lab: Lab, tmp_path: Path) -> None:
    """Every address but loopback's is audited: a device may yet come (a VPN's tun0)."""
    result = audit_command(lab.target, tmp_path, 'AUDIT_REQUIRED="nosuchdev:22/tcp"', "--no-state")
    assert result.returncode == 1 and "ServiceMissing: nosuchdev:22/tcp" in result.stdout
    assert (
        f"portwarden: warning: {tmp_path}/portwarden.conf:2: AUDIT_REQUIRED: "
        "'nosuchdev:22/tcp': device nosuchdev is absent or has no address now; reported "
        "missing while it is not checked"
    ) in result.stderr.splitlines()


@pytest.fixture
def one_link_local_on_two_devices(lab: Lab) -> Iterator[Host]:
    """fe80::1 on two devices of one host (as on a NIC and its VLAN, or two bridge ports)."""
    host = lab.attackers[2]
    try:
        for device in ("pwlla", "pwllb"):
            host.run(["ip", "link", "add", device, "type", "veth", "peer", "name", f"{device}p"])
            host.run(["ip", "link", "set", f"{device}p", "up"])
            host.run(["ip", "link", "set", device, "up"])
            host.run(["ip", "-6", "addr", "add", "fe80::1/64", "dev", device, "nodad"])
        yield host
    finally:
        host.stop_processes()
        for device in ("pwlla", "pwllb"):
            host.run(["ip", "link", "del", device], check=False)


def test_a_link_local_address_is_told_apart_by_its_device(
    one_link_local_on_two_devices: Host, tmp_path: Path
) -> None:
    """The same fe80::1 on two devices is two places: a service that moves to the second is
    news, in the state, the report line, the JSON and the policy (`fe80::1%pwlla`)."""
    host = one_link_local_on_two_devices
    conf = 'AUDIT_DEVICES="pwlla, pwllb"'
    first = listen(host, "tcp", "fe80::1", 20010, "pwa-lla20010", device="pwlla")
    status, report, _ = audit(host, tmp_path, conf)
    assert (status, report["interfaces"]) == (1, ["fe80::1%pwlla", "fe80::1%pwllb"])
    assert [(f["kind"], f["interface"], f["device"], f["port"]) for f in report["findings"]] == [
        ("ServiceNew", "fe80::1%pwlla", "pwlla", 20010)
    ]
    stop(host, first)
    listen(host, "tcp", "fe80::1", 20010, "pwa-llb20010", device="pwllb")
    status, report, _ = audit(host, tmp_path, conf)
    assert [(f["kind"], f["interface"], f["device"], f["port"]) for f in report["findings"]] == [
        ("ServiceNew", "fe80::1%pwllb", "pwllb", 20010)
    ]
    text = audit_command(host, tmp_path, conf, "--no-state").stdout
    assert "ServiceNew: fe80::1%pwllb:20010/tcp (unknown) program=pwa-llb20010" in text

    status, report, _ = audit(
        host, tmp_path, f'{conf}\nAUDIT_OPTIONAL="fe80::1%pwlla:20010/tcp"', "--no-state"
    )
    assert [(f["kind"], f["interface"]) for f in report["findings"]] == [
        ("ServiceNew", "fe80::1%pwllb")
    ]
    status, report, stderr = audit(
        host, tmp_path, f'{conf}\nAUDIT_OPTIONAL="fe80::1:20010/tcp"', "--no-state"
    )
    assert (status, report["findings"]) == (0, [])  # without its device: on every device
    warning = (
        "AUDIT_OPTIONAL: fe80::1 is on devices pwlla, pwllb: the group applies to it on "
        "each; write fe80::1%pwlla to name one"
    )
    assert report["warnings"] == [warning] and f"portwarden: warning: {warning}" in stderr
