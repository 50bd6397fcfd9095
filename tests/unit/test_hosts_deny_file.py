"""hosts.deny edits: lines as tcpd reads them, and lines other programs add meanwhile kept."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from portwarden import fileedit
from portwarden.respond import portsentry_files
from portwarden.store.db import BlockRecord
from tests.unit.rewrites import record_rewrites

# Characters str.splitlines() breaks at besides \n and \r; tcpd (fgets) reads on past them.
NOT_LINE_ENDS = ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]

APPENDER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for number in range(int(sys.argv[2])):
    os.write(fd, b"sshd: 203.0.113.%d # admin %d\\n" % (number % 250, number))
    if number % 10 == 0:
        time.sleep(0.001)
"""


@pytest.mark.parametrize("separator", NOT_LINE_ENDS)
def test_our_line_inside_another_line_is_not_there(tmp_path: Path, separator: str) -> None:
    """tcpd takes "# note\\fALL: 198.18.3.7" for one comment line: the block needs its own."""
    deny = tmp_path / "hosts.deny"
    deny.write_text(f"# note{separator}ALL: 198.18.3.7\n")
    assert not fileedit.has_line(deny, "ALL: 198.18.3.7")
    assert fileedit.add_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == f"# note{separator}ALL: 198.18.3.7\nALL: 198.18.3.7\n"
    assert fileedit.remove_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == f"# note{separator}ALL: 198.18.3.7\n"
    assert not fileedit.remove_line(deny, "ALL: 198.18.3.7")


def test_lines_end_at_newline_with_an_optional_carriage_return(tmp_path: Path) -> None:
    deny = tmp_path / "hosts.deny"
    deny.write_bytes(b"sshd: 203.0.113.9\r\nALL: 198.18.3.7\r\n")
    assert not fileedit.add_line(deny, "ALL: 198.18.3.7")
    assert fileedit.remove_line(deny, "ALL: 198.18.3.7")
    assert deny.read_bytes() == b"sshd: 203.0.113.9\r\n"


def test_a_line_is_added_after_a_last_line_without_newline_and_removed_again(
    tmp_path: Path,
) -> None:
    deny = tmp_path / "hosts.deny"
    deny.write_text("sshd: 203.0.113.9")
    assert fileedit.add_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == "sshd: 203.0.113.9\nALL: 198.18.3.7\n"
    assert fileedit.remove_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == "sshd: 203.0.113.9\n"
    deny.write_text("sshd: 203.0.113.9\nALL: 198.18.3.7")
    assert fileedit.remove_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == "sshd: 203.0.113.9\n"


def test_a_new_file_is_readable_by_the_services_whatever_the_umask(tmp_path: Path) -> None:
    deny = tmp_path / "hosts.deny"
    old = os.umask(0o077)
    try:
        assert fileedit.add_line(deny, "ALL: 198.18.3.7")
    finally:
        os.umask(old)
    assert deny.stat().st_mode & 0o777 == fileedit.NEW_FILE_MODE
    assert deny.read_text() == "ALL: 198.18.3.7\n"


def test_lines_other_programs_append_meanwhile_are_kept(tmp_path: Path) -> None:
    """fail2ban or DenyHosts appending while blocks are made: a read-rewrite-rename would put
    their lines in the old file, gone once ours replaces it."""
    deny = tmp_path / "hosts.deny"
    deny.write_text("")
    inode = deny.stat().st_ino
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(deny), "20000"])
    ours = [f"ALL: 198.18.{n // 250}.{n % 250}" for n in range(300)]
    try:
        for line in ours:
            assert fileedit.add_line(deny, line)
    finally:
        assert appender.wait(timeout=60) == 0
    lines = deny.read_text().split("\n")
    assert sum("# admin " in line for line in lines) == 20000
    assert set(ours) <= set(lines)
    assert deny.stat().st_ino == inode  # appended in place, never replaced


def test_a_removal_is_done_again_when_the_file_changed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line appended between our read and our rename would be lost with the old file: the
    change is seen just before the rename, and the edit is done again from the new text."""
    deny = tmp_path / "hosts.deny"
    deny.write_text("sshd: 203.0.113.9\nALL: 198.18.3.7\n")
    made = tempfile.mkstemp
    appended: list[bool] = []

    def append_first(dir: Path, prefix: str) -> tuple[int, str]:
        if not appended:  # another program appends while our copy is being written
            with deny.open("a") as other:
                other.write("sshd: 203.0.113.10\n")
            appended.append(True)
        return made(dir=dir, prefix=prefix)

    monkeypatch.setattr(fileedit.tempfile, "mkstemp", append_first)
    assert fileedit.remove_line(deny, "ALL: 198.18.3.7")
    assert deny.read_text() == "sshd: 203.0.113.9\nsshd: 203.0.113.10\n"
    assert not list(tmp_path.glob(".hosts.deny.*"))  # the first copy was thrown away


def test_many_lines_go_in_one_rewrite_each_last_copy_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unblock of many: one rewrite for all; the administrator's earlier copy stays, the
    last line without a newline goes cleanly, a line not there is not an error."""
    deny = tmp_path / "hosts.deny"
    deny.write_text(
        "ALL: 198.18.0.11\nsshd: x\nALL: 198.18.0.11\r\nALL: 198.18.0.12\nALL: 198.18.0.13"
    )
    rewrites = record_rewrites(monkeypatch)
    wanted = ["ALL: 198.18.0.11", "ALL: 198.18.0.13", "ALL: 198.18.0.14", "ALL: 198.18.0.12"]
    assert fileedit.remove_lines(deny, wanted) == set(wanted) - {"ALL: 198.18.0.14"}
    assert deny.read_text() == "ALL: 198.18.0.11\nsshd: x\n"
    assert rewrites == [deny]
    assert fileedit.remove_lines(deny, ["ALL: 198.18.0.14"]) == set()
    assert rewrites == [deny]


def test_history_file_is_made_readable_like_blocked_file(tmp_path: Path) -> None:
    """PortSentry opened both with fopen(..., "a"): 0644 under the usual umask."""
    old = os.umask(0o077)
    try:
        portsentry_files.append_history(tmp_path / "history", [])
        assert not (tmp_path / "history").exists()  # nothing to write: no file
        portsentry_files.write_blocked_files(tmp_path / "blocked", [], {"tcp"})
        record = BlockRecord(
            1, "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", 0.0, None, 1, ()
        )
        portsentry_files.append_history(tmp_path / "history", [record])
    finally:
        os.umask(old)
    assert (tmp_path / "history").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "blocked.tcp").stat().st_mode & 0o777 == 0o644
