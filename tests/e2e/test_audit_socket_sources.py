"""`portwarden audit` where the socket tables are hard to read: another user floods them with
sockets (AUDIT_SOCKETS_MAX, lowered here so a few hundred sockets suffice), and a kernel whose
sock_diag does not answer (the /proc/net tables, confirmed by connect() and bind tests, under a
capture: a skipped port is never touched, another gets one connection, closed at once).

The cap and the socket source are patched in the audit's own process (`_PATCHED`): neither is a
setting an administrator needs."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.e2e.test_audit import A4, A6, NOBODY, found, kinds, listen, stop
from tests.lab.tcpdump import captured, start_capture

# `python -c _PATCHED CAP SOURCE portwarden-arguments...`: the audit with AUDIT_SOCKETS_MAX set
# to CAP (unless empty) and, if SOURCE is "proc", a kernel without sock_diag. Patched before the
# audit's modules import them.
_PATCHED = """
import runpy, sys
import portwarden.limits
cap, source = sys.argv[1:3]
if cap:
    portwarden.limits.AUDIT_SOCKETS_MAX = int(cap)
if source == "proc":
    from portwarden.net import sockdiag
    def no_sock_diag(*args):
        raise OSError(95, "sock_diag: Operation not supported")
    sockdiag.sockets = no_sock_diag
sys.argv = ["portwarden", *sys.argv[3:]]
runpy.run_module("portwarden", run_name="__main__")
"""

# `python -c _FLOOD COUNT ADDRESS...`: user nobody binds COUNT UDP sockets, spread over the
# addresses, each on a port of the kernel's choosing, then waits.
_FLOOD = """
import os, resource, socket, sys, time
count, addresses = int(sys.argv[1]), sys.argv[2:]
resource.setrlimit(resource.RLIMIT_NOFILE, (count + 100, count + 100))
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
held = []
for n in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addresses[n % len(addresses)], 0))
    held.append(s)
print("flooding", flush=True)
time.sleep(120)
"""


def flood(host: Host, count: int, *addresses: str) -> subprocess.Popen:
    proc = host.popen(
        [sys.executable, "-c", _FLOOD, str(count), *addresses], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and "flooding" in proc.stdout.readline()
    return proc


def patched_audit(
    host: Host, folder: Path, conf: str, cap: int | None = None, source: str = "sock_diag"
) -> tuple[int, dict, str]:
    path = folder / "portwarden.conf"
    path.write_text(f'STATE_DIR="{folder}/state"\n{conf}\n')
    result = host.run(
        [
            sys.executable,
            "-c",
            _PATCHED,
            "" if cap is None else str(cap),
            source,
            "audit",
            "-c",
            str(path),
            "--json",
        ],
        check=False,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


@pytest.fixture
def udp_services(lab: Lab) -> Iterator[dict[int, subprocess.Popen]]:
    """root's required 39148/udp and nobody's 55531/udp, on the audited address."""
    target = lab.target
    started = {
        39148: listen(target, "udp", A4, 39148, "pws-root39148"),
        55531: listen(target, "udp", A4, 55531, "pws-nobody55531", uid=NOBODY),
    }
    yield started
    for proc in started.values():
        if proc in target.processes:
            stop(target, proc)


CONF = f'AUDIT_INTERFACES="{A4}"\nAUDIT_REQUIRED="39148/udp"\nAUDIT_OPTIONAL="22/tcp"'


def test_a_flood_of_sockets_on_loopback_hides_no_listener(
    lab: Lab, udp_services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Loopback is not audited: its 2,000 sockets are left out before the cap (40 here) is
    counted, so the audit still sees root's required port and nobody's new one."""
    target = lab.target
    flooder = flood(target, 2000, "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
    try:
        status, report, stderr = patched_audit(target, tmp_path, CONF, cap=40)
    finally:
        stop(target, flooder)
    assert {(A4, 39148, "udp"), (A4, 55531, "udp")} <= found(report).keys()
    assert kinds(report) == [("ServiceNew", A4, 55531, "udp")]  # no false ServiceMissing
    assert report["findings"][0]["user"] == "nobody" and status == 1
    assert report["warnings"] == [] and "warning" not in stderr


def test_more_sockets_than_the_cap_on_an_audited_address_is_an_incomplete_check(
    lab: Lab, udp_services: dict[int, subprocess.Popen], tmp_path: Path
) -> None:
    """nobody opens 300 UDP sockets on the audited address itself, more than the cap (100
    here): the UDP check is incomplete, a finding says so and why, and no UDP requirement is
    reported missing from it; TCP is still checked in full (22/tcp is not open: nothing)."""
    target = lab.target
    status, report, _ = patched_audit(target, tmp_path, CONF, cap=100)
    assert kinds(report) == [("ServiceNew", A4, 55531, "udp")]
    stop(target, udp_services[39148])  # the requirement is now really missing
    flooder = flood(target, 300, A4)
    try:
        status, report, _ = patched_audit(target, tmp_path, CONF, cap=100)
    finally:
        stop(target, flooder)
    [finding] = [f for f in report["findings"] if f["kind"] != "ServiceNew"]  # the flood's
    assert (finding["kind"], finding["interface"], finding["proto"]) == (
        "AuditIncomplete",
        "any",
        "udp",
    )
    assert finding["severity"] == "crit" and status == 1
    reason = "301 udp sockets are open on the audited addresses and ports, more than the 100"
    assert finding["reason"].startswith(reason)
    status, report, _ = patched_audit(target, tmp_path, CONF, cap=100)  # the flood is over
    assert kinds(report) == [("ServiceMissing", "any", 39148, "udp")]


FALLBACK = [  # (proto, address, port, IPV6_V6ONLY)
    ("tcp", "0.0.0.0", 41001, False),  # confirmed on A4 by connect(): accepted
    ("tcp", "0.0.0.0", 41002, False),  # skipped: never connected to
    ("tcp", "::", 41003, True),  # IPv6 only: refused on A4, accepted on A6
    ("udp", "::", 41004, False),  # takes IPv4 too: a bind test on A4, no datagram
    ("udp", "::", 41005, True),  # IPv6 only: the bind test on A4 succeeds
]


def test_without_sock_diag_wildcards_are_confirmed_and_skipped_ports_untouched(
    lab: Lab, tmp_path: Path
) -> None:
    target = lab.target
    started = [
        listen(target, proto, address, port, f"pws-{port}", v6only)
        for proto, address, port, v6only in FALLBACK
    ]
    pcap = tmp_path / "audit.pcap"
    tcpdump = start_capture(target, pcap, "portrange 41001-41005")
    conf = f'AUDIT_INTERFACES="{A4}, {A6}"\nAUDIT_SKIP="41002/tcp"'
    try:
        _, report, _ = patched_audit(target, tmp_path, conf, source="proc")
        deadline = time.monotonic() + 5  # the capture has seen the last FIN
        while sum("Flags [F" in line for line in captured(target, pcap)) < 4:
            assert time.monotonic() < deadline, captured(target, pcap)
            time.sleep(0.05)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
        for proc in started:
            stop(target, proc)
    seen = {key for key in found(report) if 41001 <= key[1] <= 41005}
    assert seen == {
        (A4, 41001, "tcp"),
        (A6, 41003, "tcp"),
        (A4, 41004, "udp"),
        (A6, 41004, "udp"),
        (A6, 41005, "udp"),
    }
    lines = captured(target, pcap)
    assert not [line for line in lines if "41002" in line or " UDP" in line], lines
    syns = Counter(line.split(" > ")[1].split(": ")[0] for line in lines if "Flags [S]," in line)
    assert syns == {f"{A4}.41001": 1, f"{A4}.41003": 1, f"{A6}.41003": 1}, lines
    # Each accepted connection is closed by the audit at once (its FIN first).
    fins = [line.split(" > ")[1].split(": ")[0] for line in lines if "Flags [F." in line]
    assert {f"{A4}.41001", f"{A6}.41003"} <= set(fins), lines
