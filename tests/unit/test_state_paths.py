"""A STATE_DIR or EVENT_LOG that cannot be used is a one-line configuration error naming file,
line, key and value, never a traceback; commands that read the state create none."""

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.audit.state import AuditState
from portwarden.blame import blamed_on
from portwarden.cli import main
from portwarden.config.load import load_settings
from portwarden.fileedit import replace_atomically
from portwarden.respond.portsentry_files import append_history
from portwarden.statedir import unusable_directory
from portwarden.store.db import BlockRecord, Store


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('STATE_DIR="afile"', "afile exists and is not a directory"),
        ('STATE_DIR="afile/x"', "afile is not a directory"),
        ('EVENT_LOG="afile/x"', "afile exists and is not a directory"),
        ('EVENT_LOG="afile/x/y"', "afile is not a directory"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "blocked", "audit", "run", "unblock"])
def test_an_unusable_path_is_a_placed_one_line_error(
    folder: Path, capsys: pytest.CaptureFixture[str], line: str, reason: str, command: str
) -> None:
    (folder / "d.conf").write_text(f'TCP_MODE="stcp"\n{line}\n')
    argv = [command, "-c", "d.conf", *(["--all"] if command == "unblock" else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    source = folder / "d.conf" if command == "run" else "d.conf"  # run names it absolute
    assert err == f"portwarden: error: {source}:2: {line}: {folder}/{reason}\n"


def test_an_oserror_on_use_is_placed_at_the_keys_line(folder: Path) -> None:
    (folder / "d.conf").write_text('\n\nSTATE_DIR="gone/x"\n')
    settings = load_settings(Path("d.conf"))
    with pytest.raises(Exception) as raised, blamed_on(settings, "STATE_DIR", Path("gone/x")):
        raise FileNotFoundError(2, "No such file or directory")
    assert str(raised.value) == ('d.conf:3: STATE_DIR="gone/x": gone/x: No such file or directory')


def test_what_can_become_a_directory_passes(folder: Path) -> None:
    assert unusable_directory(folder, True) is None
    assert unusable_directory(folder / "new" / "deeper", True) is None
    assert unusable_directory(folder / "afile", True) is not None
    (folder / "link").symlink_to(folder / "nowhere")
    link = unusable_directory(folder / "link", True)
    assert link == f"{folder}/link exists and is not a directory"


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ("blocked", 1),
        ("status", 3),
        ("unblock", 1),
        ("reapply", 1),
    ],
)
@pytest.mark.parametrize(
    ("made", "why"),
    [
        (False, "no such directory"),
        (True, "no portwarden.db in it"),
    ],
)
def test_reading_commands_make_no_state(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    status: int,
    made: bool,
    why: str,
) -> None:
    """Neither a STATE_DIR (a typo?) nor, in one made by hand or by a daemon that stopped before
    its store, an empty portwarden.db (it used to appear, readable by everyone)."""
    state = folder / "typo" / "state"
    if made:
        state.mkdir(parents=True)
    (folder / "d.conf").write_text('STATE_DIR="typo/state"\n')
    argv = [command, "-c", "d.conf", *(["--all"] if command == "unblock" else [])]
    assert main(argv) == status
    assert list(state.iterdir()) == [] if made else not (folder / "typo").exists()
    assert capsys.readouterr().err == (
        f"portwarden: error: no state in STATE_DIR {state}: {why} (no portwarden ran with this "
        "configuration)\n"
    )


def test_a_kernel_file_system_is_refused_at_load(folder: Path) -> None:
    """/proc and /sys refuse even root (it used to show only when the daemon made the folder)."""
    assert unusable_directory(Path("/proc/x"), True) == "/proc is on proc, a kernel file system"
    sysfs = unusable_directory(Path("/sys/kernel/x"), True)
    assert sysfs == "/sys/kernel is on sysfs, a kernel file system"


@pytest.mark.parametrize(("command", "status"), [("blocked", 1), ("status", 3)])
def test_reading_commands_say_no_state_in_json_too(
    folder: Path, capsys: pytest.CaptureFixture[str], command: str, status: int
) -> None:
    (folder / "d.conf").write_text('STATE_DIR="typo/state"\n')
    assert main([command, "--json", "-c", "d.conf"]) == status
    out, err = capsys.readouterr()
    why = (
        f"no state in STATE_DIR {folder}/typo/state: no such directory (no portwarden ran "
        "with this configuration)"
    )
    assert json.loads(out) == {"error": why}
    assert err == f"portwarden: error: {why}\n"


@pytest.mark.parametrize("command", ["check-config", "run", "unblock"])
def test_a_state_dir_too_long_for_the_control_socket_is_a_placed_one_line_error(
    folder: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """sockaddr_un holds 107 bytes and a NUL: the daemon used to die with a traceback at start,
    after making its database, event log and nftables table."""
    deep = folder / ("x" * max(1, 100 - len(str(folder))))
    (folder / "d.conf").write_text(f'TCP_MODE="stcp"\nSTATE_DIR="{deep}"\n')
    argv = [command, "-c", "d.conf", *(["--all"] if command == "unblock" else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    size = len(str(deep / "control.sock"))
    source = folder / "d.conf" if command == "run" else "d.conf"  # run names it absolute
    assert err == (
        f'portwarden: error: {source}:2: STATE_DIR="{deep}": too long: the control '
        f"socket control.sock in it would have a name of {size} bytes, and a Unix "
        "socket's name takes at most 107\n"
    )
    assert not deep.exists()
    fits = folder / ("x" * (107 - len(str(folder / "x" / "control.sock")) + 1))
    assert len(str(fits / "control.sock")) == 107
    (folder / "d.conf").write_text(f'TCP_MODE="stcp"\nSTATE_DIR="{fits}"\n')
    assert load_settings(Path("d.conf")).state_dir == fits


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The umask of an administrator's shell, put back after the test."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_state_is_for_roots_eyes_whatever_the_callers_umask(
    folder: Path, shell_umask: None
) -> None:
    """`portwarden audit` from a shell with umask 022 wrote audit.json and the database 0644:
    the ports, programs and scanners of this host, readable by everyone when STATE_DIR was an
    existing folder of mode 0755."""
    (folder / "d.conf").write_text(f'STATE_DIR="{folder}"\n')
    assert main(["check-config", "-q", "d.conf"]) == 0
    assert os.umask(0o022) == 0o077
    AuditState().save(folder / "audit.json")
    assert stat.S_IMODE((folder / "audit.json").stat().st_mode) == 0o600
    # Made 0644 by an older version (or a shell's umask): made root's again when written.
    (folder / "audit.json").chmod(0o644)
    AuditState().save(folder / "audit.json")
    assert stat.S_IMODE((folder / "audit.json").stat().st_mode) == 0o600
    Store(folder / "portwarden.db").close()
    for file in folder.glob("portwarden.db*"):
        file.chmod(0o644)
    Store(folder / "portwarden.db").close()
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.glob("portwarden.db*")} == {0o600}
    hosts_deny = folder / "hosts.deny"
    replace_atomically(hosts_deny, "ALL: 198.18.0.11\n")  # made for tcpd to read
    assert stat.S_IMODE(hosts_deny.stat().st_mode) == 0o644


def test_a_folder_made_for_the_history_file_is_for_others_to_read(
    folder: Path, shell_umask: None
) -> None:
    """HISTORY_FILE is for log readers that may not be root: a folder made for it is 0755, not
    the daemon's umask 077 (its file is 0644 already)."""
    os.umask(0o077)
    history = folder / "log" / "portwarden" / "portsentry.history"
    record = BlockRecord(1, "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", 0.0, None, 1, ())
    append_history(history, [record])
    assert {stat.S_IMODE(d.stat().st_mode) for d in (history.parent, history.parent.parent)} == {
        0o755
    }
    assert stat.S_IMODE(history.stat().st_mode) == 0o644
