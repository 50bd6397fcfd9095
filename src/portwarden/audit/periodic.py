"""The daemon's periodic audit: run off the loop (it connects and waits for the portmapper),
every AUDIT_INTERVAL seconds (from one check's start to the next's), the first one right after
start. Results wait for the loop in a
short queue; the loop reports them and then saves their state (STATE_DIR/audit.json).

Each check compares with the check before it, kept in memory, not with the file: the loop may
not have saved that one yet (it looks every TICK_S), and a check made meanwhile (a reload) would
report its findings again. The file is read once, at the start, for what the last run saw.
A finding that was never reported (a stop, a crash) is still found again after a restart, since
the file holds only what was reported."""

import collections
import logging
import threading
import time
from typing import NamedTuple

from portwarden import limits
from portwarden.audit import check
from portwarden.audit.state import AuditState
from portwarden.config import Settings

log = logging.getLogger("portwarden")


class Unchecked(NamedTuple):
    """A check that could not look (see NothingChecked): an error, so that a mistyped device
    name is not taken for a host without open ports; alerted when it begins or its reason
    changes (not at every check while it lasts), shown by the status after every check."""

    time: float
    reason: str


Outcome = tuple[check.AuditResult, list[str]] | Unchecked


class PeriodicAudit(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="portwarden-audit", daemon=True)
        self.settings = settings
        # Never more than AUDIT_RESULTS_WAITING_MAX: a check waits while the loop has not taken
        # them (it is stuck), so no result, and no finding, is dropped.
        most = limits.AUDIT_RESULTS_WAITING_MAX
        self.results: collections.deque[Outcome] = collections.deque(maxlen=most)
        self._wake = threading.Event()
        self._stopping = False

    def run(self) -> None:
        previous, warning = AuditState.load(check.state_path(self.settings))
        warnings = [warning] if warning else []  # said with the first check that looks
        while not self._stopping:
            # Cleared before the settings are read: a reload that comes after this, during the
            # check or the wait, ends the wait, so its new settings are never left unchecked.
            self._wake.clear()
            began = time.monotonic()
            if len(self.results) < limits.AUDIT_RESULTS_WAITING_MAX:
                outcome = self._check(previous, warnings)
                if not isinstance(outcome, Unchecked):
                    previous, warnings = outcome[0].state, []
                self.results.append(outcome)
            # From the start of the check, not its end: a slow portmapper (seconds of waiting)
            # does not stretch AUDIT_INTERVAL.
            self._wake.wait(max(0.0, began + self.settings.audit_interval - time.monotonic()))

    def _check(self, previous: AuditState | None, warnings: list[str]) -> Outcome:
        now = time.time()
        try:
            result = check.run_audit(self.settings, previous, now)
        except check.NothingChecked as error:
            return Unchecked(now, str(error))
        except Exception as error:  # an audit that fails must not end the periodic check
            log.exception("audit failed")
            return Unchecked(now, f"the audit failed ({type(error).__name__})")
        return result, [*warnings, *result.warnings]

    def reconfigure(self, settings: Settings) -> None:
        """New settings (SIGHUP): check now with them, then at the new interval."""
        self.settings = settings
        self._wake.set()

    def stop(self, wait: bool = True) -> None:
        """Stop after the check in progress, if any; `wait=False` in the loop, which must not
        block on it."""
        self._stopping = True
        self._wake.set()
        if wait:
            self.join(timeout=limits.AUDIT_STOP_WAIT_S)
