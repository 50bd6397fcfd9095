"""A throw-away network of namespaces on this machine: one target, attackers, one benign client.

Every host has one veth link into a switch namespace that holds a bridge, so nothing is added to
the machine's own network namespace. Addresses come from the benchmarking ranges 198.18.0.0/15
and 2001:db8::/32 only.
"""

import contextlib
import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Every namespace name starts with the lab's prefix, so that labs run at once (a demo, a test
# run) never touch each other's. Checked (check_prefix) before any namespace is listed or removed.
# Lower-case letters and digits, in dash-ended parts ("pwt-", "pwlab-123-"): never empty, which
# would make every namespace on the machine the lab's.
_PREFIX_SHAPE = re.compile(r"(?:[a-z0-9]+-)+")
# The lab's own host names after the prefix; nothing else with the prefix is the lab's.
# (`probeN`: the namespace lab_unavailable_reason makes and deletes at once; `behind`: a host
# on a network behind the target, which a blocking test adds.)
_HOST_NAMES = r"(?:sw|target|atk[0-9]+|client|probe[0-9]+|behind)"
NET4 = "198.18.0"
NET6 = "2001:db8::"


def run(args: Sequence[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)


@dataclass
class Host:
    """One namespace with one interface, eth0, on the lab's bridge."""

    netns: str
    ipv4: str
    ipv6: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]

    def run(
        self, args: Sequence[str], check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        """Run a command inside this host and wait for it."""
        return run(self.command(args), check=check, **kwargs)

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start a process inside this host; the lab kills it at teardown if it still runs."""
        proc = subprocess.Popen(self.command(args), **kwargs)
        self.processes.append(proc)
        return proc

    def stop_processes(self, grace_s: float = 0.0) -> None:
        """Kill what this host runs; with `grace_s`, SIGTERM first and kill only what is still
        running after that many seconds (a daemon then lets go of what it holds)."""
        if grace_s:
            for proc in self.processes:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + grace_s
            for proc in self.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.processes.clear()


class Lab:
    """Build with create(), always destroy(): also after failures (the fixture does both)."""

    def __init__(self, prefix: str, attackers: int = 3) -> None:
        self.prefix = check_prefix(prefix)
        self.switch = f"{prefix}sw"
        self.target = self._host("target", 1)
        self.attackers = [self._host(f"atk{i}", 10 + i) for i in range(1, attackers + 1)]
        self.client = self._host("client", 20)

    def _host(self, name: str, number: int) -> Host:
        return Host(f"{self.prefix}{name}", f"{NET4}.{number}", f"{NET6}{number:x}")

    @property
    def hosts(self) -> list[Host]:
        return [self.target, *self.attackers, self.client]

    def create(self) -> "Lab":
        remove_stale(self.prefix)
        run(["ip", "netns", "add", self.switch])
        sw = ["ip", "-n", self.switch]
        run([*sw, "link", "add", "br0", "type", "bridge"])
        run([*sw, "link", "set", "br0", "up"])
        for index, host in enumerate(self.hosts):
            run(["ip", "netns", "add", host.netns])
            port = f"p{index}"
            add_veth(self.switch, port, host.netns)
            run([*sw, "link", "set", port, "master", "br0", "up"])
            ns = ["ip", "-n", host.netns]
            run([*ns, "link", "set", "lo", "up"])
            run([*ns, "link", "set", "eth0", "up"])
            run([*ns, "addr", "add", f"{host.ipv4}/24", "dev", "eth0"])
            run([*ns, "-6", "addr", "add", f"{host.ipv6}/64", "dev", "eth0", "nodad"])
        self._wait_until_reachable()
        return self

    def _wait_until_reachable(self) -> None:
        for host in (self.client, *self.attackers):
            for address in (self.target.ipv4, self.target.ipv6):
                deadline = time.monotonic() + 10
                while host.run(["ping", "-c1", "-W1", address], check=False).returncode != 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"lab: {host.netns} cannot reach {address}")

    def destroy(self) -> None:
        for host in self.hosts:
            host.stop_processes()
        remove_stale(self.prefix)


class LabPrefixError(ValueError):
    """A lab prefix that could name namespaces that are not the lab's."""


def check_prefix(prefix: str) -> str:
    """`prefix` when it has the lab's shape; else LabPrefixError (one line)."""
    if _PREFIX_SHAPE.fullmatch(prefix) is None:
        raise LabPrefixError(
            f"lab prefix {prefix!r} must be lower-case letters and digits "
            "ending in '-', e.g. 'pwt-'"
        )
    return prefix


def is_lab_namespace(name: str, prefix: str) -> bool:
    """Whether `name` is one of the lab's hosts under `prefix` (`pwt-target`, `pwt-atk2`), not
    merely a name that starts with it (`pwt-target-of-someone-else`, `pwt-stale-sw`)."""
    return (
        name.startswith(check_prefix(prefix))
        and re.fullmatch(_HOST_NAMES, name[len(prefix) :]) is not None
    )


def namespaces() -> list[str]:
    """Every network namespace on the machine, by name."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line]


def lab_namespaces(prefix: str) -> list[str]:
    return [name for name in namespaces() if is_lab_namespace(name, prefix)]


def remove_stale(prefix: str) -> None:
    """Remove the namespaces of a previous (maybe interrupted) run, killing what runs inside:
    only the lab's own names under `prefix`."""
    for name in lab_namespaces(prefix):
        pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        run(["ip", "netns", "del", name], check=False)


@functools.cache
def lab_unavailable_reason(prefix: str) -> str | None:
    """Why the lab cannot be built here, or None if it can. Root is not enough (a container, or
    a root without CAP_SYS_ADMIN): a throw-away namespace is made and deleted to find out."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            return f"the lab needs {tool!r} (apt-get install iproute2 iputils-ping)"
    probe = f"{check_prefix(prefix)}probe{os.getpid()}"
    made = run(["ip", "netns", "add", probe], check=False)
    run(["ip", "netns", "del", probe], check=False)
    if made.returncode != 0:
        why = " ".join(made.stderr.split()) or f"exit status {made.returncode}"
        return f"the lab cannot make a network namespace: ip netns add: {why}"
    return None


def add_veth(netns: str, name: str, peer_netns: str, peer_name: str = "eth0") -> None:
    """A veth pair: `name` in namespace `netns`, its peer `peer_name` in `peer_netns`."""
    peer = ["peer", "name", peer_name, "netns", peer_netns]
    run(["ip", "-n", netns, "link", "add", name, "type", "veth", *peer])


def mac_address(host: Host) -> str:
    """The MAC address of the host's eth0 (masscan needs it as its 'router')."""
    output = host.run(["ip", "-br", "link", "show", "eth0"]).stdout.split()
    return output[2]


def masscan_args(attacker: Host, target: Host, rate: int, wait_s: int) -> list[str]:
    """masscan in `attacker` at every TCP port of `target`'s IPv4 address, `rate` packets a
    second, waiting `wait_s` seconds for replies at the end."""
    return [
        "masscan",
        target.ipv4,
        "-p1-65535",
        "--rate",
        str(rate),
        "--wait",
        str(wait_s),
        "--interface",
        "eth0",
        "--adapter-ip",
        attacker.ipv4,
        "--router-mac",
        mac_address(target),
    ]
