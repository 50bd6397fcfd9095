"""Two instances, each with its own STATE_DIR and NFT_TABLE, whose configurations name the same
BLOCKED_FILE or EVENT_LOG (two copies of Debian's portsentry.conf): the second is refused in one
line naming the file's line and the instance that holds it, and the first one's files stay as
they were (its start would have rewritten the blocked files from its own empty store)."""

import sys
from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap
from tests.lab.daemon import RunningDaemon


def test_a_second_instance_naming_the_first_ones_files_is_refused(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    shared = tmp_path / "var-lib-portsentry"
    files = f'BLOCKED_FILE="{shared}/portsentry.blocked"\nEVENT_LOG="{shared}/events.jsonl"\n'
    first = start_daemon("-stcp", conf=f'BLOCK_TCP="1"\n{files}')
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    first.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    blocked = (shared / "portsentry.blocked.stcp").read_text()
    assert f"/{attacker.ipv4} Port: 11 TCP Blocked" in blocked
    events = (shared / "events.jsonl").read_text()
    conf = tmp_path / "second.conf"
    own = f'STATE_DIR="{tmp_path}/second"\nNFT_TABLE="pw_second"\nBLOCK_TCP="1"\n'
    for line, key in ((3, "BLOCKED_FILE"), (4, "EVENT_LOG")):
        conf.write_text(own + files)
        refused = lab.target.run(
            [sys.executable, "-m", "portwarden", "run", "-c", str(conf), "-stcp"],
            check=False,
            timeout=30,
        )
        assert refused.returncode == 2, refused.stderr
        (error,) = refused.stderr.splitlines()
        assert error.startswith(f"portwarden: error: {conf}:{line + 1}: {key}=")
        assert f": in use by another portwarden (pid {first.proc.pid}) as its {key}; " in error
        files = files.replace(f"{shared}/portsentry.blocked", f"{tmp_path}/own.blocked", 1)
    assert (shared / "portsentry.blocked.stcp").read_text() == blocked
    assert (shared / "events.jsonl").read_text() == events
    conf.write_text(own + files.replace(f"{shared}/events.jsonl", f"{tmp_path}/own.jsonl"))
    second = RunningDaemon(lab.target, conf, "-stcp")
    try:
        second.wait_for("ready:")
    finally:
        second.stop()
    assert first.proc.poll() is None
    assert (shared / "portsentry.blocked.stcp").read_text() == blocked
