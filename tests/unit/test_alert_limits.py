"""The alert paths limit themselves and say so once: a flood of audit findings becomes one
counted line, a missing syslog socket one warning."""

import json
import logging
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.alert.syslog import Syslog
from portwarden.audit.findings import Finding, Kind
from portwarden.config import load_settings


def test_audit_findings_past_the_cap_are_counted_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\n')
    alerts = Alerts(load_settings(conf))
    total = limits.AUDIT_FINDINGS_REPORTED_MAX + 50
    findings = [Finding(Kind.NEW, "crit", "198.18.0.1", 20000 + n, "udp", "unknown")
                for n in range(total)]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        alerts.audit(findings, 0.0)
    alerts.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == limits.AUDIT_FINDINGS_REPORTED_MAX + 1
    assert lines[-1].startswith("audit: 50 more findings not shown")
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("audit") == limits.AUDIT_FINDINGS_REPORTED_MAX
    assert events[-1] == {"time": events[-1]["time"], "event": "audit-suppressed", "count": 50}


def test_a_missing_syslog_socket_is_said_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    syslog = Syslog(tmp_path / "no-such-log", "daemon")
    with caplog.at_level(logging.INFO, logger="portwarden"):
        assert not any(syslog.send(f"line {n}") for n in range(5))
    assert syslog.dropped == 5
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"syslog: cannot send to {tmp_path / 'no-such-log'} (No such file or directory)"
    ]
