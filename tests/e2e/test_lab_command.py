"""`portwarden lab`, a newcomer's first five minutes: it runs end to end and leaves nothing."""

import glob
import re
import signal
import subprocess
import sys
import tempfile

import pytest

from portwarden.lab.demo import remove_orphans, run_prefix
from portwarden.lab.network import lab_namespaces, run
from tests.conftest import require_lab


def _host_view() -> tuple[str, str, list[str]]:
    """Links and nftables tables of this machine's own namespace, and the lab's temp folders."""
    links = run(["ip", "-o", "link", "show"]).stdout
    tables = run(["nft", "list", "tables"], check=False).stdout
    leftovers = sorted(glob.glob(f"{tempfile.gettempdir()}/portwarden-lab-*"))
    return "\n".join(line.split(":")[1] for line in links.splitlines()), tables, leftovers


def test_lab_runs_end_to_end_and_leaves_nothing_behind() -> None:
    require_lab()
    before = _host_view()
    demo = subprocess.Popen([sys.executable, "-m", "portwarden", "lab"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
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
    assert _host_view() == before


def _lab_running() -> tuple[subprocess.Popen[str], list[str]]:
    """`portwarden lab` started, once its daemon runs in the target; and its lines so far."""
    demo = subprocess.Popen([sys.executable, "-m", "portwarden", "lab"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
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
    assert _host_view() == before, out


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
