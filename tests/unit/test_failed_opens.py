"""What fails half-way lets go of what it had opened (review): the syslog sender thread of an
alert configuration whose JSON log cannot be opened, a command that cannot be timed, the control
socket that cannot listen."""

import dataclasses
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from portwarden import control
from portwarden.alert.dispatch import Alerts
from portwarden.config import Settings, load_settings
from portwarden.respond import commands


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def out_of_descriptors(*_args: object) -> Any:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def syslog_senders() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "syslog"}


def with_syslog(folder: Path) -> Settings:
    conf = folder / "p.conf"
    conf.write_text(f'STATE_DIR="{folder}/state"\nSYSLOG_SOCKET="{folder}/log"\n')
    return load_settings(conf)


def test_alerts_refused_for_their_event_log_leave_no_syslog_sender_running(
    tmp_path: Path,
) -> None:
    """A SIGHUP whose EVENT_LOG cannot be opened (here a folder made after the check at load) is
    refused: each one left a syslog sender thread running; so did such a start."""
    settings = with_syslog(tmp_path)
    alerts = Alerts(settings)
    (tmp_path / "folder").mkdir()
    unusable = dataclasses.replace(settings, event_log=tmp_path / "folder")
    before = syslog_senders()
    for _ in range(3):
        with pytest.raises(IsADirectoryError):
            alerts.reconfigure(unusable)
    with pytest.raises(IsADirectoryError):
        Alerts(unusable)
    assert syslog_senders() - before == set()
    alerts.close()


@pytest.mark.parametrize("step", ["pidfd_open", "selector"])
def test_a_command_that_cannot_be_timed_is_killed_and_reaped(
    step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of descriptors once the command runs: it was left running, never waited for (a
    zombie at best), and the error went up into the action worker."""
    started: list[int] = []
    real_pidfd_open = os.pidfd_open

    def pidfd_open(pid: int, flags: int = 0) -> int:
        started.append(pid)
        if step == "pidfd_open":
            out_of_descriptors()
        return real_pidfd_open(pid, flags)

    monkeypatch.setattr(commands.os, "pidfd_open", pidfd_open)
    if step == "selector":
        monkeypatch.setattr(commands.selectors, "DefaultSelector", out_of_descriptors)
    before = open_descriptors()
    began = time.monotonic()
    why = commands.run(["sleep", "30"], 10.0, "KILL_RUN_CMD")
    assert why == "killed: cannot time it (Too many open files)"
    assert time.monotonic() - began < 5
    assert open_descriptors() == before  # the pipe, and the pidfd if it was opened
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(started[0], os.WNOHANG)


def test_a_control_socket_that_cannot_bind_is_closed(tmp_path: Path) -> None:
    before = open_descriptors()
    with pytest.raises(FileNotFoundError) as failed:
        control.ControlServer(tmp_path / "missing", lambda request: {})
    # Closed, not left to the garbage collector: the traceback, alive here as it is while the
    # error is handled, holds the half-made server.
    assert failed.value.__traceback__ is not None
    assert open_descriptors() == before


def test_a_control_server_without_its_wake_pipe_closes_and_removes_its_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control.os, "pipe2", out_of_descriptors)
    before = open_descriptors()
    with pytest.raises(OSError, match="Too many open files") as failed:
        control.ControlServer(tmp_path, lambda request: {})
    assert failed.value.__traceback__ is not None
    assert open_descriptors() == before
    assert not control.socket_path(tmp_path).exists()
