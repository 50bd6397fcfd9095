"""A periodic audit that cannot look is said once per episode: when it begins, when its reason
changes, and again after a check that looked; not at every AUDIT_INTERVAL while it lasts."""

import json
import logging
from pathlib import Path

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.audit.check import AuditResult, state_path
from portwarden.audit.periodic import Unchecked
from portwarden.audit.reporting import AuditReports
from portwarden.audit.state import AuditState
from portwarden.config import load_settings
from portwarden.episode import Condition
from portwarden.store.db import Store, store_path


def test_a_condition_is_news_when_it_begins_changes_or_ends() -> None:
    condition = Condition()
    assert not condition.changes(None)  # all is well, as before
    assert condition.changes("no address")
    assert not condition.changes("no address")
    assert condition.changes("tables unreadable")
    assert condition.changes(None)
    assert not condition.changes(None)
    assert condition.changes("no address")


def test_the_daemon_reports_nothing_checked_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\n')
    settings = load_settings(conf)
    alerts = Alerts(settings)
    store = Store(store_path(settings.state_dir))
    reports = AuditReports(alerts, store)
    looked = AuditResult(5.0, ("lo",), (), (), (), AuditState())
    no_address = "no address to check (AUDIT_DEVICES: device eht0 is absent)"
    unreadable = "the socket tables cannot be read"
    with caplog.at_level(logging.INFO, logger="portwarden"):
        for when in range(3):  # every AUDIT_INTERVAL on a host with loopback only
            reports.report(Unchecked(float(when), no_address), state_path(settings))
        assert reports.error == 1  # status and metrics say it at every check
        assert store.snapshot("audit") == (2.0, reports.last)
        reports.report(Unchecked(3.0, unreadable), state_path(settings))
        for _ in range(2):
            reports.report((looked, ["a warning"]), state_path(settings))
        assert reports.error == 0 and reports.last_run == 5.0
        assert AuditState.load(state_path(settings)) == (AuditState(), None)
        reports.report(Unchecked(6.0, no_address), state_path(settings))
    alerts.close()
    store.close()
    assert settings.event_log is not None  # EVENT_LOG is on by default
    events = [json.loads(line) for line in settings.event_log.read_text().splitlines()]
    assert [e["reason"] for e in events if e["event"] == "audit-unchecked"] == [
        no_address,
        unreadable,
        no_address,
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"audit: nothing was checked: {no_address}",
        f"audit: nothing was checked: {unreadable}",
        "audit: checked again (the previous checks could not look)",
        "audit: a warning",
        f"audit: nothing was checked: {no_address}",
    ]
    assert reports.last is not None and reports.last["error"] == no_address
