"""BLOCKED_FILE and EVENT_LOG are held by one instance at a time (portwarden.claims), as
STATE_DIR is: a second configuration naming the same file, through any spelling, is refused in
one line naming the key's line, the file and the instance that holds it."""

import os
from pathlib import Path

import pytest

from portwarden.claims import FileClaims, claims_folder
from portwarden.cli import main
from portwarden.config.errors import ConfigError
from portwarden.config.load import load_settings
from portwarden.config.settings import Settings
from portwarden.store.db import Store, store_path


def instance(folder: Path, name: str, lines: str) -> Settings:
    conf = folder / f"{name}.conf"
    conf.write_text(f'STATE_DIR="{folder}/{name}"\n{lines}')
    return load_settings(conf)


@pytest.mark.parametrize("key", ["BLOCKED_FILE", "EVENT_LOG"])
def test_a_file_another_instance_holds_is_refused_with_its_line(tmp_path: Path, key: str) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "shared")
    first = instance(tmp_path, "one", f'{key}="{tmp_path}/shared/f"\n')
    second = instance(tmp_path, "two", f'TCP_MODE="stcp"\n{key}="{tmp_path}/link/f"\n')
    holding = FileClaims()
    holding.claim(first)
    try:
        with pytest.raises(ConfigError) as refused:
            FileClaims().claim(second)
    finally:
        holding.close()
    assert str(refused.value).startswith(
        f'{tmp_path}/two.conf:3: {key}="{tmp_path}/link/f": in use by another portwarden (pid '
        f"{os.getpid()}) as its {key}; give each instance its own {key} (its STATE_DIR is "
    )
    again = FileClaims()
    again.claim(second)  # free again once the first has let go
    again.close()
    assert list(claims_folder().iterdir()) == []  # each removed when let go


def test_what_a_refused_claim_took_is_let_go(tmp_path: Path) -> None:
    """The event log is free, the blocked file is not: the event log is not kept held."""
    first = instance(tmp_path, "one", f'BLOCKED_FILE="{tmp_path}/pb"\n')
    second = instance(tmp_path, "two", f'BLOCKED_FILE="{tmp_path}/pb"\nEVENT_LOG="{tmp_path}/ev"\n')
    third = instance(tmp_path, "three", f'EVENT_LOG="{tmp_path}/ev"\n')
    with pytest.raises(ConfigError):
        claims = FileClaims()
        claims.claim(first)
        FileClaims().claim(second)
    FileClaims().claim(third)
    claims.close()


def test_a_reload_keeps_only_the_files_it_names(tmp_path: Path) -> None:
    old = instance(tmp_path, "one", f'EVENT_LOG="{tmp_path}/old"\n')
    new = instance(tmp_path, "one", f'EVENT_LOG="{tmp_path}/new"\n')
    claims = FileClaims()
    claims.claim(old)
    claims.claim(old)  # held already: no conflict with itself
    claims.claim(new)
    claims.keep_only(new)
    FileClaims().claim(instance(tmp_path, "two", f'EVENT_LOG="{tmp_path}/old"\n'))
    with pytest.raises(ConfigError, match="in use by"):
        FileClaims().claim(instance(tmp_path, "three", f'EVENT_LOG="{tmp_path}/new"\n'))
    claims.close()


def test_a_command_is_named_as_such(tmp_path: Path) -> None:
    settings = instance(tmp_path, "one", "")
    claims = FileClaims("unblock")
    claims.claim(settings)
    with pytest.raises(
        ConfigError, match=r"by an unblock command \(pid \d+\) as its BLOCKED_FILE; "
    ):
        FileClaims().claim(settings)
    claims.close()


def test_a_lock_file_left_by_a_kill_is_taken_over(tmp_path: Path) -> None:
    settings = instance(tmp_path, "one", "")
    claims = FileClaims()
    claims.claim(settings)
    left = {path: path.read_text() for path in claims_folder().iterdir()}
    claims.close()
    for path, text in left.items():
        path.write_text(text)  # as a killed daemon leaves them
    FileClaims().claim(settings)


def test_lock_files_left_by_a_kill_are_removed_by_the_next_claim_of_any_file(
    tmp_path: Path,
) -> None:
    """A killed `portwarden lab` leaves the locks of files in a folder that is gone: nobody
    claims them again, so the next claim of any file removes them; held ones stay."""
    held = FileClaims()
    held.claim(instance(tmp_path, "held", ""))
    holding = set(claims_folder().iterdir())
    killed = FileClaims()
    killed.claim(instance(tmp_path, "killed", ""))
    left = {path: path.read_text() for path in set(claims_folder().iterdir()) - holding}
    killed.close()
    for path, text in left.items():
        path.write_text(text)
    (claims_folder() / "unrelated").write_text("not a lock file: left alone\n")
    (claims_folder() / "elsewhere.lock").symlink_to(tmp_path / "target")  # never followed
    (tmp_path / "target").write_text("kept\n")
    third = FileClaims()
    third.claim(instance(tmp_path, "third", ""))
    names = {path.name for path in claims_folder().iterdir()}
    assert len(left) == 2 and not names & {path.name for path in left}
    assert {path.name for path in holding} <= names and "unrelated" in names
    assert (tmp_path / "target").read_text() == "kept\n"
    held.close()
    third.close()


def test_unblock_without_a_daemon_leaves_another_instances_blocked_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = f'BLOCKED_FILE="{tmp_path}/pb"\n'
    holding = FileClaims()
    holding.claim(instance(tmp_path, "one", shared))
    second = instance(tmp_path, "two", shared)
    Store(store_path(second.state_dir)).close()  # it ran once: it has a store
    (tmp_path / "pb.stcp").write_text("the first instance's list\n")
    try:
        assert main(["unblock", "-c", str(tmp_path / "two.conf"), "--all"]) == 1
    finally:
        holding.close()
    assert (tmp_path / "pb.stcp").read_text() == "the first instance's list\n"
    err = capsys.readouterr().err
    assert err.startswith(f'portwarden: error: unblock: {tmp_path}/two.conf:2: BLOCKED_FILE="')
    assert err.endswith("; nothing was changed\n")
