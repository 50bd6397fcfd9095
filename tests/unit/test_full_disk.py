"""A disk that fills up part-way through an append leaves no partial line: hosts.deny and
HISTORY_FILE are cut back to their size before, and the failure is raised (the action is
recorded failed). A partial `ALL: 198.` would else become a rule for 198.0.0.0/8 as soon as
the next append put its newline after it."""

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden import fileedit
from portwarden.respond import portsentry_files
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

    monkeypatch.setattr(fileedit.os, "write", write)


@pytest.mark.parametrize("allowed", [0, 5, 12])
@pytest.mark.parametrize(
    ("before", "append"),
    [
        ("sshd: 192.0.2.1\n", lambda path: fileedit.add_line(path, "ALL: 198.18.0.11")),
        ("sshd: 192.0.2.1", lambda path: fileedit.add_line(path, "ALL: 198.18.0.11")),
        ("old line\n", lambda path: portsentry_files.append_history(path, [RECORD])),
        ("old line", lambda path: portsentry_files.append_history(path, [RECORD])),
    ],
    ids=["hosts.deny", "hosts.deny-no-newline", "history", "history-no-newline"],
)
def test_a_write_that_fails_part_way_leaves_the_file_as_it_was(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    allowed: int,
    before: str,
    append: Callable[[Path], object],
) -> None:
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
        fileedit.add_line(deny, "ALL: 198.18.0.11")
    monkeypatch.undo()
    assert fileedit.add_line(deny, "ALL: 198.18.0.12")
    assert deny.read_text() == "sshd: 192.0.2.1\nALL: 198.18.0.12\n"  # no `ALL: 198.` rule


def test_a_history_line_comes_after_a_newline_when_the_file_lacks_one(tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.write_text("written by hand")
    portsentry_files.append_history(history, [RECORD])
    assert history.read_text() == f"written by hand\n{portsentry_files.portsentry_line(RECORD)}\n"


OTHER_LINE = "sshd: 192.0.2.9\n"


def _other_writer_then_full(path: Path, our_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer (its own O_APPEND descriptor) appends a whole line just before our first
    write, which the disk cuts short at `our_bytes`; our next write fails with ENOSPC."""
    real = os.write
    calls = [0]

    def write(fd: int, data: bytes) -> int:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        other = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            real(other, OTHER_LINE.encode())
        finally:
            os.close(other)
        return real(fd, bytes(data)[:our_bytes])

    monkeypatch.setattr(fileedit.os, "write", write)


@pytest.mark.parametrize(
    "append",
    [
        lambda path: fileedit.add_line(path, "ALL: 198.18.0.11"),
        lambda path: portsentry_files.append_history(path, [RECORD]),
    ],
    ids=["hosts.deny", "history"],
)
def test_the_cut_after_a_failed_append_keeps_a_line_another_writer_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, append: Callable[[Path], object]
) -> None:
    path = tmp_path / "file"
    path.write_text("old line\n")
    _other_writer_then_full(path, 5, monkeypatch)
    with pytest.raises(OSError):
        append(path)
    assert path.read_text() == "old line\n" + OTHER_LINE  # theirs kept, our part cut


def test_a_partial_line_that_cannot_be_cut_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer appended after our part: cutting ours would cut theirs, so the file is
    left as it is, and one line says a partial line may remain, naming the file."""
    path = tmp_path / "hosts.deny"
    path.write_text("old line\n")
    real = os.write
    calls = [0]

    def write(fd: int, data: bytes) -> int:
        calls[0] += 1
        if calls[0] > 1:
            other = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                real(other, OTHER_LINE.encode())
            finally:
                os.close(other)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, bytes(data)[:9])

    monkeypatch.setattr(fileedit.os, "write", write)
    with pytest.raises(OSError):
        fileedit.add_line(path, "ALL: 198.18.0.11")
    assert path.read_text() == "old line\nALL: 198." + OTHER_LINE
    (said,) = [r.getMessage() for r in caplog.records]
    assert str(path) in said and "partial line" in said and "\n" not in said
