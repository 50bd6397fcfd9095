"""STATE_DIR's lock: a daemon that finds `unblock` or `reapply` working without a daemon waits
for it a few seconds, then names it; another daemon it refuses at once, as before."""

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden import statedir


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("portwarden.limits.STATE_DIR_COMMAND_WAIT_S", 0.5)


def test_a_daemon_waits_for_an_unblock_command_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It starts once the command ends (0.2 s), not at once and not after its whole wait
    (30 s here, so that a late timer on a loaded machine cannot pass for the defect)."""
    monkeypatch.setattr("portwarden.limits.STATE_DIR_COMMAND_WAIT_S", 30.0)
    command = statedir.claim(tmp_path, "unblock")
    assert statedir.holding(tmp_path) == statedir.Holder(str(os.getpid()), "unblock")
    assert statedir.holder(tmp_path) is None  # no daemon: `status` must not say one runs
    threading.Timer(0.2, command.close).start()
    started = time.monotonic()
    with statedir.claim(tmp_path):
        assert 0.15 < time.monotonic() - started < 10
        assert statedir.holding(tmp_path) == statedir.Holder(str(os.getpid()))


@pytest.mark.parametrize("check", [statedir.claim, statedir.refuse_if_held])
def test_a_command_that_does_not_end_is_named(
    tmp_path: Path, check: Callable[[Path], object]
) -> None:
    with statedir.claim(tmp_path, "unblock"):
        started = time.monotonic()
        with pytest.raises(statedir.StateDirBusy) as busy:
            check(tmp_path)
        assert time.monotonic() - started >= 0.5
    assert str(busy.value) == (
        f"an unblock command (pid {os.getpid()}) is working on STATE_DIR "
        f"{tmp_path}; try again when it ends"
    )


def test_another_daemon_is_refused_at_once_and_a_command_does_not_wait(tmp_path: Path) -> None:
    with statedir.claim(tmp_path):
        for claim in (
            lambda: statedir.claim(tmp_path),
            lambda: statedir.claim(tmp_path, "reapply"),
        ):
            started = time.monotonic()
            with pytest.raises(statedir.StateDirBusy) as busy:
                claim()
            assert time.monotonic() - started < 0.2
            assert str(busy.value) == (
                f"STATE_DIR {tmp_path} is in use by another portwarden "
                f"(pid {os.getpid()}); give each instance its own "
                "STATE_DIR"
            )


def test_a_lock_file_of_an_older_version_holds_a_pid_alone(tmp_path: Path) -> None:
    with statedir.claim(tmp_path, "reapply"):
        (tmp_path / statedir.LOCK_NAME).write_text("123\n")
        assert statedir.holding(tmp_path) == statedir.Holder("123")
        assert statedir.holder(tmp_path) == "123"
