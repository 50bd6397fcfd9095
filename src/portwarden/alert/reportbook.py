"""Every report meant to be mailed, kept in the store (STATE_DIR's database) with its outcome,
so that a dead relay or a stop never loses one: a report not mailed yet is queued again at the
next start, or as soon as the mail thread has room (if younger than SMTP_GIVE_UP_AFTER; older,
it is given up: FAILED), to the recipients that do not have it yet. One MAIL_PER_HOUR held back
stays held across a restart: the hold goes on, and one mail lists its reports.

The mail thread writes most; the thread that finds the mail queue full, and the stop, write
the reports that never reached the thread: one connection per thread (sqlite3's rule). A store
that fails is said once (Outage) and mail goes on without it.
"""

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from portwarden import limits
from portwarden.alert.outage import Outage
from portwarden.store.db import Store, StoreError

# Outcomes. Not mailed yet: QUEUED (waiting or being sent), RETRYING (turned away for now),
# HELD (by MAIL_PER_HOUR). Over: SENT, LISTED (in the mail that lists held reports), FAILED.
QUEUED, RETRYING, HELD = "queued", "retrying", "held"
SENT, LISTED, FAILED = "sent", "listed", "failed"
RATE_LIMIT = "rate-limit"  # the kind of the notice that MAIL_PER_HOUR holds reports back
_WAITING = (QUEUED, RETRYING)  # not mailed, and to be: not one held back

T = TypeVar("T")


class Report(NamedTuple):
    """One mail as written: `kind` scan-summary, os-summary, mail (already written: audit
    findings), rate-limit (the notice), held-summary; `made` (epoch) ages it for
    SMTP_GIVE_UP_AFTER; `id` its row in the store (0: not in it); as the store had it when it
    was loaded from there: `done` the recipients that need it no more (delivered to or refused
    for good), `reached` whether it was delivered to some, `tries` how many tries turned it
    away for now."""

    kind: str
    subject: str
    body: str
    made: float
    id: int = 0
    done: tuple[str, ...] = ()
    reached: bool = False
    tries: int = 0


class Unmailed(NamedTuple):
    """Reports taken from the store to be mailed (oldest first); the subjects of those given up
    (older than SMTP_GIVE_UP_AFTER); how many more are left in the store."""

    reports: list[Report]
    given_up: list[str]
    left: int


class Held(NamedTuple):
    """The reports MAIL_PER_HOUR held back before the stop, whose list never went: how many,
    the first few (oldest first), their ids in the store (every one in this range that is still
    held is one of them), and when the oldest was made (epoch)."""

    total: int
    first: list[Report]
    ids: range
    since: float


class Waiting(NamedTuple):
    """The reports in the store that wait to be mailed (queued or turned away for now): the
    subjects of the first few (oldest first), and how many in all."""

    subjects: list[str]
    total: int


def _reports(rows: list[tuple[Any, ...]]) -> list[Report]:
    """Reports as the store has them (Store.unmailed_reports' rows)."""
    return [
        Report(
            kind,
            subject,
            body,
            made,
            report_id,
            tuple(filter(None, done.split("\n"))),
            bool(reached),
            tries,
        )
        for report_id, made, kind, subject, body, done, reached, tries in rows
    ]


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
        report_id = self._do(
            lambda store: store.add_report(
                made, kind, subject, body, outcome, limits.MAIL_REPORTS_KEPT_MAX
            ),
            0,
        )
        return Report(kind, subject, body, made, report_id)

    def settle(
        self,
        report: Report,
        outcome: str,
        mailed: bool = False,
        done: tuple[str, ...] = (),
        reached: bool = False,
        tries: int | None = None,
    ) -> None:
        """Its outcome; `done`, `reached` and `tries` as in Report (for a report tried again
        later; `tries` None: as it was)."""
        if report.id:
            when = time.time() if mailed else None
            self._do(
                lambda store: store.set_report(report.id, outcome, when, done, reached, tries), None
            )

    def tried(self, report: Report) -> None:
        """MAIL_PER_HOUR counted it now."""
        if report.id:
            self._do(lambda store: store.set_tried(report.id, time.time()), None)

    def last_hour(self, hour_s: float) -> tuple[list[float], float | None]:
        """For a start's MAIL_PER_HOUR: the times (epoch) it counted mails in the last
        `hour_s`, and when the notice that it held reports back went in it (None: not)."""
        since = time.time() - hour_s

        def last_hour(store: Store) -> tuple[list[float], float | None]:
            return store.tried_since(since), store.made_since(RATE_LIMIT, since)

        nothing: tuple[list[float], float | None] = ([], None)
        return self._do(last_hour, nothing)

    def held_listed(self, ids: range) -> None:
        """The mail that lists the held reports with these ids went: they are over."""
        self._do(lambda store: store.list_reports(ids, HELD, LISTED, time.time()), None)

    def start(self) -> Held | None:
        """At start: reports older than limits.MAIL_REPORTS_KEPT_S are removed. Returns those
        MAIL_PER_HOUR held back before the stop (their list never went: they stay held, for
        the list to come), the first limits.MAIL_HELD_LISTED_MAX in full; None: none."""
        now = time.time()

        def started(store: Store) -> Held | None:
            store.forget_reports(now - limits.MAIL_REPORTS_KEPT_S)
            span = store.unmailed_span(HELD)
            if span is None:
                return None
            count, low, high, since = span
            first = store.unmailed_reports((HELD,), 0.0, limits.MAIL_HELD_LISTED_MAX)
            return Held(count, _reports(first), range(low, high + 1), since)

        return self._do(started, None)

    def waiting(self, most: int) -> Waiting:
        """The reports that wait to be mailed (at a stop: those it leaves to the next start)."""

        def waiting(store: Store) -> Waiting:
            rows = store.unmailed_reports(_WAITING, 0.0, most)
            return Waiting([row[3] for row in rows], store.unmailed_count(_WAITING))

        return self._do(waiting, Waiting([], 0))

    def unmailed(self, give_up_s: float, most: int, skip: tuple[int, ...]) -> Unmailed:
        """The reports not mailed (queued or turned away for now: not one held back now),
        younger than `give_up_s`, oldest first, at most `most`, but those with an id in `skip`
        (in the mail thread already); the older ones are given up (FAILED)."""
        since = time.time() - give_up_s

        def unmailed(store: Store) -> Unmailed:
            given_up = store.give_up_reports(_WAITING, since, FAILED)
            rows = store.unmailed_reports(_WAITING, since, most, skip)
            left = store.unmailed_count(_WAITING) - len(rows) - len(skip)
            return Unmailed(_reports(rows), given_up, max(0, left))

        return self._do(unmailed, Unmailed([], [], 0))

    def close(self) -> None:
        """Close this thread's connection."""
        store: Store | None = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None
