"""A disk that fills up part-way through an append leaves no partial line: hosts.deny and
HISTORY_FILE are cut back to their size before, and the failure is raised (the action is
recorded failed). A partial `ALL: 198.` would else become a rule for 198.0.0.0/8 as soon as
the next append put its newline after it."""

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden.respond import files
from portwarden.store.db import BlockRecord

RECORD = BlockRecord(1, "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", 0.0, None, 1, ())


def _full_after(allowed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write writes `allowed` bytes in all, then fails with ENOSPC (as a full disk does:
    the write that crosses the limit returns short, the next one fails)."""
    real = os.write
    left = [allowed]

    def write(fd: int, data: bytes) -> int:
        if left[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real(fd, bytes(data)[: left[0]])
        left[0] -= written
        return written

    monkeypatch.setattr(files.os, "write", write)


@pytest.mark.parametrize("allowed", [0, 5, 12])
@pytest.mark.parametrize(
    ("before", "append"),
    [
        ("sshd: 192.0.2.1\n", lambda path: files.add_line(path, "ALL: 198.18.0.11")),
        ("sshd: 192.0.2.1", lambda path: files.add_line(path, "ALL: 198.18.0.11")),
        ("old line\n", lambda path: files.append_history(path, [RECORD])),
        ("old line", lambda path: files.append_history(path, [RECORD])),
    ],
    ids=["hosts.deny", "hosts.deny-no-newline", "history", "history-no-newline"],
)
def test_a_write_that_fails_part_way_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allowed: int, before: str,
    append: Callable[[Path], object],
) -> None:  # fmt: skip
    path = tmp_path / "file"
    path.write_text(before)
    _full_after(allowed, monkeypatch)
    with pytest.raises(OSError) as raised:
        append(path)
    assert raised.value.errno == errno.ENOSPC
    assert path.read_text() == before


def test_the_next_append_after_a_full_disk_writes_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deny = tmp_path / "hosts.deny"
    deny.write_text("sshd: 192.0.2.1\n")
    _full_after(len("ALL: 198."), monkeypatch)
    with pytest.raises(OSError):
        files.add_line(deny, "ALL: 198.18.0.11")
    monkeypatch.undo()
    assert files.add_line(deny, "ALL: 198.18.0.12")
    assert deny.read_text() == "sshd: 192.0.2.1\nALL: 198.18.0.12\n"  # no `ALL: 198.` rule


def test_a_history_line_comes_after_a_newline_when_the_file_lacks_one(tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.write_text("written by hand")
    files.append_history(history, [RECORD])
    assert history.read_text() == f"written by hand\n{files.portsentry_line(RECORD)}\n"
