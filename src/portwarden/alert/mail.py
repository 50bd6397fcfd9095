"""One mail per scan, sent by one worker thread with a time limit; a rate limit per hour.

A dead or slow relay never reaches the packet path: the queue is bounded, each delivery has a
deadline, and a mail that cannot be sent is logged and counted. Every report is kept in the
store with its outcome (see reportbook), as well as in the JSON event log. A mail turned away
for now (a 4xx reply: a relay that greylists, or is busy; or a relay out of reach: a refused or
timed-out connection, a TLS handshake cut short) is tried again every SMTP_RETRY_DELAY, to the
recipients of MAIL_TO that do not have it yet (the store keeps which have it), until it is
SMTP_GIVE_UP_AFTER old; one not sent by the stop is mailed after the next start. Delivery is
at least once: a stop between the relay's reply and its record in the store sends the mail
again, with the same Message-ID. What a mail says is mail_text's.
"""

import contextlib
import heapq
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from portwarden import limits
from portwarden.alert.mail_text import (
    body,
    held_line,
    held_summary,
    rate_limit_notice,
    subject,
    subject_template,
)
from portwarden.alert.mailbudget import MailBudget
from portwarden.alert.outage import Outage
from portwarden.alert.reportbook import (
    FAILED,
    HELD,
    QUEUED,
    RATE_LIMIT,
    RETRYING,
    SENT,
    Report,
    ReportBook,
)
from portwarden.config import Settings
from portwarden.detect.engine import Verdict
from portwarden.net.resolve import Resolver
from portwarden.store.db import store_path
from portwarden.text import (
    are,
    counted,
    one_line,
    safe_hostname,
    utc_stamp,
)

if TYPE_CHECKING:
    from portwarden.alert.smtp import RelayLookup

log = logging.getLogger("portwarden")

# A scan report (verdict, what was done) or a mail already written (subject, text).
Job = tuple[Verdict | str, str]


class Wake:
    """Put in the queue by a reload that changed MAIL_PER_HOUR: the mail thread works out
    again when the hour has room (a higher cap may have room for held reports now)."""


class Retry(NamedTuple):
    """A mail turned away for now, by some or all of its recipients: tried again when due, to
    those of MAIL_TO (as it is then: a reload may change it) not `done`."""

    due: float  # the mailer's clock
    report: Report
    done: tuple[str, ...]  # delivered to, or refused for good
    delivered: bool  # an earlier try reached the others
    lost: bool  # an earlier try was refused for good by some
    tries: int  # the tries that turned it away for now, before a restart too


def quoted(subject: str) -> str:
    """A report's subject for a log line: escaped once (one_line), between single quotes."""
    return f"'{one_line(subject)}'"


def named(subjects: list[str], count: int | None = None) -> str:
    """Reports by subject, for a log line: the first MAIL_UNSENT_NAMED_MAX, then how many more
    (of `count` in all, when `subjects` has only the first)."""
    shown = ", ".join(quoted(s) for s in subjects[: limits.MAIL_UNSENT_NAMED_MAX])
    more = (len(subjects) if count is None else count) - limits.MAIL_UNSENT_NAMED_MAX
    return shown + (f" and {more} more" if more > 0 else "")


class Mailer(threading.Thread):
    """Mails reports from a bounded queue, at most MAIL_PER_HOUR (see mailbudget); every report
    is kept in the store with its outcome (see reportbook)."""

    def __init__(
        self,
        settings: Settings,
        on_hold: Callable[[float], None] = lambda reopens: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`on_hold(reopens)` is called (in the mail thread) when MAIL_PER_HOUR starts holding
        reports back, with the time (epoch) the hour has room again. `clock` is monotonic."""
        super().__init__(name="portwarden-mail", daemon=True)
        self.settings = settings
        self._on_hold = on_hold
        self._clock = clock
        self.jobs: queue.Queue[Job | Wake | None] = queue.Queue(limits.MAIL_QUEUE_MAX)  # None: stop
        self.budget = MailBudget()
        self._book = ReportBook(store_path(settings.state_dir))
        self._held: list[str] = []  # the first held reports (held_line), for the summary mail
        self._held_ids = range(0)  # the ids in the store of the reports held (of this hold)
        self._resolver = Resolver()
        self._relay_lookup: RelayLookup | None = None  # made with the first mail
        self._retries: list[Retry] = []  # a heap: the soonest due first
        self._pending: dict[Report, None] = {}  # taken, not over yet (in order)
        # Reports taken from the store, to be mailed when the thread has nothing newer to do;
        # `_stranded`: the store may hold more not mailed (see _stored_ready).
        self._stored: deque[Report] = deque()
        self._stranded = True
        self._queue_full = Outage(f"mail queue ({limits.MAIL_QUEUE_MAX} mails)", "reports")
        self.sent = 0  # mails delivered (to some recipient at least)
        # mails not delivered (to some recipient at least): relay errors, a full queue, left
        # at stop. A mail waiting to be tried again is not counted yet.
        self.failed = 0
        self.withheld = 0  # reports held back by MAIL_PER_HOUR
        self._stopping = False
        self._gave_up = False  # the stop stopped waiting: later outcomes are not counted

    def wants(self, verdict: Verdict) -> bool:
        s = self.settings
        if verdict.kind == "os-summary":
            return s.mail_on_os_probe
        if verdict.kind != "scan-summary":
            return False
        return s.mail_on_tcp_scan if verdict.probe.proto.value == "tcp" else s.mail_on_udp_scan

    def submit(self, verdict: Verdict | str, text: str) -> None:
        """A scan report (verdict, action), or a mail already written (subject, text). When
        the queue is full, the report is kept in the store (mailed after a restart) and the
        episode is said once when it begins and once, with a count, when it ends."""
        if self._stopping:
            return
        try:
            self.jobs.put_nowait((verdict, text))
        except queue.Full:
            self.failed += 1
            self._stranded = True
            report = self._render((verdict, text))
            self._queue_full.failed(
                f"full: report {report.subject!r} was not mailed (it is in "
                "the store and the JSON event log)"
            )
            return
        self._queue_full.worked()

    def reconfigure(self, settings: Settings) -> None:
        """SIGHUP: new settings, for the next turn. A new MAIL_PER_HOUR wakes the thread, so
        that held reports a higher cap has room for are listed at once, not at the next report
        (a full queue needs no wake: the thread has work)."""
        changed = settings.mail_per_hour != self.settings.mail_per_hour
        self.settings = settings
        if changed and not self._stopping:
            with contextlib.suppress(queue.Full):
                self.jobs.put_nowait(Wake())

    def stop(self, wait_s: float = limits.MAIL_STOP_WAIT_S) -> None:
        """Send what is queued, for at most `wait_s`: a hung relay cannot hold the stop. Every
        report still not mailed then (queued, taken from the store, turned away for now, or
        waiting in the store) is counted as failed and named in one line; it stays in the
        store, to be mailed after a restart. The reports MAIL_PER_HOUR holds back stay held
        there, for the one mail that lists them."""
        if self.ident is None or self._stopping:
            return
        self._stopping = True
        until = time.monotonic() + wait_s
        with contextlib.suppress(queue.Full):
            self.jobs.put(None, timeout=min(1.0, wait_s))
        self.join(timeout=max(0.0, until - time.monotonic()))
        unsent = list(self._pending)
        if self.is_alive():
            self._gave_up = True
            with contextlib.suppress(queue.Empty):
                while (job := self.jobs.get_nowait()) is not None:
                    if not isinstance(job, Wake):
                        unsent.append(self._render(job))
        # The store has the others (taken from it, or still waiting there); the reports it
        # could not record are only here.
        waiting = self._book.waiting(limits.MAIL_UNSENT_NAMED_MAX)
        self._book.close()
        unrecorded = [r.subject for r in unsent if not r.id]
        count = len(unrecorded) + waiting.total
        s = self.settings
        if count:
            self.failed += count
            log.error(
                "%s not sent by the stop (relay %s port %d, %g s): %s; %s in the store "
                "and mailed after a restart (if within SMTP_GIVE_UP_AFTER=%g s)",
                counted(count, "mail"),
                s.smtp_relay,
                s.smtp_port,
                wait_s,
                named(unrecorded + waiting.subjects, count),
                "it is" if count == 1 else "they are",
                s.smtp_give_up_after,
            )
        if self.budget.held:
            held = self.budget.held
            log.warning(
                "%s held back by MAIL_PER_HOUR=%d %s kept in the store, still held: one "
                "mail will list %s after a restart, once MAIL_PER_HOUR has room (%s in "
                "the JSON event log)",
                counted(held, "report"),
                self.budget.held_under,
                are(held),
                "it" if held == 1 else "them",
                "it is" if held == 1 else "they are",
            )

    def run(self) -> None:
        self._start()
        try:
            while True:
                now = self._clock()
                stored = self._stored_ready()
                wake = now if stored else self._wake_at(now)
                try:
                    job = self.jobs.get(timeout=None if wake is None else max(0.0, wake - now))
                except queue.Empty:  # room for the summary of held reports, a mail to retry,
                    # or one from the store
                    self.work(self._stored.popleft() if stored else None)
                    continue
                if job is None:
                    self.work(None, stopping=True)
                    return
                if not isinstance(job, Wake):  # a wake only has the next wait worked out
                    self.work(job)
        finally:
            self._book.close()

    def _start(self) -> None:
        """MAIL_PER_HOUR starts from the mails of the last hour (a daemon that restarts again
        and again sends no more) and goes on with the hold of before the stop, if there was
        one (its reports stay held, to be listed in one mail); the reports not mailed before
        the stop are taken from the store."""
        held = self._book.start()
        tried, noticed = self._book.last_hour(limits.MAIL_PER_HOUR_WINDOW_S)
        self.budget = MailBudget(
            [self._monotonic(t) for t in tried],
            None if noticed is None else self._monotonic(noticed),
            0 if held is None else held.total,
            None if held is None else self._monotonic(held.since),
            # the store keeps no cap: the hold goes on under this one
            None if held is None else self.settings.mail_per_hour,
        )
        if held is not None:
            self._held = [held_line(report) for report in held.first]
            self._held_ids = held.ids
            per_hour = self.settings.mail_per_hour
            reopens = self.budget.reopens_at(self._clock(), per_hour) or self._clock()
            log.info(
                "%s held back by MAIL_PER_HOUR before the last stop %s still held: one "
                "mail will list %s (MAIL_PER_HOUR=%d) at %s",
                counted(held.total, "report"),
                are(held.total),
                "it" if held.total == 1 else "them",
                per_hour,
                utc_stamp(self._wall(reopens)),
            )
        self._load("not mailed before the last stop")

    def _stored_ready(self) -> bool:
        """Whether a report from the store is to be mailed now: there are some not mailed, and
        the thread has room (fewer than limits.MAIL_RETRIES_MAX mails wait to be tried again,
        MAIL_PER_HOUR holds none back). A new report goes first (see run)."""
        if self.budget.held or len(self._retries) >= limits.MAIL_RETRIES_MAX:
            return False
        if not self._stored and self._stranded:
            self._load("waiting in the store")
        return bool(self._stored)

    def _load(self, which: str) -> None:
        """Take the next reports not mailed from the store (at most limits.MAIL_RESUMED_MAX);
        those older than SMTP_GIVE_UP_AFTER are given up, in one line."""
        s = self.settings
        skip = tuple(r.id for r in (*self._pending, *self._stored) if r.id)
        found = self._book.unmailed(s.smtp_give_up_after, limits.MAIL_RESUMED_MAX, skip)
        self._stranded = found.left > 0
        if found.given_up:
            given_up = len(found.given_up)
            log.error(
                "%s %s %s older than SMTP_GIVE_UP_AFTER=%g s: given up, not "
                "mailed (failed in the store): %s",
                counted(given_up, "report"),
                which,
                are(given_up),
                s.smtp_give_up_after,
                named(found.given_up),
            )
        if found.reports:
            log.info(
                "%s %s %s queued again: %s%s",
                counted(len(found.reports), "report"),
                which,
                are(len(found.reports)),
                named([r.subject for r in found.reports]),
                f"; {found.left} more stay in the store, queued as these are done"
                if found.left
                else "",
            )
        self._stored.extend(found.reports)

    def _wake_at(self, now: float) -> float | None:
        """When to work with no new job: the hour has room for the summary of held reports, or
        a mail is due to be tried again."""
        times = [self.budget.reopens_at(now, self.settings.mail_per_hour)]
        times += [self._retries[0].due] if self._retries else []
        return min((t for t in times if t is not None), default=None)

    def work(self, job: Job | Report | None, stopping: bool = False) -> None:
        """One turn, at the clock's time: first the summary of held reports if the hour has
        room for it, then the mails due to be tried again (at the stop, all of them), then
        `job` (if any: a report to write, or one from the store) is mailed, or held back."""
        try:
            now, per_hour = self._clock(), self.settings.mail_per_hour
            since, under = self.budget.held_since, self.budget.held_under
            held = self.budget.release(now, per_hour)
            if held and since is not None:
                self._send_held(held, since, under or per_hour)
            self._retry(now, stopping)
            if job is None:
                return
            if self.budget.admit(now, per_hour):
                until = time.monotonic() + deadline_s(self.settings)
                report = job if isinstance(job, Report) else self._render(job, until)
                self._book.tried(report)
                self._send(report, until)
                return
            self.withheld += 1
            if isinstance(job, Report):
                held_report = job
                self._pending.pop(job, None)
                self._book.settle(job, HELD)
            else:
                held_report = self._render(job, outcome=HELD)
            if held_report.id:  # the summary mail lists this hold's ids in the store
                ids, new = self._held_ids, held_report.id
                self._held_ids = (
                    range(min(ids.start, new), max(ids.stop, new + 1))
                    if ids
                    else range(new, new + 1)
                )
            if len(self._held) < limits.MAIL_HELD_LISTED_MAX:
                self._held.append(held_line(held_report))
            if self.budget.held == 1:  # the hold begins
                self._hold_began(now, per_hour)
        except Exception:  # a bad report must not end the mail thread
            self.failed += 1
            log.exception("mail report failed")

    def _retry(self, now: float, stopping: bool) -> None:
        """The mails due to be tried again (at the stop, all of them). One the relay as a whole
        turns away once more (out of reach, or a 4xx to the mail: see DeliveryFailed) puts off
        the others due now by SMTP_RETRY_DELAY: it is still not taking mail. One that only some
        recipient turns away (greylisting) holds back no other."""
        while self._retries and (stopping or self._retries[0].due <= now):
            retry = heapq.heappop(self._retries)
            if self._send(retry.report, retry=retry) and not stopping:
                later = self._clock() + self.settings.smtp_retry_delay
                self._retries = [r._replace(due=max(r.due, later)) for r in self._retries]
                heapq.heapify(self._retries)
                return

    def _send_held(self, held: int, since: float, per_hour: int) -> None:
        """The mail that lists the reports held back (the first MAIL_HELD_LISTED_MAX) by
        `per_hour`, the cap in force when the hold began (a reload may have changed it)."""
        listed, self._held = self._held, []
        self._book.held_listed(self._held_ids)
        self._held_ids = range(0)
        self._mail(
            "held-summary", *held_summary(held, listed, self._wall(since), per_hour), counted=True
        )

    def _hold_began(self, now: float, per_hour: int) -> None:
        """Said (log, syslog, JSON: see _on_hold) and mailed once an hour at most, as the
        notice is: a hold that begins within the hour of the last notice, after a restart too
        (the store has the notice), is said at debug level only."""
        reopens = self._wall(self.budget.reopens_at(now, per_hour) or now)
        if not self.budget.notice_allowed(now):
            said = self._wall(self.budget.noticed or now)
            log.debug(
                "mail rate limit still reached (said at %s): reports are held back until %s",
                utc_stamp(said),
                utc_stamp(reopens),
            )
            return
        self._on_hold(reopens)
        self._mail(RATE_LIMIT, *rate_limit_notice(per_hour, reopens))

    def _wall(self, monotonic: float) -> float:
        return time.time() + (monotonic - self._clock())

    def _monotonic(self, wall: float) -> float:
        return self._clock() - (time.time() - wall)

    def _mail(self, kind: str, title: str, text: str, counted: bool = False) -> None:
        """A mail of our own (the rate-limit notice, the list of held reports); `counted`: by
        MAIL_PER_HOUR."""
        report = self._book.add(kind, title, text)
        if counted:
            self._book.tried(report)
        self._send(report)

    def _render(self, job: Job, until: float | None = None, outcome: str = QUEUED) -> Report:
        """The report written and recorded in the store. With `until` (the delivery's deadline,
        monotonic), the source's name is looked up (RESOLVE_HOST) within it; without, it is
        left out (a report not mailed now: held, or the queue is full)."""
        verdict, text = job
        if isinstance(verdict, str):
            return self._book.add("mail", verdict, text, outcome)
        name = (
            self._source_name(verdict, until)
            if until is not None and self.settings.resolve_host
            else None
        )
        template = subject_template(self.settings.mail_subject, verdict)
        return self._book.add(
            verdict.kind,
            subject(template, verdict),
            body(verdict, name, text, socket.gethostname()),
            outcome,
        )

    def _source_name(self, verdict: Verdict, until: float) -> str | None:
        """The source's name, looked up for at most RESOLVE_HOST_TIMEOUT_S (a dead name server
        takes several seconds a lookup), within the delivery's deadline."""
        wait = min(limits.RESOLVE_HOST_TIMEOUT_S, until - time.monotonic())
        name = Resolver.name(self._resolver.start(verdict.probe.src), wait)
        return None if name is None else safe_hostname(name)

    def _send(self, report: Report, until: float | None = None, retry: Retry | None = None) -> bool:
        """Deliver one report by `until` (monotonic; default: the whole deadline from now), to
        the recipients of MAIL_TO that do not have it yet (when it is tried again, `retry`, or
        was taken from the store). True if the relay as a whole turned it away for now (see
        DeliveryFailed.relay_wide): it is kept to be tried again."""
        from portwarden.alert.smtp import DeliveryFailed, RelayLookup, deliver, temporary

        s = self.settings
        if self._relay_lookup is None:
            self._relay_lookup = RelayLookup()
        if until is None:
            until = time.monotonic() + deadline_s(s)
        done, delivered, lost, tries = (
            (report.done, report.reached, False, report.tries)
            if retry is None
            else (retry.done, retry.delivered, retry.lost, retry.tries)
        )
        recipients = self._to_do(done)
        if not recipients:  # a reload took the others out of MAIL_TO
            self._over(report, delivered, lost)
            return False
        self._pending[report] = None
        try:
            refused = deliver(s, report, until, self._relay_lookup, recipients)
        except DeliveryFailed as error:
            for_good = tuple(a for a in recipients if a not in error.deferred)
            lost_now = lost or bool(for_good)
            if error.deferred and self._defer(
                report, done + for_good, delivered, lost_now, error, tries + 1
            ):
                return error.relay_wide
            # Said by _defer when it gave up; by the stop when it stopped waiting.
            if not (error.deferred or self._gave_up):
                log.error(
                    "mail %s to %s via %s port %d failed: %s",
                    quoted(report.subject),
                    ", ".join(recipients),
                    s.smtp_relay,
                    s.smtp_port,
                    error,
                )
            self._over(report, delivered, lost=True)
            return False
        # The relay took the mail for the others (smtplib raises only if for none).
        deferred = tuple(a for a, (code, _) in refused.items() if temporary(code))
        refused_said = [
            f"{address} ({reply})"
            for address, (_, reply) in refused.items()
            if address not in deferred
        ]
        if refused_said:
            log.error(
                "mail %s via %s port %d: the relay refused %s; sent to the others",
                quoted(report.subject),
                s.smtp_relay,
                s.smtp_port,
                "; ".join(refused_said),
            )
        reached = [a for a in recipients if a not in refused]
        if tries and reached:  # after `not delivered ... for now` warnings
            log.info(
                "mail %s via %s port %d: delivered to %s after %s",
                quoted(report.subject),
                s.smtp_relay,
                s.smtp_port,
                ", ".join(reached),
                counted(tries + 1, "try", "tries"),
            )
        why = "; ".join(refused[a][1] for a in deferred)
        done += tuple(a for a in recipients if a not in deferred)
        if deferred and self._defer(report, done, True, lost or bool(refused_said), why, tries + 1):
            return False
        self._over(report, True, lost or bool(refused))
        return False

    def _to_do(self, done: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a for a in self.settings.mail_to if a not in done)

    def _defer(
        self,
        report: Report,
        done: tuple[str, ...],
        delivered: bool,
        lost: bool,
        why: object,
        tries: int,
    ) -> bool:
        """Keep a report turned away for now (`tries` times so far), to try it again after
        SMTP_RETRY_DELAY to those not `done`; at the stop it stays in the store (mailed after a
        restart, to those only).
        False when it is over: older than SMTP_GIVE_UP_AFTER. A report past
        limits.MAIL_RETRIES_MAX waiting is kept only in the store, until the thread has room
        (a relay that turns every mail away)."""
        s = self.settings
        recipients = self._to_do(done)
        age = time.time() - report.made
        if age >= s.smtp_give_up_after:
            log.error(
                "mail %s via %s port %d: not delivered to %s: %s; giving up: it is %.0f s "
                "old (SMTP_GIVE_UP_AFTER)",
                quoted(report.subject),
                s.smtp_relay,
                s.smtp_port,
                ", ".join(recipients),
                why,
                age,
            )
            return False
        self._book.settle(report, RETRYING, done=done, reached=delivered, tries=tries)
        if not self._stopping and len(self._retries) >= limits.MAIL_RETRIES_MAX:
            log.error(
                "mail %s via %s port %d: not tried again until fewer mails wait (it is in "
                "the store): %d mails wait already",
                quoted(report.subject),
                s.smtp_relay,
                s.smtp_port,
                len(self._retries),
            )
            self._pending.pop(report, None)
            self._stranded = True
            self._settle(delivered, lost=True)
            return True
        if self._stopping:  # named again by the stop's line
            then = "kept for after a restart"
        else:
            due = self._clock() + s.smtp_retry_delay
            heapq.heappush(self._retries, Retry(due, report, done, delivered, lost, tries))
            then = f"trying again in {s.smtp_retry_delay:g} s"
        log.warning(
            "mail %s via %s port %d: not delivered to %s for now (%s); %s",
            quoted(report.subject),
            s.smtp_relay,
            s.smtp_port,
            ", ".join(recipients),
            why,
            then,
        )
        return True

    def _over(self, report: Report, delivered: bool, lost: bool) -> None:
        """A report's last try is over."""
        self._pending.pop(report, None)
        self._book.settle(report, SENT if delivered else FAILED, mailed=delivered)
        self._settle(delivered, lost)

    def _settle(self, delivered: bool, lost: bool) -> None:
        """Count a mail once its last try is over: sent if it reached some recipient, failed
        if it missed some."""
        if not self._gave_up:
            self.sent += delivered
            self.failed += lost


def deadline_s(settings: Settings) -> float:
    """The most one delivery may take: SMTP_TIMEOUT x MAIL_DELIVERY_TIMEOUTS."""
    return settings.smtp_timeout * limits.MAIL_DELIVERY_TIMEOUTS
