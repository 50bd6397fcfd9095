"""KILL_ROUTE / KILL_RUN_CMD runs: real commands, their exit status, the time limit."""

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.respond import commands


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where a test command writes the pid of a process it leaves behind; killed at the end."""
    path = tmp_path / "pid"
    yield path
    if path.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(path.read_text()), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_success_and_failure_with_exit_status_and_output(caplog: pytest.LogCaptureFixture) -> None:
    assert commands.run(["true"], 5, "KILL_RUN_CMD") is None
    caplog.set_level(logging.ERROR, "portwarden")
    # Why, on one line, for the action's recorded status (the JSON event log's `status`).
    assert (
        commands.run(["sh", "-c", "echo nope >&2; echo 'two\x1b'; exit 3"], 5, "KILL_ROUTE")
        == "exit status 3: nope\\ntwo\\x1b"
    )
    assert commands.run(["sh", "-c", "echo nope >&2; exit 3"], 5, "KILL_ROUTE")
    assert "KILL_ROUTE failed with exit status 3: sh -c 'echo nope >&2; exit 3': nope" in (
        caplog.text
    )


def test_a_command_that_cannot_start_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert commands.run(["/nonexistent/route"], 5, "KILL_ROUTE") == (
        "could not start: No such file or directory"
    )
    assert "KILL_ROUTE could not start: No such file or directory: /nonexistent/route" in (
        caplog.text
    )


def test_a_hanging_command_is_killed_with_its_children(
    pid_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    failure = commands.run(
        ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], 0.5, "KILL_RUN_CMD"
    )
    assert failure == "killed after 0.5s" and time.monotonic() - started < 10  # not 30 s
    assert "KILL_RUN_CMD killed after 0.5s" in caplog.text
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid):  # the grandchild, not only the shell
        assert time.monotonic() < deadline, f"sleep {pid} survived the time limit"
        time.sleep(0.02)


def test_a_background_child_holding_the_output_does_not_hold_the_worker(pid_file: Path) -> None:
    started = time.monotonic()
    failure = commands.run(
        ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; exit 0"], 120, "KILL_RUN_CMD"
    )
    assert failure is None and time.monotonic() - started < 10  # not the child's 60 s
    assert _alive(int(pid_file.read_text()))  # left alone: it was not over its time


def test_endless_output_is_read_and_cut() -> None:
    started = time.monotonic()
    assert commands.run(["sh", "-c", "yes; exit 1"], 0.5, "KILL_RUN_CMD") == "killed after 0.5s"
    assert time.monotonic() - started < 10  # endless without the time limit
