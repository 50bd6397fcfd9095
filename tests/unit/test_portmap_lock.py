"""portmap protect and unprotect take turns: the lock waits a bounded time, then gives up."""

import os
import time
from pathlib import Path

import pytest

from portwarden.portmap import lock


def test_a_held_lock_is_waited_for_then_given_up_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "portmap.lock"
    with lock.held(path, wait=0.1):
        assert path.read_text() == f"{os.getpid()}\n"
        started = time.monotonic()
        with pytest.raises(lock.Busy) as busy, lock.held(path, wait=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 1.0
    assert str(busy.value) == (
        f"another portmap protect or unprotect (pid {os.getpid()}) holds "
        f"{path}; gave up after 0.3 s"
    )
    with lock.held(path, wait=0):  # released when the block ended
        pass


def test_a_lock_that_cannot_be_made_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with (
        pytest.raises(lock.Busy, match=r"^cannot take the lock .*/link: "),
        lock.held(tmp_path / "link"),
    ):
        pass
    assert not (tmp_path / "elsewhere").exists()
