"""A daemon per test module, started in the lab's target host with the module's modes."""

import shlex
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.lab.daemon import RunningDaemon
from tests.lab.portmapper import HOSTS_ALLOW, HOSTS_DENY, Portmapper
from tests.lab.services import tcp_echo_server

TCP_PORTS = "1,11,15,79,111,540,1080,31337"
UDP_PORTS = "1,7,9,69,161,31337"
SERVICE = 8080  # a real open TCP service on the target (echo_service)

StartDaemon = Callable[..., RunningDaemon]


@pytest.fixture(scope="module")
def echo_service(lab: Lab) -> Iterator[None]:
    """A real TCP echo service on SERVICE in the target, for the whole module."""
    server = tcp_echo_server(lab.target, SERVICE)
    yield
    server.kill()


@pytest.fixture(scope="module")
def started_daemons() -> list[RunningDaemon]:
    """Every daemon start_daemon started in this module, in order."""
    return []


@pytest.fixture(scope="module")
def start_daemon(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory, started_daemons: list[RunningDaemon]
) -> Iterator[StartDaemon]:
    """start_daemon(*flags, conf='...') -> a ready daemon in the target, stopped at module end."""

    def start(*flags: str, conf: str = "") -> RunningDaemon:
        folder: Path = tmp_path_factory.mktemp("daemon")
        path = folder / "portwarden.conf"
        # OS_PROBE_QUIET 4 s, not 10: still twice nmap -O's pause between its rounds.
        path.write_text(
            f'STATE_DIR="{folder}/state"\nTCP_PORTS="{TCP_PORTS}"\n'
            f'UDP_PORTS="{UDP_PORTS}"\nOS_PROBE_QUIET="4"\n{conf}'
        )
        daemon = RunningDaemon(lab.target, path, *flags)
        daemon.wait_for("ready:")
        started_daemons.append(daemon)
        return daemon

    yield start
    for daemon in started_daemons:
        if daemon.proc.poll() is None:
            daemon.stop()
    for host in lab.hosts:
        host.stop_processes()


@pytest.fixture
def local_port_range(lab: Lab) -> Iterator[str]:
    """The target's ephemeral port range, widened to take in the tripwire 31337."""
    key = "net.ipv4.ip_local_port_range"
    old = lab.target.run(["sysctl", "-n", key]).stdout.split()
    lab.target.run(["sysctl", "-qw", f"{key}=31000 60999"])
    yield "31000-60999"
    lab.target.run(["sysctl", "-qw", f"{key}={old[0]} {old[1]}"])


@pytest.fixture(autouse=True)
def clean_firewall(lab: Lab, started_daemons: list[RunningDaemon]) -> Iterator[None]:
    """Blocks made by one test must not cut off the next test's attackers: the daemons this
    test started are stopped (a daemon that still runs puts its blocks back when its table is
    removed), then the table and any blackhole route (KILL_ROUTE) are removed."""
    before = len(started_daemons)
    yield
    for daemon in started_daemons[before:]:
        if daemon.proc.poll() is None:
            daemon.stop()
    lab.target.run(["nft", "delete", "table", "inet", "portwarden"], check=False)
    for family in ("-4", "-6"):
        lab.target.run(["ip", family, "route", "flush", "type", "blackhole"], check=False)


def nmap_command(*args: str, retries: int = 1) -> list[str]:
    """nmap that runs quickly: no DNS, no host discovery, `retries` retries of a probe that has
    no answer in time."""
    return ["nmap", "-n", "-Pn", "--max-retries", str(retries), *args]


# nmap -O with one round of OS probes: without a perfect match in its database (the lab's
# kernel is often newer than it) nmap sends the whole set again, up to five times, seconds apart.
# One round has every probe; test_os_probes keeps nmap's own rounds to see them summarised as one.
NMAP_OS_ONCE = ("-O", "--max-os-tries", "1")


def nmap(host_run: Callable, *args: str, retries: int = 1) -> None:
    """Run nmap quickly (nmap_command)."""
    host_run(nmap_command(*args, retries=retries), timeout=120)


def nmap_runs(host: Host, *runs: Sequence[str]) -> None:
    """Several nmap runs (each as nmap() makes it) one right after the other, in one shell in
    `host`: no start of a process from the test between them, whose time on a loaded machine
    could exceed a short SCAN_END_QUIET and split one scan's summary in two."""
    script = " && ".join(shlex.join(nmap_command(*args)) for args in runs)
    host.run(["sh", "-c", script], timeout=120 * len(runs))


def address_of(host: Host, family: int) -> str:
    """The lab host's IPv4 address (`family` 4) or IPv6 address (6)."""
    return host.ipv4 if family == 4 else host.ipv6


@pytest.fixture
def portmapper(lab: Lab, tmp_path: Path) -> Iterator[Portmapper]:
    """A real rpcbind in the target with the lab's own hosts.allow and hosts.deny; what
    `portwarden portmap protect` may have left in the firewalls goes when the test ends."""
    started = Portmapper(lab.target, tmp_path, HOSTS_ALLOW, HOSTS_DENY)
    yield started
    started.stop()
    lab.target.run(["nft", "delete", "table", "inet", "portwarden_portmap"], check=False)
    for tool in ("iptables", "ip6tables"):
        lab.target.run([tool, "-D", "INPUT", "-j", "PORTWARDEN_PORTMAP"], check=False)
        lab.target.run([tool, "-F", "PORTWARDEN_PORTMAP"], check=False)
        lab.target.run([tool, "-X", "PORTWARDEN_PORTMAP"], check=False)
