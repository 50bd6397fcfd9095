"""`portwarden lab`, a newcomer's first five minutes: it runs end to end and leaves nothing."""

import glob
import subprocess
import sys
import tempfile

from portwarden.lab.demo import PREFIX
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
    result = subprocess.run([sys.executable, "-m", "portwarden", "lab"], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "The client fetches a web page from the target over IPv4 and IPv6: ok" in out
    for source in ("198.18.0.11", "2001:db8::b"):
        assert f"attack kind=scan src={source}" in out
        assert f"block address={source} actions=nft:done" in out
        assert f"attack kind=scan-summary src={source}" in out
    assert "portwarden is running" in out and "Active blocks: 2" in out
    assert "The attacker tries the web page now, over IPv4 and IPv6: blocked" in out
    assert "The client fetches it again, over IPv4 and IPv6: ok" in out
    assert lab_namespaces(PREFIX) == []
    assert _host_view() == before
