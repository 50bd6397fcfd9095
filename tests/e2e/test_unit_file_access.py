"""Under the shipped unit's capabilities, the files the daemon replaces or rotates keep their
owner, group, mode and ACL: a JSON event log a log shipper reads (0640 root:adm) stays readable
to it after rotation, and so does BLOCKED_FILE after a block rewrote it."""

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import nmap
from tests.e2e.test_audit import unit_capabilities
from tests.lab.acl import mode_600_and_reader
from tests.lab.daemon import RunningDaemon

ADM = 4  # Debian's group adm, which log shippers run in
NOBODY = 65534
ACL = "system.posix_acl_access"
LOG_BYTES = 65536  # the smallest EVENT_LOG_MAX_BYTES


def shared_with_adm(path: Path, text: str) -> None:
    path.write_text(text)
    os.chown(path, 0, ADM)
    os.chmod(path, 0o640)


def access(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def wait_until(check: Callable[[], bool], what: str, log: RunningDaemon) -> None:
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{log.log()}"
        time.sleep(0.1)


@pytest.mark.parametrize("chown", [True, False], ids=["the-units-set", "without-cap-chown"])
def test_rotation_and_replacement_keep_access_under_the_units_capabilities(
    lab: Lab, tmp_path: Path, chown: bool
) -> None:
    logs, public = tmp_path / "logs", tmp_path / "public"
    logs.mkdir()
    public.mkdir(mode=0o755)
    events = logs / "events.jsonl"
    filler = json.dumps({"event": "filler"}) + "\n"
    shared_with_adm(events, filler * ((LOG_BYTES - 100) // len(filler)))  # the next event rotates
    blocked = public / "blocked.stcp"
    shared_with_adm(blocked, "")
    os.setxattr(blocked, ACL, mode_600_and_reader(NOBODY))  # `setfacl -m user:nobody:r`
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        f'TCP_PORTS="11,15,79"\nBLOCK_TCP="1"\nAUDIT_INTERVAL="0"\n'
        f'EVENT_LOG="{events}"\nEVENT_LOG_MAX_BYTES="{LOG_BYTES}"\n'
        f'BLOCKED_FILE="{public}/blocked"\n'
    )
    capabilities = [c for c in unit_capabilities() if chown or c != "chown"]
    assert ("chown" in capabilities) == chown
    bounding = ",".join(["-all", *(f"+{name}" for name in capabilities)])
    daemon = RunningDaemon(lab.target, conf, wrapper=["setpriv", f"--bounding-set={bounding}"])
    attacker = lab.attackers[0].ipv4
    try:
        daemon.wait_for("ready:")
        nmap(lab.attackers[0].run, "-sS", "-p", "11,15,79", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker} actions=nft:done ")
        rotated = logs / "events.jsonl.1"
        wait_until(
            lambda: rotated.exists() and f'"src":"{attacker}"' in events.read_text(),
            "the event log was not rotated",
            daemon,
        )
        assert rotated.read_text().startswith(filler)
        if chown:
            assert access(events) == (0o640, 0, ADM), daemon.log()
            wait_until(lambda: attacker in blocked.read_text(), "BLOCKED_FILE not written", daemon)
            assert access(blocked) == (0o640, 0, ADM), daemon.log()
            assert os.getxattr(blocked, ACL) == mode_600_and_reader(NOBODY)
        else:  # the mode all the same; the group is root's, and the log says why
            assert access(events) == (0o640, 0, 0), daemon.log()
            daemon.wait_for(
                rf"JSON event log {events}: the new file could not get the old one's "
                "owner and group: Operation not permitted"
            )
    finally:
        daemon.stop()
