"""A throw-away network of namespaces on this machine: one target, attackers, one benign client.

Every host has one veth link into a switch namespace that holds a bridge, so nothing is added to
the machine's own network namespace. Addresses come from the benchmarking ranges 198.18.0.0/15
and 2001:db8::/32 only.
"""

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Several checkouts may run labs at once on one machine: each picks its own prefix.
PREFIX = os.environ.get("PWT_LAB_PREFIX", "pwt-")
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

    def stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.processes.clear()


class Lab:
    """Build with create(), always destroy(): also after failures (the fixture does both)."""

    def __init__(self, prefix: str = PREFIX, attackers: int = 3) -> None:
        self.prefix = prefix
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
            run(
                [
                    *sw,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    host.netns,
                ]
            )
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


def lab_namespaces(prefix: str) -> list[str]:
    listing = run(["ip", "netns", "list"]).stdout.splitlines()
    return [line.split()[0] for line in listing if line.startswith(prefix)]


def remove_stale(prefix: str) -> None:
    """Remove every namespace of a previous (maybe interrupted) run, killing what runs inside."""
    for name in lab_namespaces(prefix):
        pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        run(["ip", "netns", "del", name], check=False)


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot be built here, or None if it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            return f"the lab needs {tool!r} (apt-get install iproute2 iputils-ping)"
    return None


def mac_address(host: Host) -> str:
    """The MAC address of the host's eth0 (masscan needs it as its 'router')."""
    output = host.run(["ip", "-br", "link", "show", "eth0"]).stdout.split()
    return output[2]
