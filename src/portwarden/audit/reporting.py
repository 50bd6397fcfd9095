"""The daemon's reports of its periodic audit (see periodic): a check's findings alerted, then
its state kept (STATE_DIR/audit.json: a finding is news until it has been reported), and the
check as `portwarden status` shows it kept in the store. What holds check after check is said
once, not at every AUDIT_INTERVAL while it lasts: a check that cannot look when that begins or
its reason changes (and that checks look again when it ends), a warning when it appears."""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from portwarden.audit.findings import Finding
from portwarden.audit.periodic import Outcome, Unchecked
from portwarden.audit.report import summary, unchecked_summary
from portwarden.episode import Condition
from portwarden.store.db import Store

log = logging.getLogger("portwarden")


class Alerts(Protocol):
    """What the reports need of alert.dispatch.Alerts (audit does not import alert, which
    imports audit's findings)."""

    def audit(self, findings: Sequence[Finding], when: float) -> None: ...

    def audit_unchecked(self, reason: str, when: float) -> None: ...


class AuditReports:
    def __init__(self, alerts: Alerts, store: Store) -> None:
        self._alerts = alerts
        self._store = store
        self.last: dict[str, Any] | None = None  # the last check, as `status` shows it
        self.findings = 0  # of the last check that looked
        self.last_run = 0.0  # when the last check was made (time.time())
        self.error = 0  # 1: the last check could not look (the findings stay the last known)
        self._warnings: frozenset[str] = frozenset()  # the last check's, logged already
        self._blind = Condition()  # why the last check could not look; None: it did

    def report(self, outcome: Outcome, state_file: Path) -> None:
        """Report a check (`state_file`: where its state is kept, see check.state_path)."""
        self.last_run = outcome.time if isinstance(outcome, Unchecked) else outcome[0].time
        self.error = int(isinstance(outcome, Unchecked))
        if self._blind.changes(outcome.reason if isinstance(outcome, Unchecked) else None):
            if isinstance(outcome, Unchecked):
                self._alerts.audit_unchecked(outcome.reason, outcome.time)
            else:
                log.info("audit: checked again (the previous checks could not look)")
        if isinstance(outcome, Unchecked):
            self._keep(outcome.time, unchecked_summary(outcome.time, outcome.reason))
            return
        result, warnings = outcome
        for warning in warnings:
            if warning not in self._warnings:
                log.warning("audit: %s", warning)
        self._warnings = frozenset(warnings)
        self._alerts.audit(result.findings, result.time)
        try:  # only now: a finding is news until it has been reported
            result.state.save(state_file)
        except OSError as error:
            log.warning("audit: cannot keep the audit state: %s", error)
        self.findings = len(result.findings)
        self._keep(result.time, summary(result, warnings))

    def _keep(self, when: float, body: dict[str, Any]) -> None:
        self.last = body
        try:
            self._store.save_snapshot("audit", when, body)
        except Exception:  # noqa: BLE001 - a snapshot must never stop the daemon
            log.exception("saving the audit snapshot failed")
