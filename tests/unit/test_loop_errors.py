"""A bug in one turn of the daemon's loop ends the turn, not the daemon: logged with its
traceback (at most once a minute), counted, survived; only a loop whose every turn fails for
limits.LOOP_ERRORS_FATAL_S stops, with exit status 1 (review: any exception but running out of
descriptors ended the daemon, attacker data included)."""

import errno
import logging
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portwarden import daemon as daemon_module
from portwarden import limits
from portwarden.config import load_settings
from portwarden.daemon import Daemon
from portwarden.loop_errors import LoopErrors
from portwarden.metrics import exposition

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR]


def test_one_traceback_a_minute_and_the_rest_counted(caplog: pytest.LogCaptureFixture) -> None:
    loop = LoopErrors()
    with caplog.at_level(logging.ERROR, "portwarden"):
        for now in (0.0, 1.0, 2.0, limits.LOOP_ERROR_LOG_S, limits.LOOP_ERROR_LOG_S + 1):
            loop.failed(ValueError("bad packet"), now)
            loop.passed()
    said = errors(caplog)
    assert [r.getMessage() for r in said] == [
        "a turn of the loop failed (a bug: please report it with this traceback); going on",
        "a turn of the loop failed (a bug: please report it with this traceback); 2 more "
        "turns failed since the last one logged; going on",
    ]
    assert all(r.exc_info and r.exc_info[0] is ValueError for r in said)
    assert loop.total == 5
    assert not loop.fatal(limits.LOOP_ERROR_LOG_S + 1000)  # each was followed by a good turn


def test_only_failures_in_a_row_for_long_are_fatal(caplog: pytest.LogCaptureFixture) -> None:
    loop = LoopErrors()
    fatal_s = limits.LOOP_ERRORS_FATAL_S
    loop.failed(ValueError("first"), 100.0)
    loop.failed(KeyError("second"), 100.0 + fatal_s / 2)
    assert not loop.fatal(100.0 + fatal_s / 2)
    loop.passed()
    loop.failed(ValueError("third"), 100.0 + fatal_s)
    assert not loop.fatal(100.0 + fatal_s)  # counted from the third: the second was followed
    loop.failed(RuntimeError("fourth\nline"), 100.0 + 2 * fatal_s)
    with caplog.at_level(logging.ERROR, "portwarden"):
        assert loop.fatal(100.0 + 2 * fatal_s)
    assert errors(caplog)[-1].getMessage() == (
        f"every turn of the loop failed for {fatal_s:g} s (2 in a row; the last: "
        "RuntimeError: fourth\\nline): stopping with exit status 1, for a restart by the "
        "service manager"
    )


def test_the_count_is_a_metric() -> None:
    page = exposition({"loop_errors": 3}, {"sent": {}, "dropped": {}})
    assert "# TYPE portwarden_loop_errors_total counter\nportwarden_loop_errors_total 3\n" in page


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A daemon run in this process with no sensors (they are not what these tests are about);
    the signal handlers it sets are put back afterwards."""
    conf = tmp_path / "p.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nAUDIT_INTERVAL="0"\nTCP_MODE="stcp"\n'
    )
    monkeypatch.setattr(daemon_module, "build_sensors", lambda settings, host: [])
    handlers = {signum: signal.getsignal(signum) for signum in HANDLED}
    yield Daemon(load_settings(conf), conf, None)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def turns(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, turn: Callable[[int], None]) -> None:
    """`turn(n)` instead of the daemon's turn, n counting from 1."""
    count = 0

    def instead(_wake_read: int) -> None:
        nonlocal count
        count += 1
        turn(count)

    monkeypatch.setattr(daemon, "_turn", instead)


def test_a_turn_that_raises_is_logged_counted_and_survived(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def turn(n: int) -> None:
        if n <= 3:
            raise ValueError(f"bug {n}")
        if n == 5:
            daemon._signals.append(signal.SIGTERM)

    turns(daemon, monkeypatch, turn)
    with caplog.at_level(logging.INFO, "portwarden"):
        assert daemon.run() == 0
    failed = [r for r in errors(caplog) if r.getMessage().startswith("a turn of the loop failed")]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert str(failed[0].exc_info[1]) == "bug 1"
    assert daemon._counters()["loop_errors"] == 3
    assert "stopping on SIGTERM" in caplog.text


def test_a_sigterm_stops_a_daemon_whose_every_turn_fails(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def turn(n: int) -> None:
        if n == 3:
            daemon._signals.append(signal.SIGTERM)
        raise ValueError("always")

    turns(daemon, monkeypatch, turn)
    assert daemon.run() == 0
    assert daemon._counters()["loop_errors"] == 3


def test_a_loop_whose_every_turn_fails_stops_with_status_1(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(limits, "LOOP_ERRORS_FATAL_S", 0.5)

    def turn(_n: int) -> None:
        raise RuntimeError("always")

    turns(daemon, monkeypatch, turn)
    with caplog.at_level(logging.INFO, "portwarden"):
        assert daemon.run() == 1
    assert errors(caplog)[-1].getMessage().startswith(
        "every turn of the loop failed for 0.5 s ("
    ) and errors(caplog)[-1].getMessage().endswith(
        " in a row; the last: RuntimeError: always): stopping with exit status 1, for a "
        "restart by the service manager"
    )
    assert caplog.records[-1].getMessage().startswith("stopped: ")  # the stop, as at SIGTERM


def test_keyboard_interrupt_is_not_caught(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    def turn(_n: int) -> None:
        raise KeyboardInterrupt

    turns(daemon, monkeypatch, turn)
    with pytest.raises(KeyboardInterrupt):
        daemon.run()


def test_the_stop_after_a_broken_loop_runs_every_step(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine raises in every turn, and again in the stop's report of the scans still open:
    logged, and the rest of the stop runs (review: the same exception left run() from its
    `finally`, skipping the policy's stop, the control socket, the shutdown line)."""
    monkeypatch.setattr(limits, "LOOP_ERRORS_FATAL_S", 0.3)

    def tick(*_args: object, **_kwargs: object) -> None:
        raise ValueError("engine bug")

    monkeypatch.setattr(daemon._engine, "tick", tick)
    said: list[str] = []
    real_stopping = daemon._alerts.stopping

    def stopping(why: str) -> None:
        said.append(why)
        real_stopping(why)

    monkeypatch.setattr(daemon._alerts, "stopping", stopping)
    with caplog.at_level(logging.INFO, "portwarden"):
        assert daemon.run() == 1
    failed = [r for r in errors(caplog) if "failed; going on" in r.getMessage()]
    assert [r.getMessage() for r in failed] == [
        "stop: reporting the scans still open failed; going on"
    ]
    assert failed[0].exc_info is not None and str(failed[0].exc_info[1]) == "engine bug"
    assert not daemon._policy._worker.is_alive()
    assert not (daemon.settings.state_dir / "control.sock").exists()
    assert said == ["every turn of the loop failed"]
    assert caplog.records[-1].getMessage().startswith("stopped: ")


def out_of_descriptors(*_args: object) -> None:
    """What a classic listener's accept() raises once the open-files limit is reached."""
    raise OSError(errno.EMFILE, "Too many open files")


def test_turns_cut_short_by_running_out_of_descriptors_feed_the_watchdog(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, notes: list[str]
) -> None:
    """Running out of descriptors is "logged, never fatal" (limits.py): systemd must not kill
    the daemon for it (review: such turns never said WATCHDOG=1)."""
    daemon._watchdog_s = 0.2  # WATCHDOG=1 after every turn at least 0.1 s after the last
    start = time.monotonic()

    def release_held(_now: float = 0.0) -> None:
        if time.monotonic() - start > 1.0:
            daemon._signals.append(signal.SIGTERM)
        out_of_descriptors()

    monkeypatch.setattr(daemon, "_release_held", release_held)  # in every (real) turn
    assert daemon.run() == 0
    assert notes.count("WATCHDOG=1") >= 2  # a turn sleeps TICK_S, nothing being read


def test_turns_cut_short_by_running_out_of_descriptors_are_no_failures(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug every other turn, and no descriptor left in the others: no turn ran through, but
    the failures are not in a row, so the loop is not taken for broken."""
    monkeypatch.setattr(limits, "LOOP_ERRORS_FATAL_S", 0.3)
    start = time.monotonic()

    def turn(n: int) -> None:
        if time.monotonic() - start > 1.0:
            daemon._signals.append(signal.SIGTERM)
        if n % 2:
            raise ValueError("bug")
        out_of_descriptors()

    turns(daemon, monkeypatch, turn)
    assert daemon.run() == 0
    assert daemon._counters()["loop_errors"] >= 5
