"""Start portwarden inside a lab host and watch what it logs."""

import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from portwarden.lab.network import Host
from tests.lab.isolated import NEW_MOUNTS


class RunningDaemon:
    """`portwarden run` in a lab host, its stderr going to a file the test can read; `wrapper`
    is a command that runs it (e.g. setpriv with fewer capabilities)."""

    def __init__(self, host: Host, config: Path, *flags: str, wrapper: Sequence[str] = ()) -> None:
        self.log_path = config.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.proc = host.popen(
            [*wrapper, sys.executable, "-m", "portwarden", "run", "-c", str(config), *flags],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """A position in the log; pass it to attacks() to see only what came after."""
        return len(self.log())

    def attacks(self, since: int = 0, **match: str) -> list[dict[str, str]]:
        """The `attack key=value ...` lines logged after `since` whose fields equal `match`."""
        found = []
        for line in self.log()[since:].splitlines():
            _, marker, rest = line.partition(" attack ")
            if not marker or not rest.startswith("kind="):  # "attack lines suppressed: N ..."
                continue
            fields = dict(item.split("=", 1) for item in shlex.split(rest))
            if all(fields.get(key) == value for key, value in match.items()):
                found.append(fields)
        return found

    def wait_for_attack(
        self, since: int = 0, timeout: float = 15.0, **match: str
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.attacks(since, **match)
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no attack line matching {match}:\n{self.log()[since:]}")

    def wait_for(self, pattern: str, timeout: float = 15.0, since: int = 0) -> re.Match[str]:
        """Wait until a log line (after `since`) matches `pattern`; fail with the log if not."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log(), since)
            if found:
                return found
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"no log line matched {pattern!r} (exit {self.proc.poll()}):\n{self.log()}"
                )
            time.sleep(0.05)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The daemon stopped (SIGSTOP) meanwhile: what the test changes under it cannot be
        seen or repaired before the test has looked at it, however loaded the machine is."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns the exit status and the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=timeout)
        self._log.close()
        return status, time.monotonic() - started


def start_with_hosts_file(
    host: Host, hosts: Path, config: Path, log: Path, *flags: str
) -> subprocess.Popen:
    """`portwarden run` with `hosts` bind-mounted over /etc/hosts in a private mount namespace
    (hostile reverse-DNS names without a DNS server); returns once it is ready."""
    return start_with_files(host, {"/etc/hosts": hosts}, config, log, *flags)


def start_with_files(
    host: Host,
    files: dict[str, Path],
    config: Path,
    log: Path,
    *flags: str,
    tmpfs: Sequence[str] = (),
) -> subprocess.Popen:
    """`portwarden run` with each file bind-mounted over a system file (e.g. /etc/resolv.conf)
    in a private mount namespace; returns once it is ready. `tmpfs`: folders that get an empty
    tmpfs there first; a file inside one is copied in (its folders made), so it need not exist
    on the host (/run/systemd/resolve/resolv.conf)."""
    steps = [f"mount -t tmpfs tmpfs {shlex.quote(folder)}" for folder in tmpfs]
    for system, mine in files.items():
        target, source = shlex.quote(system), shlex.quote(str(mine))
        if any(system.startswith(f"{folder}/") for folder in tmpfs):
            steps.append(
                f"mkdir -p {shlex.quote(str(Path(system).parent))} && cp {source} {target}"
            )
        else:
            steps.append(f"mount --bind {source} {target}")
    mounts = " && ".join(steps)
    script = f"{mounts} && exec {sys.executable} -m portwarden run -c {config} {' '.join(flags)}"
    proc = host.popen(
        [*NEW_MOUNTS, "sh", "-c", script],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for_text(log, "ready:")
    return proc


class Daemonised(NamedTuple):
    """A `run --daemon` that returned: its command line, pid file, log file and pid."""

    command: list[str]
    pid_file: Path
    log: Path
    pid: int


def daemon_command(conf: Path, pid_file: Path) -> list[str]:
    """`portwarden run --daemon` with the configuration `conf`, writing `pid_file`."""
    return [
        sys.executable,
        "-m",
        "portwarden",
        "run",
        "-c",
        str(conf),
        "--daemon",
        "--pid-file",
        str(pid_file),
    ]


def run_daemonised(host: Host, folder: Path, conf_extra: str = "") -> Daemonised:
    """`portwarden run --daemon` (stealth TCP on port 11, state in `folder`/state) in `host`;
    asserts that it returned 0 (it does once the daemon is ready)."""
    conf = folder / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{folder}/state"\nTCP_PORTS="11"\nTCP_MODE="stcp"\n'
        f'UDP_MODE="none"\n{conf_extra}'
    )
    pid_file, log = folder / "pw.pid", folder / "state" / "portwarden.log"
    command = daemon_command(conf, pid_file)
    started = host.run(command, check=False, timeout=30)
    assert started.returncode == 0, started.stderr
    return Daemonised(command, pid_file, log, int(pid_file.read_text()))


def wait_for_text(path: Path, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, path.read_text(errors="replace")
        time.sleep(0.1)
