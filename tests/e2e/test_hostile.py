"""Floods and malformed packets: the daemon keeps up, never crashes, never invents a scan."""

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab, masscan_args
from tests.e2e.conftest import TCP_PORTS, StartDaemon, nmap
from tests.e2e.test_blocking import portwarden
from tests.lab.daemon import RunningDaemon
from tests.lab.drops import lab_drops, lost_in_the_lab, skip_if_lost_in_the_lab

MALFORMED = Path(__file__).parent.parent / "lab" / "malformed.py"


@pytest.fixture(scope="module")
def daemon(start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    yield start_daemon("-stcp", "-sudp")


def test_masscan_at_high_rate(lab: Lab, daemon: RunningDaemon) -> None:
    attacker = lab.attackers[1]
    mark, drops = daemon.mark(), lab_drops(lab)
    attacker.run(masscan_args(attacker, lab.target, 100_000, 1), timeout=120)
    daemon.wait_for_attack(mark, src=attacker.ipv4, type="TCP SYN/Normal scan")
    # every tripwire, despite 65535 ports in ~1 s (a loaded daemon may say the last ones late)
    tripwires, deadline = set(TCP_PORTS.split(",")), time.monotonic() + 10
    while (seen := {a["port"] for a in daemon.attacks(mark, src=attacker.ipv4)}) != tripwires:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert daemon.proc.poll() is None
    skip_if_lost_in_the_lab(lab, drops, len(tripwires - seen))
    assert seen == tripwires, lost_in_the_lab(lab, drops)


def test_malformed_packets_neither_crash_nor_detect(lab: Lab, daemon: RunningDaemon) -> None:
    attacker = lab.attackers[2]
    mark = daemon.mark()
    sent = attacker.run(
        [
            sys.executable,
            str(MALFORMED),
            attacker.ipv4,
            lab.target.ipv4,
            attacker.ipv6,
            lab.target.ipv6,
            "11",
            "9",
        ]
    ).stdout
    assert int(sent) == 14
    # hping3 exits 1 when nothing answers, which is expected for some of these.
    hping3 = ["hping3", "-c", "3", "-i", "u1000", "-S", "-p", "15", lab.target.ipv4]
    attacker.run([*hping3, "-f"], check=False)  # fragments
    attacker.run([*hping3, "-O", "15"], check=False)  # TCP data offset beyond the packet
    nmap(attacker.run, "-sS", "-p", "111", lab.target.ipv4)  # a real probe after the junk
    daemon.wait_for_attack(mark, src=attacker.ipv4, port="111")
    # Real datagrams longer than what the sensors keep of a packet are probes.
    nmap(attacker.run, "-sU", "-p", "69", "--data-length", "500", lab.target.ipv4)
    nmap(attacker.run, "-6", "-sU", "-p", "69", "--data-length", "500", lab.target.ipv6)
    for src in (attacker.ipv4, attacker.ipv6):
        daemon.wait_for_attack(mark, src=src, port="69", type="UDP scan")
    assert daemon.proc.poll() is None
    # Truncated or broken headers to port 11, a SYN there from an IPv4-mapped IPv6 source, and
    # UDP lengths the kernel drops to port 9, are not probes; hping3's fragmented SYN to 15 is
    # a whole SYN once the kernel reassembles it, and may be reported.
    assert daemon.attacks(mark, port="11") == [], daemon.log()[mark:]
    assert daemon.attacks(mark, port="9") == [], daemon.log()[mark:]
    assert "Traceback" not in daemon.log()


def test_ipv6_destination_options_are_a_hint(lab: Lab, daemon: RunningDaemon) -> None:
    attacker = lab.attackers[2]
    mark = daemon.mark()
    attacker.run(
        [sys.executable, str(MALFORMED), "--options", attacker.ipv6, lab.target.ipv6, "79"]
    )
    found = daemon.wait_for_attack(mark, src=attacker.ipv6, port="79")
    assert found["ip_options"] == "yes"


def test_a_syn_behind_a_long_extension_chain_is_a_probe_live_and_on_replay(
    lab: Lab, daemon: RunningDaemon, tmp_path: Path
) -> None:
    """Linux delivers a SYN behind 9 or 12 destination-options headers (any number: it follows
    the chain to its end), so the live daemon reports it; `replay` of a capture of the same
    packets must report it too."""
    attacker, target = lab.attackers[2], lab.target
    capture = tmp_path / "chains.pcap"
    sent = {"15": 9, "540": 12}  # tripwire port: destination-options headers before the SYN
    # The attacker's packets whose first extension header is destination options: these two.
    dump = target.popen(
        [
            "tcpdump",
            "-nni",
            "eth0",
            "--immediate-mode",
            "-U",
            "-Z",
            "root",
            "-c",
            str(len(sent)),
            "-w",
            str(capture),
            "ip6",
            "and",
            "src",
            attacker.ipv6,
            "and",
            "ip6[6]",
            "==",
            "60",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dump.stderr is not None and "listening on" in dump.stderr.readline()
    mark = daemon.mark()
    for port, count in sent.items():
        attacker.run(
            [
                sys.executable,
                str(MALFORMED),
                "--options",
                attacker.ipv6,
                target.ipv6,
                port,
                str(count),
            ]
        )
    for port in sent:
        assert daemon.wait_for_attack(mark, src=attacker.ipv6, port=port)["ip_options"] == "yes"
    assert dump.wait(timeout=10) == 0
    conf = daemon.log_path.with_suffix(".conf")
    out = target.run(
        [
            sys.executable,
            "-m",
            "portwarden",
            "replay",
            str(capture),
            "-c",
            str(conf),
            "-stcp",
            "--host",
            target.ipv6,
        ]
    ).stdout
    found = re.findall(
        rf"attack kind=scan src={re.escape(attacker.ipv6)} \S+ proto=tcp "
        r"port=(\d+) ",
        out,
    )
    assert sorted(found) == sorted(sent), out


def raw_socket_drops(lab: Lab) -> int:
    """The drops of every raw socket in the target (the daemon's sensors are all there are)."""
    total = 0
    for table in ("/proc/net/raw", "/proc/net/raw6"):
        lines = lab.target.run(["cat", table]).stdout.splitlines()[1:]
        total += sum(int(line.split()[-1]) for line in lines)
    return total


def test_a_flood_faster_than_the_sensors_read_is_said_and_counted(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """hping3 --flood sends more than the loop reads: the kernel drops the rest at the sockets,
    and the daemon says so (once) and counts exactly what the kernel counted."""
    mark = daemon.mark()
    lab.attackers[0].run(
        ["timeout", "3", "hping3", "--flood", "--rand-source", "-S", "-p", "11", lab.target.ipv4],
        check=False,
    )
    daemon.wait_for(r"sensors fall behind: the kernel dropped \d+ packets for them", since=mark)
    status = portwarden(lab.target, daemon, "status", "--json")
    dropped = json.loads(status.stdout)["counters"]["packets_dropped"]
    assert dropped == raw_socket_drops(lab) > 0
    assert len(re.findall("sensors fall behind", daemon.log()[mark:])) == 1
    assert daemon.proc.poll() is None
