"""`portwarden lab`: a newcomer's first five minutes, on this machine, leaving nothing behind.

It builds namespaces (a target, an attacker, a benign client on one bridge, addresses from the
benchmarking ranges only), starts the daemon in the target with blocking on, lets the client use a
web service, runs nmap from the attacker, shows what portwarden saw and did, proves the block
holds while the client keeps working, then removes everything.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from portwarden import limits
from portwarden.lab.network import (
    Host,
    Lab,
    is_lab_namespace,
    lab_namespaces,
    lab_unavailable_reason,
    namespaces,
    remove_stale,
)
from portwarden.net.nftables import Nft, NftError
from portwarden.text import counted

# Not the tests' prefix: a demo never removes a test run's namespaces. Each run has its own
# (`pwlab-<pid>-`), so two runs at once never remove each other's; so has its folder
# (`portwarden-lab-<pid>-XXXX` in the temporary directory).
PREFIX = "pwlab-"
FOLDER_PREFIX = "portwarden-lab-"
_RUN_PID = re.compile(r"(\d+)-")
WEB_PORT = 8080
SCAN_END_QUIET_S = 2


def _conf(folder: Path) -> str:
    return (
        f'STATE_DIR="{folder}/state"\nTCP_MODE="stcp"\nUDP_MODE="sudp"\n'
        'TCP_PORTS="1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,31337"\n'
        'UDP_PORTS="1,7,9,69,161,162,513,635,640,641,700,37444,34555,31335"\n'
        'BLOCK_TCP="1"\nBLOCK_UDP="1"\nSYSLOG_SOCKET=""\n'
        f'SCAN_END_QUIET="{SCAN_END_QUIET_S}"\nHOSTS_DENY_FILE="{folder}/hosts.deny"\n'
        # The audit's policy: the web server is what this host is for.
        f'AUDIT_REQUIRED="{WEB_PORT}/tcp"\n'
    )


def _say(text: str) -> None:
    print(text, flush=True)


def _fetch(host: Host, address: str) -> bool:
    """An HTTP GET from `host`, as a benign client does; True when the page came back."""
    code = "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2).read()"
    url = (
        f"http://{address}:{WEB_PORT}/" if ":" not in address else f"http://[{address}]:{WEB_PORT}/"
    )
    return host.run([sys.executable, "-c", code, url], check=False, timeout=30).returncode == 0


def _wait_for(log: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _portwarden(host: Host, conf: Path, *args: str) -> str:
    command = [sys.executable, "-m", "portwarden", *args, "-c", str(conf)]
    return host.run(command, check=False, timeout=30).stdout


def run_prefix(pid: int) -> str:
    """The namespace prefix of the demo run by process `pid`."""
    return f"{PREFIX}{pid}-"


def remove_orphans() -> None:
    """Labs left by demo runs that were killed (SIGKILL leaves no chance to clean up): their
    namespaces, what runs in them, and their folders."""
    for pid, folders in sorted(orphans(namespaces(), _folders()).items()):
        prefix = run_prefix(pid)
        removed = lab_namespaces(prefix)
        remove_stale(prefix)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        _say(
            f"Removed what a killed lab run (pid {pid}) left: "
            f"{counted(len(removed), 'namespace')} {prefix}*, {counted(len(folders), 'folder')} "
            f"{' '.join(str(f) for f in folders)}".rstrip()
        )


def orphans(names: list[str], folders: list[Path]) -> dict[int, list[Path]]:
    """The runs (by pid) that left lab namespaces among `names` or lab folders among `folders`
    and no longer run, with their folders."""
    found: dict[int, list[Path]] = {}
    for name in names:
        pid = _run_pid(name, PREFIX)
        if pid is not None and is_lab_namespace(name, run_prefix(pid)):
            found.setdefault(pid, [])
    for folder in folders:
        pid = _run_pid(folder.name, FOLDER_PREFIX)
        if pid is not None:
            found.setdefault(pid, []).append(folder)
    return {pid: found[pid] for pid in found if not _is_demo(pid)}


def _run_pid(name: str, prefix: str) -> int | None:
    matched = _RUN_PID.match(name, len(prefix)) if name.startswith(prefix) else None
    return int(matched.group(1)) if matched else None


def _folders() -> list[Path]:
    """This user's lab folders in the temporary directory (never a symbolic link)."""
    found = Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*")
    return [
        path
        for path in found
        if not path.is_symlink() and path.is_dir() and path.stat().st_uid == os.getuid()
    ]


def _is_demo(pid: int) -> bool:
    try:
        return b"portwarden" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class _Interrupted(Exception):
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP: the demo ends through its clean-up, which says so in
    one line (no traceback), with exit status 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise _Interrupted(signum)


def _missing_software() -> str | None:
    """What the demo needs besides the lab itself (nmap, and libnftables for the daemon's
    blocks), with the command that installs it; None when nothing is missing."""
    missing = {} if shutil.which("nmap") else {"nmap": "nmap"}
    try:
        Nft()
    except NftError:
        missing["libnftables"] = "nftables"
    if not missing:
        return None
    return (
        f"the lab needs {' and '.join(missing)} "
        f"(apt-get install {' '.join(sorted(missing.values()))})"
    )


def run_demo() -> int:
    """Exit status 0 when the scan was detected and blocked and the client kept working."""
    reason = lab_unavailable_reason(run_prefix(os.getpid())) or _missing_software()
    if reason:
        print(f"portwarden: error: lab: {reason}", file=sys.stderr)
        return 2
    stops = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    for signum in stops:
        signal.signal(signum, _interrupted)
    prefix = run_prefix(os.getpid())
    lab = Lab(prefix=prefix, attackers=1)
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    stopped_by = ""
    try:
        remove_orphans()
        _say(f"Building the lab: network namespaces {prefix}* on a private bridge")
        lab.create()
        target, attacker, client = lab.target, lab.attackers[0], lab.client
        _say(f"  target   {target.ipv4:<14} {target.ipv6:<16} runs portwarden and a web server")
        _say(f"  attacker {attacker.ipv4:<14} {attacker.ipv6:<16} runs nmap")
        _say(f"  client   {client.ipv4:<14} {client.ipv6:<16} uses the web server")
        return _demo(lab, folder)
    except _Interrupted as stop:
        stopped_by = f"Interrupted ({signal.Signals(stop.signum).name}). "
        return 128 + stop.signum
    finally:
        for signum in stops:
            signal.signal(signum, signal.SIG_IGN)  # the clean-up itself is not interrupted
        # the daemon's clean stop lets go its locks
        lab.target.stop_processes(limits.LAB_DEMO_STOP_WAIT_S)
        lab.destroy()
        shutil.rmtree(folder, ignore_errors=True)
        _say(
            f"{stopped_by}Removed the lab: namespaces {prefix}*, their links, the daemon and "
            f"{folder}"
        )


def _demo(lab: Lab, folder: Path) -> int:
    target, attacker, client = lab.target, lab.attackers[0], lab.client
    conf = folder / "portwarden.conf"
    conf.write_text(_conf(folder))
    log = folder / "portwarden.log"
    target.popen(
        [sys.executable, "-m", "http.server", "--bind", "::", str(WEB_PORT)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with log.open("wb") as out:
        daemon = target.popen(
            [sys.executable, "-m", "portwarden", "run", "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if not _wait_for(log, "ready:", limits.LAB_DEMO_READY_WAIT_S):
        _say("portwarden did not start:\n" + log.read_text(errors="replace"))
        return 1
    _say("\nportwarden runs in the target (stealth TCP and UDP modes, blocking with nftables).")
    addresses = (target.ipv4, target.ipv6)
    client_before = all(_fetch(client, address) for address in addresses)
    _say(
        f"The client fetches a web page from the target over IPv4 and IPv6: "
        f"{'ok' if client_before else 'FAILED'}"
    )
    for address in addresses:
        _say(f"\nThe attacker scans: nmap -sS --top-ports 200 {address}")
        attacker.run(
            [
                "nmap",
                "-n",
                "-Pn",
                "-sS",
                "--max-retries",
                "1",
                "--top-ports",
                "200",
                *(["-6"] if ":" in address else []),
                address,
            ],
            check=False,
            timeout=120,
        )
    summarised = all(
        _wait_for(log, f"kind=scan-summary src={source}", SCAN_END_QUIET_S + 10)
        for source in (attacker.ipv4, attacker.ipv6)
    )
    lines = log.read_text(errors="replace").splitlines()
    _say("\nWhat portwarden logged (first lines of each kind):")
    for source in (attacker.ipv4, attacker.ipv6):
        for marker in (
            f"kind=scan src={source} ",
            f" block address={source} ",
            f"kind=scan-summary src={source} ",
        ):
            for line in [x for x in lines if marker in x][:1]:
                _say("  " + line.split(": ", 1)[-1])
    _say("\n$ portwarden status")
    _say(_portwarden(target, conf, "status").rstrip())
    blocked = not any(_fetch(attacker, address) for address in addresses)
    client_after = all(_fetch(client, address) for address in addresses)
    _say(
        f"\nThe attacker tries the web page now, over IPv4 and IPv6: "
        f"{'blocked' if blocked else 'NOT BLOCKED'}"
    )
    _say(f"The client fetches it again, over IPv4 and IPv6: {'ok' if client_after else 'FAILED'}")
    daemon.terminate()
    daemon.wait(timeout=30)
    if summarised and blocked and client_before and client_after:
        _say("\nThe scan was detected and blocked; the client was never disturbed.")
        return 0
    errors = [
        "  " + line
        for line in log.read_text(errors="replace").splitlines()
        if ": ERROR " in line or " block-failed " in line
    ]
    _say(
        "\nSomething did not go as expected. "
        + (
            "What portwarden logged as errors:\n" + "\n".join(errors)
            if errors
            else "portwarden logged no error."
        )
    )
    return 1
