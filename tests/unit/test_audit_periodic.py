"""The daemon's periodic audit thread: each check compares with the one before it, whether or
not the loop has saved that one yet."""

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from portwarden.audit import check
from portwarden.audit.findings import Finding, Kind
from portwarden.audit.periodic import Outcome, PeriodicAudit, Unchecked
from portwarden.audit.state import AuditState, Seen
from portwarden.config import Settings, load_settings

OPEN = Seen("198.18.0.1", 40402, "tcp", ())  # a port in no list of the policy


class FakeAudit:
    """run_audit's stand-in: port 40402 is open; it is ServiceNew unless the previous state has
    seen it (as compare does). Counts its calls, so a test can wait for a check."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = threading.Condition()

    def __call__(
        self, settings: Settings, previous: AuditState | None, now: float
    ) -> check.AuditResult:
        seen = previous is not None and OPEN in previous.seen
        findings = (
            ()
            if seen
            else (Finding(Kind.NEW, "warning", OPEN.interface, OPEN.port, OPEN.proto, "unknown"),)
        )
        result = check.AuditResult(
            now, (OPEN.interface,), (), findings, (), AuditState(frozenset({OPEN}))
        )
        with self.called:
            self.calls += 1
            self.called.notify_all()
        return result

    def wait_for(self, calls: int) -> None:
        with self.called:
            assert self.called.wait_for(lambda: self.calls >= calls, timeout=10)


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeAudit:
    fake = FakeAudit()
    monkeypatch.setattr(check, "run_audit", fake)
    return fake


def checked(outcome: Outcome) -> tuple[check.AuditResult, list[str]]:
    """A check's result and warnings; a check that could not look fails the test."""
    assert not isinstance(outcome, Unchecked), outcome
    return outcome


def settings(tmp_path: Path) -> Settings:
    conf = tmp_path / "p.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nAUDIT_INTERVAL="300"\n')
    return load_settings(conf)


def test_a_check_before_the_loop_saved_the_last_one_reports_nothing_again(
    audit: FakeAudit, tmp_path: Path
) -> None:
    """Nobody takes the results (the loop has not come round to it, and so has saved no state):
    a reload's check compares with the first check all the same, and finds nothing new."""
    periodic = PeriodicAudit(settings(tmp_path))
    periodic.start()
    try:
        audit.wait_for(1)
        periodic.reconfigure(dataclasses.replace(periodic.settings))  # a SIGHUP
        audit.wait_for(2)
    finally:
        periodic.stop()
    first, second = (checked(outcome)[0].findings for outcome in periodic.results)
    assert [f.kind for f in first] == [Kind.NEW]
    assert second == ()
    assert not (tmp_path / "state" / "audit.json").exists()  # the loop saves, not the thread


def test_the_first_check_starts_from_the_saved_state(audit: FakeAudit, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    AuditState(frozenset({OPEN})).save(tmp_path / "state" / "audit.json")
    periodic = PeriodicAudit(settings(tmp_path))
    periodic.start()
    audit.wait_for(1)
    periodic.stop()
    [(result, warnings)] = map(checked, periodic.results)
    assert (result.findings, warnings) == ((), [])


def test_no_check_is_made_while_the_loop_has_results_it_has_not_taken(
    audit: FakeAudit, tmp_path: Path
) -> None:
    """A result dropped from the queue would lose its findings: the next check already
    compares with it."""
    periodic = PeriodicAudit(settings(tmp_path))
    periodic.start()
    try:
        for calls in range(1, 5):
            audit.wait_for(calls)
            periodic.reconfigure(periodic.settings)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # wakes, but makes no fifth check
            periodic.reconfigure(periodic.settings)
            time.sleep(0.05)
        assert audit.calls == 4
        periodic.results.popleft()  # the loop takes one
        periodic.reconfigure(periodic.settings)
        audit.wait_for(5)
    finally:
        periodic.stop()


def test_a_slow_check_does_not_stretch_the_interval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AUDIT_INTERVAL counts from one check's start to the next's: a portmapper that makes each
    check wait does not add its wait to every interval (10 s became 14 s)."""
    fake = FakeAudit()
    started: list[float] = []

    def slow(settings: Settings, previous: AuditState | None, now: float) -> check.AuditResult:
        started.append(time.monotonic())
        time.sleep(0.7)
        return fake(settings, previous, now)

    monkeypatch.setattr(check, "run_audit", slow)
    periodic = PeriodicAudit(dataclasses.replace(settings(tmp_path), audit_interval=1.0))
    periodic.start()
    try:
        fake.wait_for(3)
    finally:
        periodic.stop()
    gaps = [b - a for a, b in zip(started, started[1:], strict=False)]
    # 1.7 s at least when stretched, 0.7 s when the interval is not waited for at all: the
    # bounds leave 0.65 s and 0.25 s to a loaded machine.
    assert all(0.75 < gap < 1.65 for gap in gaps), gaps
