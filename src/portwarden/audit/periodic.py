"""The daemon's periodic audit: run off the loop (it connects and waits for the portmapper),
every AUDIT_INTERVAL seconds, the first one right after start. Results wait for the loop in a
short queue; the loop reports them through the alert paths."""

import collections
import logging
import threading
import time

from portwarden.audit.check import AuditResult, audit_and_keep
from portwarden.config import Settings

log = logging.getLogger("portwarden")

RESULTS_MAX = 4  # results the loop has not taken yet; older ones are dropped


class PeriodicAudit(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="portwarden-audit", daemon=True)
        self.settings = settings
        self.results: collections.deque[tuple[AuditResult, list[str]]] = collections.deque(
            maxlen=RESULTS_MAX
        )
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.results.append(audit_and_keep(self.settings, True, time.time()))
            except Exception:  # an audit that fails must not end the periodic check
                log.exception("audit failed")
            self._stop_event.wait(self.settings.audit_interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
