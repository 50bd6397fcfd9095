"""Detection cost, portwarden -stcp next to PortSentry 1.2 -stcp, on the same traffic in one run.

Run as root from the repository root:  .venv/bin/python -m benchmarks.detection [--runs 3]

Phase "benign": many established TCP connections move data to a real service on the target
while both daemons watch; we read each daemon's CPU time from /proc. Phase "masscan": masscan
sweeps all 65535 TCP ports of the target at its top rate; we count what each daemon reported.
Both daemons run at the same time in the same target namespace, watching the same ports.
PortSentry runs in a private mount namespace with its own /etc/portsentry and a /dev/log that
this script reads, so its alerts are counted and nothing touches the host.

What each daemon read: "packets" is the target's network interface (shared by both). Ours
says what its sensors read (`packets_read` from `portwarden status --json`) and how many of
those were probes (`probes`: its attack lines are rate-limited, so they are not counted).
PortSentry keeps no counter; its raw socket has no kernel filter and gets a copy of every TCP
segment the target takes in, so what it read is the target's TCP InSegs (/proc/net/snmp) less
what its socket dropped (/proc/net/raw, the `drops` column); its probes are its alert lines.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.lab.services import tcp_echo_server

from portwarden.lab.network import Host, Lab, masscan_args, run

# Namespaces of their own, after PWT_LAB_PREFIX: labs of other checkouts run at the same time.
BENCH_PREFIX = f"{os.environ.get('PWT_LAB_PREFIX', 'pwt-')}bench-"

PORTS = (
    "1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,"
    "31337,32771,32772,32773,32774,40421,49724,54320"
)
SERVICE = 8080
TICKS = os.sysconf("SC_CLK_TCK")

_STREAMER = """
import socket, sys, threading, time
host, port, conns, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
moved = [0] * conns
def stream(i):
    with socket.create_connection((host, port)) as c:
        block = b"x" * 16384
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            c.sendall(block)
            got = 0
            while got < len(block):
                got += len(c.recv(65536))
            moved[i] += 2 * len(block)
threads = [threading.Thread(target=stream, args=(i,)) for i in range(conns)]
[t.start() for t in threads]
[t.join() for t in threads]
print(sum(moved))
"""


class SyslogSink:
    """A /dev/log stand-in: counts PortSentry's alert lines."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                self.lines.append(self.sock.recv(4096).decode(errors="replace"))
            except OSError:  # closed: PortSentry was stopped
                return

    def alerts(self) -> list[str]:
        """One line per probe: PortSentry adds a second line per probe about blocking."""
        return [line for line in self.lines if "attackalert" in line and " scan from host" in line]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rx_packets(host: Host) -> int:
    return int(host.run(["cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout)


def tcp_segments_in(host: Host) -> int:
    """TCP InSegs of the host's network namespace: every TCP segment it took in."""
    header, values = (
        line.split()
        for line in host.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
        if line.startswith("Tcp:")
    )
    return int(values[header.index("InSegs")])


def raw_socket_drops(host: Host, pid: int) -> int:
    """Packets the kernel dropped because the raw sockets of process `pid` were full."""
    fds = Path(f"/proc/{pid}/fd")
    inodes = {os.readlink(fd).removeprefix("socket:[").rstrip("]") for fd in fds.iterdir()}
    table = host.run(["cat", "/proc/net/raw", "/proc/net/raw6"]).stdout.splitlines()
    return sum(int(f[-1]) for f in (line.split() for line in table) if f[9] in inodes)


class OurDaemon:
    """portwarden -stcp in the lab's target; `extra` adds configuration lines."""

    def __init__(self, lab: Lab, work: Path, extra: str = "") -> None:
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "portwarden.conf"
        # No periodic port audit: PortSentry has none, the comparison is of detection alone.
        conf.write_text(
            f'STATE_DIR="{work}/state"\nTCP_PORTS="{PORTS}"\nUDP_MODE="none"\n'
            f'AUDIT_INTERVAL="0"\n{extra}'
        )
        self.log = work / "portwarden.log"
        self.conf = conf
        self.host = lab.target
        self.proc = lab.target.popen(
            [sys.executable, "-m", "portwarden", "run", "-c", str(conf), "-stcp"],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while "ready:" not in self.log.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"portwarden not ready: {self.log.read_text()}")
            time.sleep(0.05)
        self.pid = self.proc.pid

    def alerts(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if " attack " in line]

    def counters(self) -> dict[str, int]:
        status = self.host.run(
            [sys.executable, "-m", "portwarden", "status", "--json", "-c", str(self.conf)]
        ).stdout
        return json.loads(status)["counters"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class PortSentry:
    """PortSentry 1.2 -stcp in the lab's target, with its own /etc/portsentry and /dev/log."""

    def __init__(self, lab: Lab, work: Path, extra: str = "") -> None:
        etc, dev = work / "etc", work / "dev"
        etc.mkdir(parents=True, exist_ok=True)
        dev.mkdir(exist_ok=True)
        block = "1" if "KILL_ROUTE" in extra else "0"
        (etc / "portsentry.conf").write_text(
            f'TCP_PORTS="{PORTS}"\nUDP_PORTS="1"\nADVANCED_PORTS_TCP="1024"\n'
            f'ADVANCED_PORTS_UDP="1024"\nIGNORE_FILE="/etc/portsentry/portsentry.ignore"\n'
            f'HISTORY_FILE="{work}/ps.history"\nBLOCKED_FILE="{work}/ps.blocked"\n'
            f'RESOLVE_HOST="0"\nBLOCK_UDP="0"\nBLOCK_TCP="{block}"\nSCAN_TRIGGER="0"\n'
            f"{extra}"
        )
        (etc / "portsentry.ignore").write_text("127.0.0.1/32\n0.0.0.0\n")
        for node in ("null", "zero", "urandom"):
            (dev / node).touch()
        self.sink = SyslogSink(dev / "log")
        binds = " && ".join(f"mount --bind /dev/{n} {dev}/{n}" for n in ("null", "zero", "urandom"))
        script = (
            f"{binds} && mount --bind {etc} /etc/portsentry && mount --bind {dev} /dev"
            " && exec portsentry -stcp"
        )
        before = set(_portsentry_pids(lab))
        lab.target.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
        deadline = time.monotonic() + 20
        self.pid = 0
        # Ready when it says so, or (its last line is sometimes missing here) when it has
        # announced the last port.
        last = f"stealth listen mode on TCP port: {PORTS.split(',')[-1]}"
        while not self.pid or not any("now active" in x or last in x for x in self.sink.lines):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PortSentry not ready: {self.sink.lines}")
            fresh = set(_portsentry_pids(lab)) - before
            self.pid = min(fresh) if fresh else 0
            time.sleep(0.05)

    def alerts(self) -> list[str]:
        return self.sink.alerts()

    def stop(self) -> None:
        os.kill(self.pid, 9)
        self.sink.sock.close()


def _portsentry_pids(lab: Lab) -> list[int]:
    pids = []
    for pid in run(["ip", "netns", "pids", lab.target.netns]).stdout.split():
        comm = Path(f"/proc/{pid}/comm")
        if comm.exists() and comm.read_text().strip() == "portsentry":
            pids.append(int(pid))
    return pids


class Daemons:
    """Both, watching the same ports in the same target at the same time."""

    def __init__(self, lab: Lab, work: Path) -> None:
        self.ours = OurDaemon(lab, work)
        self.theirs = PortSentry(lab, work)
        self.sink = self.theirs.sink
        time.sleep(0.5)

    def cpu(self) -> tuple[float, float]:
        return cpu_seconds(self.ours.pid), cpu_seconds(self.theirs.pid)

    def reads(self, lab: Lab) -> dict[str, int]:
        """What each has read so far (see the module's docstring), and its socket drops."""
        ours = self.ours.counters()
        theirs_dropped = raw_socket_drops(lab.target, self.theirs.pid)
        return {
            "packets": rx_packets(lab.target),
            "ours read": ours["packets_read"],
            "ours dropped": raw_socket_drops(lab.target, self.ours.pid),
            "ours probes": ours["probes"],
            "theirs read": tcp_segments_in(lab.target) - theirs_dropped,
            "theirs dropped": theirs_dropped,
        }

    def stop(self) -> None:
        self.theirs.stop()
        self.ours.stop()

    def our_alerts(self) -> list[str]:
        return self.ours.alerts()


def benign(lab: Lab, work: Path, seconds: float, connections: int) -> dict[str, float]:
    daemons = Daemons(lab, work)
    try:
        ours0, theirs0 = daemons.cpu()
        read0 = daemons.reads(lab)
        moved = lab.client.run(
            [
                sys.executable,
                "-c",
                _STREAMER,
                lab.target.ipv4,
                str(SERVICE),
                str(connections),
                str(seconds),
            ],
            timeout=seconds + 60,
        ).stdout
        ours1, theirs1 = daemons.cpu()
        read = _delta(daemons.reads(lab), read0)
        return {
            "packets": read["packets"],
            "MB moved": int(moved) / 1e6,
            "ours read": read["ours read"],
            "theirs read": read["theirs read"],
            "ours cpu s": ours1 - ours0,
            "theirs cpu s": theirs1 - theirs0,
            "ours alerts": len(daemons.our_alerts()),
            "theirs alerts": len(daemons.sink.alerts()),
        }
    finally:
        daemons.stop()


def masscan(lab: Lab, work: Path, rate: int, dropped: bool) -> dict[str, float]:
    """With `dropped`, an nftables rule in the target drops the attacker before the sensors."""
    daemons = Daemons(lab, work)
    attacker = lab.attackers[0]
    try:
        if dropped:
            lab.target.run(
                ["nft", "-f", "-"],
                input=(
                    "table inet pwbench {\n chain input {\n type filter hook input priority 0;\n"
                    f" ip saddr {attacker.ipv4} drop\n }}\n}}\n"
                ),
            )
        ours0, theirs0 = daemons.cpu()
        read0 = daemons.reads(lab)
        started = time.monotonic()
        attacker.run(masscan_args(attacker, lab.target, rate, 0), timeout=300)
        elapsed = time.monotonic() - started
        time.sleep(2)
        ours1, theirs1 = daemons.cpu()
        read = _delta(daemons.reads(lab), read0)
        ours = daemons.our_alerts()
        theirs = daemons.sink.alerts()
        return {
            "packets": read["packets"],
            "kpps": read["packets"] / elapsed / 1000,
            "ours read": read["ours read"],
            "ours dropped": read["ours dropped"],
            "ours probes": read["ours probes"],
            "theirs read": read["theirs read"],
            "theirs dropped": read["theirs dropped"],
            "theirs probes": len(theirs),
            "ours detected": float(any(f"src={attacker.ipv4} " in line for line in ours)),
            "theirs detected": float(any(attacker.ipv4 in line for line in theirs)),
            "ours cpu s": ours1 - ours0,
            "theirs cpu s": theirs1 - theirs0,
            "ours peak MiB": peak_rss_kib(daemons.ours.pid) / 1024,
            "theirs peak MiB": peak_rss_kib(daemons.theirs.pid) / 1024,
        }
    finally:
        daemons.stop()
        if dropped:
            lab.target.run(["nft", "delete", "table", "inet", "pwbench"])


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}


def table(title: str, runs: list[dict[str, float]]) -> str:
    lines = [f"\n{title} (median of {len(runs)} runs)", f"{'metric':<18}{'median':>12}"]
    for key in runs[0]:
        lines.append(f"{key:<18}{statistics.median(r[key] for r in runs):>12.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=1_000_000, help="masscan --rate")
    args = parser.parse_args()
    lab = Lab(prefix=BENCH_PREFIX, attackers=1).create()
    try:
        tcp_echo_server(lab.target, SERVICE)
        with tempfile.TemporaryDirectory() as tmp:
            benign_runs, masscan_runs, dropped_runs = [], [], []
            for number in range(args.runs):
                benign_runs.append(
                    benign(lab, Path(tmp, f"b{number}"), args.seconds, args.connections)
                )
                masscan_runs.append(masscan(lab, Path(tmp, f"m{number}"), args.rate, False))
                dropped_runs.append(masscan(lab, Path(tmp, f"d{number}"), args.rate, True))
        print(
            table(
                f"benign: {args.connections} connections streaming for {args.seconds:g} s",
                benign_runs,
            )
        )
        print(table(f"masscan: 65535 TCP ports, --rate {args.rate}", masscan_runs))
        print(table("the same masscan, its source dropped by nftables", dropped_runs))
    finally:
        lab.destroy()


if __name__ == "__main__":
    main()
