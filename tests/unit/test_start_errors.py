"""Start-up problems with STATE_DIR, the log file and the store: one line naming what is wrong,
exit 2, before anything starts (they used to end in tracebacks). And a configuration made for
`run -atcp -audp` with no port lists: the commands that only read the state take it."""

import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.cli import main
from portwarden.store.db import Store, store_path
from tests.conftest import require_lab


def portwarden(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """In a network namespace of its own: were a `run` to start after all, it would bind and
    watch nothing of this host's."""
    return subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "portwarden", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_daemon_mode_blames_the_setting_or_option_at_fault(tmp_path: Path) -> None:
    require_lab()
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "proc.conf").write_text('TCP_PORTS="11"\nSTATE_DIR="/proc/self"\n')
    (tmp_path / "ok.conf").write_text(f'STATE_DIR="{tmp_path}/state"\n')
    default_log = portwarden("run", "-c", "proc.conf", "--daemon", cwd=tmp_path)
    assert (default_log.returncode, default_log.stderr.count("\n")) == (2, 1), default_log.stderr
    assert default_log.stderr.startswith(
        f'portwarden: error: {tmp_path}/proc.conf:2: STATE_DIR="/proc/self": '
    )
    given_log = portwarden(
        "run", "-c", "ok.conf", "--daemon", "--log-file", str(tmp_path / "a-dir"), cwd=tmp_path
    )
    assert given_log.returncode == 2 and given_log.stderr == (
        f'portwarden: error: --log-file: "{tmp_path}/a-dir": Is a directory\n'
    )
    assert not (tmp_path / "state" / "portwarden.db").exists()  # nothing started


@pytest.mark.parametrize("damage", ["a directory", "not a database"])
def test_a_damaged_store_is_one_line(tmp_path: Path, damage: str) -> None:
    store = tmp_path / "state" / "portwarden.db"
    store.parent.mkdir()
    if damage == "a directory":
        store.mkdir()
    else:
        store.write_text("garbage\n")
    (tmp_path / "p.conf").write_text(f'STATE_DIR="{tmp_path}/state"\n')
    for command in ("blocked", "status"):
        done = portwarden(command, "-c", "p.conf", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"portwarden: error: {store}: "), done.stderr


def test_read_only_commands_take_a_configuration_made_for_mode_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run -atcp -audp` needs no port lists; TCP_MODE's default (tcp) does. `blocked` must not
    refuse the running daemon's file; check-config takes the same flags as run."""
    conf = tmp_path / "adv.conf"
    conf.write_text(f'TCP_PORTS=""\nUDP_PORTS=""\nSTATE_DIR="{tmp_path}/state"\n')
    Store(store_path(tmp_path / "state")).close()  # a daemon ran
    assert main(["blocked", "-c", str(conf)]) == 0
    assert main(["check-config", "-atcp", "-audp", str(conf)]) == 0
    capsys.readouterr()
    assert main(["check-config", str(conf)]) == 2
    assert (
        'TCP_PORTS="": names no port, but TCP_MODE="tcp" (the default)' in capsys.readouterr().err
    )
