"""Every report meant to be mailed, kept in the store (STATE_DIR's database) with its outcome,
so that a dead relay or a stop never loses one: a report not mailed yet is queued again at the
next start (if younger than SMTP_GIVE_UP_AFTER).

The mail thread writes most; the thread that finds the mail queue full, and the stop, write
the reports that never reached the thread: one connection per thread (sqlite3's rule). A store
that fails is said once (Outage) and mail goes on without it.
"""

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from portwarden import limits
from portwarden.alert.outage import Outage
from portwarden.store.db import Store, StoreError

# Outcomes. Not mailed yet: QUEUED (waiting or being sent), RETRYING (turned away for now),
# HELD (by MAIL_PER_HOUR). Over: SENT, LISTED (in the mail that lists held reports), FAILED.
QUEUED, RETRYING, HELD = "queued", "retrying", "held"
SENT, LISTED, FAILED = "sent", "listed", "failed"
NOT_MAILED = (QUEUED, RETRYING, HELD)

T = TypeVar("T")


class Report(NamedTuple):
    """One mail as written: `kind` scan-summary, os-summary, mail (already written: audit
    findings), rate-limit (the notice), held-summary; `made` (epoch) ages it for
    SMTP_GIVE_UP_AFTER; `id` its row in the store (0: not in it)."""

    kind: str
    subject: str
    body: str
    made: float
    id: int = 0


class ReportBook:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._lock = threading.Lock()  # Outage counts from several threads
        self.outage = Outage(f"mail report store {path}", "report records")

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self._path, durable=False)
        return store

    def _do(self, work: Callable[[Store], T], otherwise: T) -> T:
        """work(this thread's store), or `otherwise` when the store fails (said once)."""
        try:
            done = work(self._store())
        except (sqlite3.Error, StoreError, OSError) as error:
            with self._lock:
                self.outage.failed(str(error))
            return otherwise
        with self._lock:
            self.outage.worked()
        return done

    def add(self, kind: str, subject: str, body: str, outcome: str = QUEUED) -> Report:
        """The report, recorded now (its id 0 if the store failed)."""
        made = time.time()
        report_id = self._do(lambda store: store.add_report(
            made, kind, subject, body, outcome, limits.MAIL_REPORTS_KEPT_MAX), 0)  # fmt: skip
        return Report(kind, subject, body, made, report_id)

    def settle(self, report: Report, outcome: str, mailed: bool = False) -> None:
        if report.id:
            when = time.time() if mailed else None
            self._do(lambda store: store.set_report(report.id, outcome, when), None)

    def held_listed(self) -> None:
        """The mail that lists the held reports went: they are over."""
        self._do(lambda store: store.set_reports(HELD, LISTED, time.time()), None)

    def resume(self, give_up_s: float) -> list[Report]:
        """At start: the reports not mailed, younger than `give_up_s`, oldest first (at most
        limits.MAIL_RESUMED_MAX); those older than limits.MAIL_REPORTS_KEPT_S are removed."""
        now = time.time()

        def unmailed(store: Store) -> list[tuple[int, float, str, str, str]]:
            store.forget_reports(now - limits.MAIL_REPORTS_KEPT_S)
            return store.unmailed_reports(NOT_MAILED, now - give_up_s, limits.MAIL_RESUMED_MAX)

        rows: list[tuple[int, float, str, str, str]] = self._do(unmailed, [])
        return [Report(kind, subject, body, made, report_id)
                for report_id, made, kind, subject, body in rows]  # fmt: skip

    def close(self) -> None:
        """Close this thread's connection."""
        store: Store | None = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None
