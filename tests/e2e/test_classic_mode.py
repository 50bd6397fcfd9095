"""Classic mode (-tcp -udp) at its edges: datagrams that are for every host on the link, and
many ports with few file descriptors."""

import os
import subprocess
import sys
import time
from pathlib import Path

from portwarden.lab.network import NET4, Host, Lab
from tests.e2e.conftest import StartDaemon
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("", int(sys.argv[3]) if len(sys.argv) > 3 else 0))
s.sendto(b"rwho", (sys.argv[1], int(sys.argv[2])))
"""


def send(host: Host, address: str, port: int, sport: int = 0) -> None:
    host.run([sys.executable, "-c", _SEND, address, str(port), str(sport)])


def test_a_subnet_broadcast_is_not_a_probe(lab: Lab, start_daemon: StartDaemon) -> None:
    """rwhod, NetBIOS and the like broadcast to every host: a bound socket gets those too."""
    daemon = start_daemon("-tcp", "-udp")
    attacker = lab.attackers[0]
    for address in (f"{NET4}.255", lab.target.ipv4):  # the broadcast first, then to the target
        send(attacker, address, 9)
    found = daemon.wait_for_attack(src=attacker.ipv4, kind="scan")
    assert (found["dst"], found["port"], found["mode"]) == (lab.target.ipv4, "9", "udp")
    assert len(daemon.attacks(src=attacker.ipv4)) == 1
    daemon.stop()


def test_a_datagram_from_port_53_to_a_tripwire_in_the_local_port_range_is_a_probe(
    lab: Lab, start_daemon: StartDaemon, local_port_range: str
) -> None:
    """The classic mode binds its ports, so no resolver of the target is ever given one and no
    late answer can land there: `nmap -g 53` is seen on every tripwire, and the late-reply
    line of the stealth modes is not logged."""
    daemon = start_daemon("-tcp", "-udp")
    server = lab.attackers[1]
    send(server, lab.target.ipv4, 31337, sport=53)
    found = daemon.wait_for_attack(src=server.ipv4, kind="scan")
    assert (found["port"], found["mode"]) == ("31337", "udp")
    assert "UDP_REPLY_SOURCE_PORTS" not in daemon.log()
    daemon.stop()


def classic_daemon(lab: Lab, folder: Path, limit: str) -> RunningDaemon:
    """-tcp -udp on 2,000 TCP ports, started under `prlimit --nofile=SOFT:HARD`."""
    conf = folder / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{folder}/state"\nTCP_PORTS="2000-3999"\nUDP_PORTS="7,9"\nAUDIT_INTERVAL="0"\n'
    )
    return RunningDaemon(lab.target, conf, "-tcp", "-udp", wrapper=["prlimit", f"--nofile={limit}"])


def test_too_many_ports_for_the_descriptors_is_one_clear_error(lab: Lab, tmp_path: Path) -> None:
    daemon = classic_daemon(lab, tmp_path, "1024:1024")
    assert daemon.proc.wait(timeout=20) == 1
    log = daemon.log()
    assert (
        "portwarden: error: the classic modes' 2000 TCP and 2 UDP ports need 2002 file descriptors"
        in log
        and "(hard limit 1024): raise the hard limit" in log
    )
    assert "Traceback" not in log and "in use" not in log and "watching" not in log


def test_the_soft_limit_is_raised_and_running_out_later_is_survived(
    lab: Lab, tmp_path: Path
) -> None:
    """systemd's soft limit (1024) with room under the hard one: all 2,000 ports are bound.
    Then the limit is cut to what is open: the periodic refresh and accept() fail with EMFILE,
    which is logged; once descriptors are back, the waiting connection is reported."""
    daemon = classic_daemon(lab, tmp_path, "1024:4096")
    try:
        daemon.wait_for("ready:")
        assert "tcp: watching 2000 tcp ports" in daemon.log() and "in use" not in daemon.log()
        attacker = lab.attackers[2]
        assert can_connect(attacker, lab.target.ipv4, 3999)
        daemon.wait_for_attack(src=attacker.ipv4, port="3999", type="TCP connect scan")
        pid = daemon.proc.pid  # ip netns exec and prlimit exec the daemon: the same process
        open_now = len(os.listdir(f"/proc/{pid}/fd"))
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={open_now}:4096"], check=True)
        daemon.wait_for(r"refresh failed \(Too many open files\)", timeout=10)
        assert can_connect(attacker, lab.target.ipv4, 2500)  # in the backlog, not accepted
        daemon.wait_for(r"ERROR out of file descriptors \(Too many open files\)", timeout=10)
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=4096:4096"], check=True)
        daemon.wait_for_attack(src=attacker.ipv4, port="2500", timeout=10)
        time.sleep(2.5)  # a refresh with descriptors again
        assert daemon.proc.poll() is None and "Traceback" not in daemon.log()
    finally:
        daemon.stop()


MALFORMED = Path(__file__).parent.parent / "lab" / "malformed.py"


def test_a_forged_source_is_neither_reported_nor_blocked(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """An IPv6 datagram from ::ffff:198.18.0.13 shows on the dual-stack socket like a real IPv4
    peer; blocking 198.18.0.13 for it would block a bystander. Sources no host can send from
    are dropped as the raw modes drop them."""
    daemon = start_daemon("-tcp", "-udp")
    attacker, bystander = lab.attackers[0], lab.attackers[2]
    forged6 = [f"::ffff:{bystander.ipv4}", "::ffff:0.0.0.7", f"::{bystander.ipv4}"]
    attacker.run([sys.executable, str(MALFORMED), "--udp", lab.target.ipv6, "9", *forged6])
    attacker.run(
        [sys.executable, str(MALFORMED), "--udp", lab.target.ipv4, "9", "0.1.2.3", "240.0.0.5"]
    )
    send(attacker, lab.target.ipv4, 9)  # a real one after them: when it is seen, all were read
    found = daemon.wait_for_attack(src=attacker.ipv4, kind="scan")
    assert (found["port"], found["mode"]) == ("9", "udp")
    assert [line["src"] for line in daemon.attacks(port="9")] == [attacker.ipv4], daemon.log()
    blocked = lab.target.run(
        [
            sys.executable,
            "-m",
            "portwarden",
            "blocked",
            "-c",
            str(daemon.log_path.with_suffix(".conf")),
        ]
    ).stdout
    assert bystander.ipv4 not in blocked and "0.1.2.3" not in blocked, blocked
    daemon.stop()
