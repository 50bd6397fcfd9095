"""BLOCK_TCP and BLOCK_UDP that differ: a source whose probe of one protocol only ran
KILL_RUN_CMD (BLOCK=2) is blocked for real by a probe of the other, whose BLOCK is 1 (as
PortSentry 1.2's separate TCP and UDP processes did): the scanner can no longer reach the
service, the benign client still can, and the block outlives a restart and is undone by
`unblock`."""

import sys
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import nft_elements, portwarden
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")

UDP_FIRST = ('BLOCK_TCP="1"\nBLOCK_UDP="2"\n', ["-sU", "-p", "7"], ["-sS", "-p", "11,15,79"])
TCP_FIRST = ('BLOCK_TCP="2"\nBLOCK_UDP="1"\n', ["-sS", "-p", "11"], ["-sU", "-p", "7"])


@pytest.mark.parametrize(
    ("modes", "first", "then"),
    [UDP_FIRST, TCP_FIRST],
    ids=["udp-command-then-tcp", "tcp-command-then-udp"],
)
def test_a_command_only_block_does_not_spare_the_scanner_the_other_protocols_block(
    lab: Lab,
    start_daemon: StartDaemon,
    tmp_path: Path,
    modes: str,
    first: list[str],
    then: list[str],
) -> None:
    calls = tmp_path / "calls"
    record = Path(__file__).parent.parent / "lab" / "record.py"
    conf = f'{modes}KILL_RUN_CMD="{sys.executable} {record} {calls} $TARGET$ $MODE$"\n'
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    attacker, target = lab.attackers[1], lab.target.ipv4
    source = attacker.ipv4
    first_mode, then_mode = ("sudp", "stcp") if first[0] == "-sU" else ("stcp", "sudp")
    nmap(attacker.run, *first, target)
    daemon.wait_for(rf"block address={source} actions=command:done .* mode={first_mode} ")
    assert can_connect(attacker, target, SERVICE)  # the command blocks nothing here
    nmap(attacker.run, *then, target)
    daemon.wait_for(rf"block address={source} supersedes its block of mode={first_mode}")
    line = daemon.wait_for(rf"block address={source} actions=nft:done,command:done .*")
    assert "offence=1 port=" in line.group(0) and f"mode={then_mode} " in line.group(0)
    assert "already-blocked" not in daemon.log()
    assert not can_connect(attacker, target, SERVICE)
    assert can_connect(lab.client, target, SERVICE)
    assert nft_elements(lab.target) == {source}
    # The command ran for each block, as PortSentry's two processes would have run it.
    assert [line.split()[1:] for line in calls.read_text().splitlines()] == [
        [f"'{source}'", f"'{first_mode}'"],
        [f"'{source}'", f"'{then_mode}'"],
    ]
    state = daemon.log_path.parent / "state"
    history = (state / "portsentry.history").read_text().splitlines()
    assert [h.split()[-2] for h in history] == [m[1:].upper() for m in (first_mode, then_mode)]
    assert (state / f"portsentry.blocked.{first_mode}").read_text() == ""
    assert f"/{source} " in (state / f"portsentry.blocked.{then_mode}").read_text()
    daemon.stop()
    # A restart keeps the block that enforces (a command-only block would be forgotten).
    again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp", "-sudp")
    try:
        again.wait_for(r"restored 1 active block from")
        again.wait_for("ready:")
        assert nft_elements(lab.target) == {source}
        assert not can_connect(attacker, target, SERVICE)
        result = portwarden(lab.target, again, "unblock", source)
        assert result.returncode == 0 and f"unblocked {source}" in result.stdout
        assert nft_elements(lab.target) == set()
        assert can_connect(attacker, target, SERVICE)
    finally:
        again.stop()
