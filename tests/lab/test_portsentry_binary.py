"""The model of PortSentry's configuration reading (portwarden.config.portsentry_reading)
against Debian's real /usr/sbin/portsentry 1.2: each file's TCP_PORTS, as the model reads it,
must be the set of ports the binary binds in `-tcp` mode. The binary runs in network, mount and
PID namespaces of its own (`unshare`), with a tmpfs over /etc/portsentry holding the test file:
it never sees the host's network or files, and everything goes when the namespace's first
process exits."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.config.portsentry_reading import portsentry_reading
from tests.conftest import require_lab

PORTSENTRY = Path("/usr/sbin/portsentry")
# The namespace's first process: starts portsentry, waits until it sleeps in select() on its
# ports (or is gone: it aborts without ports), prints the TCP ports listening, and kills it.
RUNNER = """
import json, os, subprocess, sys, time
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/etc/portsentry"], check=True)
with open("/etc/portsentry/portsentry.conf", "w", encoding="utf-8", newline="") as conf:
    conf.write(sys.argv[1])
open("/etc/portsentry/portsentry.ignore", "w").close()
subprocess.run([sys.argv[2], "-tcp"], capture_output=True, timeout=10)
def daemon():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/comm") as comm:
            if comm.read().strip() == "portsentry" and fields[0] != "Z":
                return int(pid), fields[0]
    return None, None
deadline = time.monotonic() + 10
pid, state = daemon()
while pid is not None and state != "S" and time.monotonic() < deadline:
    time.sleep(0.02)
    pid, state = daemon()
listening = subprocess.run(["ss", "-Hlnt"], capture_output=True, text=True, check=True).stdout
ports = {int(line.split()[3].rpartition(":")[2]) for line in listening.splitlines()}
print(json.dumps(sorted(ports)))
if pid is not None:
    os.kill(pid, 9)
"""
FILES = (
    'IGNORE_FILE="/etc/portsentry/portsentry.ignore"\nHISTORY_FILE="/etc/portsentry/h"\n'
    'BLOCKED_FILE="/etc/portsentry/b"\n'
)


def bound_by_portsentry(text: str) -> list[int]:
    out = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "--pid",
                          "--fork", "--mount-proc", sys.executable, "-c", RUNNER, text,
                          str(PORTSENTRY)],
                         check=True, capture_output=True, text=True, timeout=30)  # fmt: skip
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("text", [
    '          TCP_PORTS="7777"\n',
    'TCP_PORTS=7777 # "8888"\n',
    'BLOCK_UDP="1" #TCP_PORTS="9999"\nTCP_PORTS="8888"\n',
    '  TCP_PORTS="7777"\nTCP_PORTS="8888"\n',
    'TCP_PORTS\t"7777"\nTCP_PORTS="8888"\n',
    'TCP_PORTS="7777"\nTCP_PORTS="8888"\n',
    'TCP_PORTS=7777\nTCP_PORTS="8888"\n',  # "Quotes missing": no port, it aborts
    'TCP_PORTS="7001' + "," * 1006 + '7777"\n',  # cut by fgets() after 1023 characters
    'TCP_PORTS = "7777, 8888"\n',
    'TCP_PORTS="7777"\r\r\n',  # a CRLF file converted twice
    '\ufeffTCP_PORTS="7777"\nTCP_PORTS="8888"\n',  # a byte-order mark: line 1 is not read
])  # fmt: skip
def test_the_model_binds_what_portsentry_binds(text: str) -> None:
    require_lab()
    if not PORTSENTRY.exists() or shutil.which("unshare") is None:
        pytest.skip("Debian's portsentry is not installed")
    value = portsentry_reading((text + FILES).encode(), "TCP_PORTS").value or ""
    expected = sorted({int(item) for item in value.split(",") if item.strip()})  # strtok, atoi
    assert bound_by_portsentry(text + FILES) == expected
