"""A STATE_DIR or EVENT_LOG that cannot be used is a one-line configuration error naming file,
line, key and value, never a traceback; commands that read the state create none."""

from pathlib import Path

import pytest

from portwarden.cli import main
from portwarden.config.settings import blamed_on, load_settings
from portwarden.statedir import unusable_directory


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("line", "reason"), [
    ('STATE_DIR="afile"', "afile exists and is not a directory"),
    ('STATE_DIR="afile/x"', "afile is not a directory"),
    ('EVENT_LOG="afile/x"', "afile exists and is not a directory"),
    ('EVENT_LOG="afile/x/y"', "afile is not a directory"),
])  # fmt: skip
@pytest.mark.parametrize("command", ["check-config", "blocked", "audit", "run", "unblock"])
def test_an_unusable_path_is_a_placed_one_line_error(
    folder: Path, capsys: pytest.CaptureFixture[str], line: str, reason: str, command: str
) -> None:
    (folder / "d.conf").write_text(f'TCP_MODE="stcp"\n{line}\n')
    argv = [command, "-c", "d.conf", *(["--all"] if command == "unblock" else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"portwarden: error: d.conf:2: {line}: {folder}/{reason}\n"


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


@pytest.mark.parametrize(("command", "status"), [
    ("blocked", 1), ("status", 3), ("unblock", 1), ("reapply", 1),
])  # fmt: skip
def test_reading_commands_make_no_state_dir(
    folder: Path, capsys: pytest.CaptureFixture[str], command: str, status: int
) -> None:
    (folder / "d.conf").write_text('STATE_DIR="typo/state"\n')
    argv = [command, "-c", "d.conf", *(["--all"] if command == "unblock" else [])]
    assert main(argv) == status
    assert not (folder / "typo").exists()
    assert capsys.readouterr().err == (
        f"portwarden: error: no state in STATE_DIR {folder}/typo/state: no such directory "
        "(no portwarden ran with this configuration)\n"
    )


def test_a_kernel_file_system_is_refused_at_load(folder: Path) -> None:
    """/proc and /sys refuse even root (it used to show only when the daemon made the folder)."""
    assert unusable_directory(Path("/proc/x"), True) == "/proc is on proc, a kernel file system"
    sysfs = unusable_directory(Path("/sys/kernel/x"), True)
    assert sysfs == "/sys/kernel is on sysfs, a kernel file system"
