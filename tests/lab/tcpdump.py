"""tcpdump in a lab host: a capture to a file, started before the test acts, read back as text."""

import subprocess
from pathlib import Path

from portwarden.lab.network import Host


def start_capture(host: Host, path: Path, expression: str) -> subprocess.Popen:
    """tcpdump on every interface of `host`, writing what matches `expression` to `path` packet
    by packet (--immediate-mode, -U: nothing waits in a buffer when it is stopped), returned
    once it listens. The caller stops it (SIGINT) and waits for it."""
    tcpdump = host.popen(
        [
            "tcpdump",
            "-Z",
            "root",
            "-i",
            "any",
            "-n",
            "-U",
            "--immediate-mode",
            "-B",
            "8192",
            "-w",
            str(path),
            expression,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tcpdump.stderr is not None
    for _ in range(5):  # "data link type ...", then "listening on any ..."
        if "listening" in tcpdump.stderr.readline():
            break
    return tcpdump


def captured(host: Host, path: Path) -> list[str]:
    """The packets of the capture at `path`, one line each as tcpdump -n prints them."""
    return host.run(["tcpdump", "-r", str(path), "-n"], check=False).stdout.splitlines()
