"""A periodic audit that cannot look is said once per episode: when it begins, when its reason
changes, and again after a check that looked; not at every AUDIT_INTERVAL while it lasts."""

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from portwarden.audit.periodic import Unchecked
from portwarden.daemon import Daemon
from portwarden.episode import Condition


def test_a_condition_is_news_when_it_begins_changes_or_ends() -> None:
    condition = Condition()
    assert not condition.changes(None)  # all is well, as before
    assert condition.changes("no address")
    assert not condition.changes("no address")
    assert condition.changes("tables unreadable")
    assert condition.changes(None)
    assert not condition.changes(None)
    assert condition.changes("no address")


class _Alerts:
    def __init__(self) -> None:
        self.unchecked: list[str] = []

    def audit_unchecked(self, reason: str, when: float) -> None:
        self.unchecked.append(reason)

    def audit(self, findings: Any, when: float) -> None:
        pass


def test_the_daemon_reports_nothing_checked_once_per_episode(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = _Alerts()
    daemon: Any = SimpleNamespace(_alerts=alerts, _audit_blind=Condition(),
                                  _save_audit_snapshot=lambda when, body: None)  # fmt: skip
    looked = SimpleNamespace(time=5.0, findings=(), state=SimpleNamespace(save=lambda path: None))
    monkeypatch.setattr("portwarden.daemon.state_path", lambda settings: None)
    monkeypatch.setattr("portwarden.daemon.summary", lambda result, warnings: {})
    daemon.settings, daemon._audit_warnings = None, frozenset()
    no_address = "no address to check (AUDIT_DEVICES: device eht0 is absent)"
    with caplog.at_level(logging.INFO, logger="portwarden"):
        for when in range(3):  # every AUDIT_INTERVAL on a host with loopback only
            Daemon._report_audit(daemon, Unchecked(float(when), no_address))
        assert alerts.unchecked == [no_address]
        assert daemon._audit_error == 1  # status and metrics say it at every check
        Daemon._report_audit(daemon, Unchecked(3.0, "the socket tables cannot be read"))
        Daemon._report_audit(daemon, (looked, []))
        assert daemon._audit_error == 0
        Daemon._report_audit(daemon, Unchecked(6.0, no_address))
    assert alerts.unchecked == [no_address, "the socket tables cannot be read", no_address]
    assert [r.getMessage() for r in caplog.records] == [
        "audit: checked again (the previous checks could not look)"
    ]
