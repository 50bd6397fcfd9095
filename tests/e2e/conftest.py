"""A daemon per test module, started in the lab's target host with the module's modes."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.lab.daemon import RunningDaemon

TCP_PORTS = "1,11,15,79,111,540,1080,31337"
UDP_PORTS = "1,7,9,69,161,31337"

StartDaemon = Callable[..., RunningDaemon]


@pytest.fixture(scope="module")
def start_daemon(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDaemon]:
    """start_daemon(*flags, conf='...') -> a ready daemon in the target, stopped at module end."""
    started: list[RunningDaemon] = []

    def start(*flags: str, conf: str = "") -> RunningDaemon:
        folder: Path = tmp_path_factory.mktemp("daemon")
        path = folder / "portwarden.conf"
        path.write_text(f'STATE_DIR="{folder}/state"\nTCP_PORTS="{TCP_PORTS}"\n'
                        f'UDP_PORTS="{UDP_PORTS}"\n{conf}')  # fmt: skip
        daemon = RunningDaemon(lab.target, path, *flags)
        daemon.wait_for("ready:")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.stop()
    for host in lab.hosts:
        host.stop_processes()


@pytest.fixture(autouse=True)
def clean_firewall(lab: Lab) -> Iterator[None]:
    """Blocks made by one test must not cut off the next test's attackers."""
    yield
    lab.target.run(["nft", "delete", "table", "inet", "portwarden"], check=False)


def nmap(host_run: Callable, *args: str) -> None:
    """Run nmap quickly: no DNS, no host discovery, one retry."""
    host_run(["nmap", "-n", "-Pn", "--max-retries", "1", *args], timeout=120)
