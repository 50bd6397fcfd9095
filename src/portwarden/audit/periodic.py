"""The daemon's periodic audit: run off the loop (it connects and waits for the portmapper),
every AUDIT_INTERVAL seconds, the first one right after start. Results wait for the loop in a
short queue. The loop reports them and only then keeps the new state, so a finding that was
never reported (a stop, a crash) is found again by the next check instead of being lost."""

import collections
import logging
import threading
import time
from typing import NamedTuple

from portwarden.audit.check import AuditResult, NothingChecked, audit_and_keep
from portwarden.config import Settings

log = logging.getLogger("portwarden")

RESULTS_MAX = 4  # results the loop has not taken yet; older ones are found again next time
STOP_WAIT_S = 10.0  # the longest a stop waits for a check in progress


class Unchecked(NamedTuple):
    """A check that could not look (see NothingChecked): reported at every check, like a
    finding, so that a mistyped device name is not taken for a host without open ports."""

    time: float
    reason: str


Outcome = tuple[AuditResult, list[str]] | Unchecked


class PeriodicAudit(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="portwarden-audit", daemon=True)
        self.settings = settings
        self.results: collections.deque[Outcome] = collections.deque(maxlen=RESULTS_MAX)
        self._wake = threading.Event()
        self._stopping = False

    def run(self) -> None:
        while not self._stopping:
            now = time.time()
            try:
                self.results.append(audit_and_keep(self.settings, True, now, save=False))
            except NothingChecked as error:
                self.results.append(Unchecked(now, str(error)))
            except Exception as error:  # an audit that fails must not end the periodic check
                log.exception("audit failed")
                self.results.append(Unchecked(now, f"the audit failed ({type(error).__name__})"))
            self._wake.wait(self.settings.audit_interval)
            self._wake.clear()

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
            self.join(timeout=STOP_WAIT_S)
