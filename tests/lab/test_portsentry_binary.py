"""The model of PortSentry's configuration reading (portwarden.config.portsentry_reading)
against Debian's real /usr/sbin/portsentry 1.2: each file's TCP_PORTS, as the model reads it,
must be the set of ports the binary binds in `-tcp` mode; and the ignore-file entries we warn
PortSentry did not honour must be those whose hosts the binary still reports. The binary runs
in network, mount and PID namespaces of its own (`unshare`), with a tmpfs over /etc/portsentry
holding the test files: it never sees the host's network or files, and everything goes when
the namespace's first process exits."""

import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from portwarden.config.ignore import IgnoreList, parse_ignore_text
from portwarden.config.portsentry_reading import portsentry_reading
from tests.conftest import require_lab

PORTSENTRY = Path("/usr/sbin/portsentry")
# The namespace's first process: starts portsentry, waits until it sleeps in select() on its
# ports (or is gone: it aborts without ports), prints the TCP ports listening, and kills it.
# Before that, it connects to the first port from each source address (198.19.0.0/16 is this
# namespace's loopback network) and waits until portsentry closes the connection, one after the
# other (its listen backlog is 5); then from SENTINEL, so that every source before it has been
# handled whole when that one is closed. It prints the addresses in HISTORY_FILE, which
# portsentry appends to for each host it reports (BLOCK_TCP="0" too), and those BLOCKED_CMD made
# a file for.
RUNNER = """
import json, os, re, socket, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "address", "add", "198.19.0.1/16", "dev", "lo"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/etc/portsentry"], check=True)
with open("/etc/portsentry/portsentry.conf", "w", encoding="utf-8", newline="") as conf:
    conf.write(sys.argv[1])
with open("/etc/portsentry/portsentry.ignore", "w", encoding="utf-8", newline="") as ignore:
    ignore.write(sys.argv[3])
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
ports = sorted({int(line.split()[3].rpartition(":")[2]) for line in listening.splitlines()})
sources = json.loads(sys.argv[4])
for source in sources + ["198.19.255.254"] if sources else []:
    with socket.create_connection(("198.19.0.1", ports[0]), timeout=5,
                                  source_address=(source, 0)) as client:
        while client.recv(4096):
            pass
try:
    with open("/etc/portsentry/h") as history:
        reported = re.findall(r"Host: [^ ]*/([0-9.]+) ", history.read())
except FileNotFoundError:
    reported = []
blocked = [name.removeprefix("blocked-") for name in os.listdir("/etc/portsentry")
           if name.startswith("blocked-")]
print(json.dumps({"ports": ports, "reported": sorted(set(reported) - {"198.19.255.254"}),
                  "blocked": sorted(set(blocked) - {"198.19.255.254"})}))
if pid is not None:
    os.kill(pid, 9)
"""
BLOCKED_CMD = 'BLOCK_TCP="1"\nKILL_RUN_CMD="/bin/touch /etc/portsentry/blocked-$TARGET$"\n'
FILES = (
    'IGNORE_FILE="/etc/portsentry/portsentry.ignore"\nHISTORY_FILE="/etc/portsentry/h"\n'
    'BLOCKED_FILE="/etc/portsentry/b"\n'
)


def run_portsentry(conf: str, ignore: str = "", sources: Sequence[str] = ()) -> dict[str, list]:
    """The TCP ports Debian's portsentry -tcp binds with the file `conf` and the ignore file
    `ignore` ("ports"), and of the `sources` that connect to the first one those it reports
    ("reported") and those it blocks with BLOCKED_CMD ("blocked")."""
    require_lab()
    if not PORTSENTRY.exists() or shutil.which("unshare") is None:
        pytest.skip("Debian's portsentry is not installed")
    out = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-c",
            RUNNER,
            conf,
            str(PORTSENTRY),
            ignore,
            json.dumps(list(sources)),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize(
    "text",
    [
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
    ],
)
def test_the_model_binds_what_portsentry_binds(text: str) -> None:
    value = portsentry_reading((text + FILES).encode(), "TCP_PORTS").value or ""
    expected = sorted({int(item) for item in value.split(",") if item.strip()})  # strtok, atoi
    assert run_portsentry(text + FILES)["ports"] == expected


# Each line's source; the lines PortSentry 1.2 did not honour (and we warn about) say so.
IGNORED = (
    ("\ufeff198.19.1.1\n", "198.19.1.1"),  # not honoured: a byte-order mark before it
    ("198.19.2.1\n", "198.19.2.1"),
    ("198.19.3.0/24\n", "198.19.3.7"),
    ("198.19.4.0/255.255.255.0\n", "198.19.4.7"),  # not honoured: atoi(mask) is 255 > 32
    (" 198.19.5.1\n", "198.19.5.1"),  # not honoured: a blank before it
    ("\t198.19.6.1\n", "198.19.6.1"),  # not honoured: a tab before it
    ("198.19.7.1 router\n", "198.19.7.1"),
    ("198.19.8.1/32 # me\n", "198.19.8.1"),
    ("  # 198.19.9.1\n", "198.19.9.1"),  # a comment: ignored by neither
)


def test_the_ignore_entries_we_warn_about_are_those_portsentry_did_not_honour() -> None:
    """The real binary reports and blocks the hosts of exactly the lines we warn about;
    portwarden ignores them all the same, as the issue asks."""
    text = "".join(line for line, _ in IGNORED)
    seen = run_portsentry(
        'TCP_PORTS="7777"\n' + BLOCKED_CMD + FILES, text, [source for _, source in IGNORED]
    )
    reported = seen["reported"]
    assert reported == ["198.19.1.1", "198.19.4.7", "198.19.5.1", "198.19.6.1", "198.19.9.1"]
    assert seen["blocked"] == reported
    networks, warnings = parse_ignore_text(text.removeprefix("\ufeff"), "i", bom=True)
    warned = [
        source
        for number, (_, source) in enumerate(IGNORED, start=1)
        if any(w.startswith(f"i:{number}: ") and "PortSentry 1.2" in w for w in warnings)
    ]
    assert warned == [source for source in reported if source != "198.19.9.1"]
    ours = IgnoreList(networks)
    assert [s for _, s in IGNORED if ipaddress.ip_address(s) not in ours] == ["198.19.9.1"]
