"""`portwarden lab`, a newcomer's first five minutes: it runs end to end and leaves nothing."""

import contextlib
import glob
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from portwarden.claims import ROOT_CLAIMS
from portwarden.lab import demo
from portwarden.lab.demo import FOLDER_PREFIX, remove_orphans, run_prefix
from portwarden.lab.network import Lab, lab_namespaces, run
from tests.conftest import require_lab
from tests.lab.isolated import NEW_MOUNTS


def _host_view() -> tuple[str, str, list[str]]:
    """Links and nftables tables of this machine's own namespace, and the lab's temp folders."""
    links = run(["ip", "-o", "link", "show"]).stdout
    tables = run(["nft", "list", "tables"], check=False).stdout
    leftovers = sorted(glob.glob(f"{tempfile.gettempdir()}/portwarden-lab-*"))
    return "\n".join(line.split(":")[1] for line in links.splitlines()), tables, leftovers


def test_lab_runs_end_to_end_and_leaves_nothing_behind() -> None:
    require_lab()
    before = _host_view()
    demo = subprocess.Popen(
        [sys.executable, "-m", "portwarden", "lab"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = demo.communicate(timeout=300)
    assert demo.returncode == 0, out + err
    assert f"namespaces {run_prefix(demo.pid)}* on a private bridge" in out
    assert "The client fetches a web page from the target over IPv4 and IPv6: ok" in out
    for source in ("198.18.0.11", "2001:db8::b"):
        assert f"attack kind=scan src={source}" in out
        assert f"block address={source} actions=nft:done" in out
        assert f"attack kind=scan-summary src={source}" in out
    assert "portwarden is running" in out and "Active blocks: 2" in out
    assert re.search(r"Last audit: \S+: 2 open ports on 198.18.0.1, 2001:db8::1, 0 findings", out)
    assert "The attacker tries the web page now, over IPv4 and IPv6: blocked" in out
    assert "The client fetches it again, over IPv4 and IPv6: ok" in out
    assert lab_namespaces(run_prefix(demo.pid)) == []
    assert _host_view() == before and _claims_left(demo.pid) == []


def _claims_left(pid: int) -> list[str]:
    """The lock files (claims) left for the files of run `pid`'s lab folder."""
    left = []
    for lock in ROOT_CLAIMS.glob("*.lock"):
        with contextlib.suppress(FileNotFoundError):  # another claim's holder let go meanwhile
            if f"/{FOLDER_PREFIX}{pid}-" in lock.read_text(errors="replace"):
                left.append(lock.name)
    return left


def _lab_running() -> tuple[subprocess.Popen[str], list[str]]:
    """`portwarden lab` started, once its daemon runs in the target; and its lines so far."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "portwarden", "lab"],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert demo.stdout is not None
    seen = [demo.stdout.readline() for _ in range(6)]
    assert "portwarden runs in the target" in "".join(seen), seen
    return demo, seen


def test_lab_stopped_by_sigterm_still_removes_everything() -> None:
    """A cancelled CI job or a `kill` mid-run: the same clean-up as a normal end."""
    require_lab()
    before = _host_view()
    demo, seen = _lab_running()
    demo.send_signal(signal.SIGTERM)
    assert demo.stdout is not None
    out = "".join(seen) + demo.stdout.read()
    assert demo.wait(timeout=60) == 128 + signal.SIGTERM, out
    assert f"Removed the lab: namespaces {run_prefix(demo.pid)}*" in out
    assert lab_namespaces(run_prefix(demo.pid)) == []
    assert run(["pgrep", "-f", "portwarden-lab-"], check=False).stdout == "", out
    assert _host_view() == before and _claims_left(demo.pid) == [], out


def test_a_killed_labs_leftovers_are_removed_by_the_next_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGKILL leaves no chance to clean up: the next run removes the namespaces, what runs in
    them and the folder, and says so in one line."""
    require_lab()
    before = _host_view()
    demo, seen = _lab_running()
    demo.kill()
    demo.wait()
    prefix = run_prefix(demo.pid)
    folders = glob.glob(f"{tempfile.gettempdir()}/portwarden-lab-{demo.pid}-*")
    assert lab_namespaces(prefix) != [] and len(folders) == 1
    remove_orphans()  # what the next run does first
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and f"killed lab run (pid {demo.pid})" in said, said
    assert f"namespaces {prefix}*" in said and folders[0] in said, said
    assert lab_namespaces(prefix) == []
    assert run(["pgrep", "-f", "portwarden-lab-"], check=False).stdout == ""
    assert _host_view() == before


def _libnftables() -> Path:
    """The file the dynamic linker loads for libnftables.so.1."""
    for line in run(["ldconfig", "-p"]).stdout.splitlines():
        if line.strip().startswith("libnftables.so.1 "):
            return Path(line.split("=> ")[1]).resolve()
    raise AssertionError("libnftables.so.1 is not installed")


def test_lab_without_libnftables_says_what_to_install(tmp_path: Path) -> None:
    """It used to run, fail to block, and end "NOT BLOCKED ... the log is above" without the
    reason, the log folder removed. Here the library is hidden in a private mount namespace."""
    require_lab()
    before = _host_view()
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    script = f'mount --bind {empty} {_libnftables()} && exec "$@"'
    done = subprocess.run(
        [
            *NEW_MOUNTS,
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-m",
            "portwarden",
            "lab",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stdout + done.stderr
    assert done.stderr == (
        "portwarden: error: lab: the lab needs libnftables (apt-get install nftables)\n"
    )
    assert _host_view() == before


def test_a_step_that_fails_shows_what_the_daemon_logged_as_errors(
    clean_lab: Lab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Blocks that fail (a KILL_ROUTE that always fails) make the attacker's check fail: the
    demo prints the daemon's errors, which used to stay in a log that was then removed."""
    conf = demo._conf
    monkeypatch.setattr(
        demo, "_conf", lambda folder: conf(folder) + 'KILL_ROUTE="/bin/false $TARGET$"\n'
    )
    assert demo._demo(clean_lab, tmp_path) == 1
    out = capsys.readouterr().out
    assert "The attacker tries the web page now, over IPv4 and IPv6: NOT BLOCKED" in out
    shown = out.split("What portwarden logged as errors:\n")[1].splitlines()
    assert shown and all(": ERROR " in line for line in shown), out
    source = clean_lab.attackers[0].ipv4
    assert any(f"ERROR block-failed address={source} " in line for line in shown), out
