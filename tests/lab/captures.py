"""Record the captures in tests/data/captures: real nmap scans and real benign clients in a
throw-away lab, taken with tcpdump on the target's interface.

Run as root from the repository root:  .venv/bin/python -m tests.lab.captures
Each NAME.pcap has a NAME.expected beside it, written by hand from what the scenario sends;
recording again changes addresses only if the lab's do.
"""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from portwarden.lab.network import Lab
from tests.lab.services import echo_client, tcp_echo_server, udp_echo_server

FOLDER = Path(__file__).parent.parent / "data" / "captures"
SNAPLEN = 200  # headers and the start of the payload: what the sensors look at
# Services on the target: 143/tcp and 69/udp are in Debian's TCP_PORTS and UDP_PORTS, so the
# replay must learn from the capture that they were services, not tripwires.
TCP_SERVICES, UDP_SERVICES = (143, 8080), (69,)
_NMAP = ["nmap", "-n", "-Pn", "--max-retries", "1"]


def _scenarios(lab: Lab) -> dict[str, Callable[[], object]]:
    target, attackers = lab.target, lab.attackers
    return {
        "nmap-syn": lambda: attackers[0].run([*_NMAP, "-sS", "-p", "1-40,143,8080", target.ipv4]),
        "nmap-fin-null-xmas": lambda: [
            attacker.run([*_NMAP, flag, "-p", "1-20", target.ipv4])
            for attacker, flag in zip(attackers, ("-sF", "-sN", "-sX"), strict=True)
        ],
        "nmap-udp": lambda: attackers[0].run([*_NMAP, "-sU", "-p", "1,7,9,69,161", target.ipv4]),
        "nmap-os": lambda: attackers[1].run([*_NMAP, "-O", "-p", "11,8080", target.ipv4]),
        "nmap-ipv6": lambda: attackers[2].run([*_NMAP, "-6", "-sS", "-p", "1-20", target.ipv6]),
        "benign": lambda: _benign(lab),
    }


def _benign(lab: Lab) -> None:
    """Normal clients: TCP and UDP echo exchanges (ECN negotiated) to services on ports that
    are in the watch lists, over IPv4 and IPv6."""
    client = lab.client
    client.run(["sysctl", "-q", "-w", "net.ipv4.tcp_ecn=1"])
    for address in (lab.target.ipv4, lab.target.ipv6):
        for port in TCP_SERVICES:
            assert echo_client(client, address, port, UDP_SERVICES[0], 5) == 10


def record(lab: Lab, name: str, scenario: Callable[[], object]) -> None:
    path = FOLDER / f"{name}.pcap"
    # --immediate-mode: otherwise packets wait in libpcap's buffer for up to a second, and
    # what is still there when tcpdump is stopped is lost.
    dump = lab.target.popen(
        [
            "tcpdump",
            "-Z",
            "root",
            "-n",
            "-U",
            "--immediate-mode",
            "-i",
            "eth0",
            "-s",
            str(SNAPLEN),
            "-w",
            str(path),
            "ip or ip6",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dump.stderr is not None and "listening" in dump.stderr.readline()
    time.sleep(0.2)
    try:
        scenario()
        time.sleep(0.5)
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    print(f"{path}: {path.stat().st_size} bytes", file=sys.stderr)


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    lab = Lab(prefix="pwc-").create()
    try:
        servers = [tcp_echo_server(lab.target, port) for port in TCP_SERVICES]
        servers += [udp_echo_server(lab.target, port) for port in UDP_SERVICES]
        for name, scenario in _scenarios(lab).items():
            record(lab, name, scenario)
        for server in servers:
            server.kill()
    finally:
        lab.destroy()


if __name__ == "__main__":
    main()
