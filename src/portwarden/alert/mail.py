"""One mail per scan, sent by one worker thread with a time limit; a rate limit per hour.

A dead or slow relay never reaches the packet path: the queue is bounded, each delivery has a
deadline, and a mail that cannot be sent is logged and counted (the event itself is in the JSON
log and the store regardless).
"""

import contextlib
import logging
import queue
import socket
import textwrap
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from portwarden import limits
from portwarden.alert.mailbudget import MailBudget
from portwarden.config import Settings
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Proto
from portwarden.respond.actions import safe_hostname
from portwarden.respond.resolve import Resolver
from portwarden.text import local_stamp, one_line, port_count

if TYPE_CHECKING:
    from portwarden.alert.smtp import RelayLookup

log = logging.getLogger("portwarden")

# A scan report (verdict, what was done) or a mail already written (subject, text).
Job = tuple[Verdict | str, str]


def protocol(verdict: Verdict) -> str:
    """The summary's protocol (a scan has one); for OS probing, those its probes used."""
    if verdict.kind == "os-summary":
        # A pattern is "udp", or "udp/U1" with nmap's name for the probe (see Verdict).
        return "+".join(sorted({"UDP" if pattern.split("/")[0] == "udp" else "TCP"
                                for pattern in verdict.patterns}))  # fmt: skip
    return verdict.probe.proto.value.upper()


def subject(template: str, verdict: Verdict) -> str:
    """MAIL_SUBJECT with scandetd's macros: %p protocol, %s source, %d destination. Only the
    values put in are escaped: the administrator's own text (printable, on one line: checked
    at load) stays as written, and EmailMessage encodes what is not ASCII (RFC 2047)."""
    p = verdict.probe
    values = {"p": protocol(verdict), "s": str(p.src), "d": str(p.dst)}
    values = {macro: one_line(value) for macro, value in values.items()} | {"%": "%"}
    out, i = [], 0
    while i < len(template):
        if template[i] == "%" and i + 1 < len(template) and template[i + 1] in values:
            out.append(values[template[i + 1]])
            i += 2
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def scan_type(verdict: Verdict) -> str:
    if verdict.kind == "os-summary":
        return f"OS fingerprinting probe ({', '.join(verdict.types)})"
    return ", ".join(verdict.types) or verdict.probe.scan


def body(verdict: Verdict, name: str | None, action: str, host: str) -> str:
    """Every field an administrator needs to act, one per line. `host`: this host's name (one
    inbox often serves many hosts)."""
    p, first = verdict.probe, verdict.first_probe or verdict.probe
    if verdict.kind == "os-summary":
        detail = [f"Flag patterns:   {' '.join(verdict.patterns)}"]
    else:
        detail = [f"Distinct ports:  {port_count(verdict.ports)}"]
    if verdict.kind == "scan-summary" and p.proto is Proto.TCP:
        detail.append(f"Flags seen:      {', '.join(verdict.patterns) or 'none (connections)'}")
    lines = [
        f"Target host:     {one_line(host)}",
        f"Source:          {p.src}" + (f" ({name})" if name else ""),
        f"Destination:     {p.dst}",
        f"Protocol:        {protocol(verdict)}",
        f"Scan type:       {scan_type(verdict)}",
        f"Mode:            {p.mode}",
        f"Started:         {local_stamp(first.seen_at)}",
        f"Last seen:       {local_stamp(p.seen_at)}",
        f"Probes:          {verdict.probes}",
        *detail,
        f"First port:      {first.dport} at {local_stamp(first.seen_at)}",
        f"Last port:       {p.dport} at {local_stamp(p.seen_at)}",
        f"Action:          {action}",
    ]
    # Every part is ours or already escaped (the source's name by safe_hostname): no second
    # escape.
    return "\n".join(lines) + "\n"


def held_line(verdict: Verdict | str, text: str) -> str:
    """One report held back by MAIL_PER_HOUR, for the mail that lists them: source, protocol,
    first time, type, action (or the subject of a mail already written)."""
    if isinstance(verdict, str):
        return one_line(verdict)
    first = verdict.first_probe or verdict.probe
    return (f"{local_stamp(first.seen_at)}  {verdict.probe.src}  {protocol(verdict)}  "
            f"{scan_type(verdict)}  ({text})")  # fmt: skip


def wrapped(text: str) -> str:
    """Prose for a mail, in lines of at most 72 characters."""
    return textwrap.fill(text, 72) + "\n"


class Mailer(threading.Thread):
    """Mails reports from a bounded queue, at most MAIL_PER_HOUR (see mailbudget)."""

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
        self.jobs: queue.Queue[Job | None] = queue.Queue(limits.MAIL_QUEUE_MAX)  # None: stop
        self.budget = MailBudget()
        self._held: list[str] = []  # the first held reports (held_line), for the summary mail
        self._resolver = Resolver()
        self._relay_lookup: RelayLookup | None = None  # made with the first mail
        self.sent = 0  # mails delivered
        self.failed = 0  # mails not delivered: relay errors, a full queue, left at stop
        self.withheld = 0  # reports held back by MAIL_PER_HOUR
        self._busy = False  # a job is being worked on
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
        """A scan report (verdict, action), or a mail already written (subject, text)."""
        if self._stopping:
            return
        try:
            self.jobs.put_nowait((verdict, text))
        except queue.Full:
            self.failed += 1
            log.error("mail queue full; a report was not mailed")

    def stop(self, wait_s: float = limits.MAIL_STOP_WAIT_S) -> None:
        """Send what is queued, for at most `wait_s`: a hung relay cannot hold the stop. What is
        still unsent then is counted as failed and said in one line."""
        if self.ident is None or self._stopping:
            return
        self._stopping = True
        until = time.monotonic() + wait_s
        with contextlib.suppress(queue.Full):
            self.jobs.put(None, timeout=min(1.0, wait_s))
        self.join(timeout=max(0.0, until - time.monotonic()))
        if not self.is_alive():
            return
        self._gave_up = True
        left = int(self._busy)
        with contextlib.suppress(queue.Empty):
            while True:
                left += self.jobs.get_nowait() is not None
        if left:
            self.failed += left
            s = self.settings
            log.error("%d mails not sent: relay %s port %d did not take them within %g s of "
                      "the stop", left, s.smtp_relay, s.smtp_port, wait_s)  # fmt: skip

    def run(self) -> None:
        while True:
            now = self._clock()
            reopens = self.budget.reopens_at(now, self.settings.mail_per_hour)
            try:
                job = self.jobs.get(timeout=None if reopens is None else max(0.0, reopens - now))
            except queue.Empty:  # the hour has room again for the summary of held reports
                self.work(None)
                continue
            if job is None:
                return
            self.work(job)

    def work(self, job: Job | None) -> None:
        """One turn, at the clock's time: first the summary of held reports if the hour has
        room for it, then `job` (if any) is mailed, or held back."""
        self._busy = True
        try:
            now, per_hour = self._clock(), self.settings.mail_per_hour
            since = self.budget.held_since
            held = self.budget.release(now, per_hour)
            if held and since is not None:
                self._send_held(held, since, per_hour)
            if job is None:
                return
            if self.budget.admit(now, per_hour):
                self._send(*self._render(*job))
                return
            self.withheld += 1
            if len(self._held) < limits.MAIL_HELD_LISTED_MAX:
                self._held.append(held_line(*job))
            if self.budget.held == 1:  # the hold begins
                self._hold_began(now, per_hour)
        except Exception:  # a bad report must not end the mail thread
            self.failed += 1
            log.exception("mail report failed")
        finally:
            self._busy = False

    def _send_held(self, held: int, since: float, per_hour: int) -> None:
        """The mail that lists the reports held back (the first MAIL_HELD_LISTED_MAX)."""
        listed, self._held = self._held, []
        more = held - len(listed)
        self._send(f"portwarden: {held} reports were not mailed (MAIL_PER_HOUR)",
                   wrapped(f"{held} reports were held back since "
                           f"{local_stamp(self._wall(since))} by MAIL_PER_HOUR={per_hour}. "
                           "Every one of them is in the JSON event log.")
                   + "\nFirst seen, source, protocol, type (action):\n"
                   + "".join(f"  {line}\n" for line in listed)
                   + (f"  ... and {more} more\n" if more > 0 else ""))  # fmt: skip

    def _hold_began(self, now: float, per_hour: int) -> None:
        reopens = self._wall(self.budget.reopens_at(now, per_hour) or now)
        self._on_hold(reopens)
        if self.budget.notice_allowed(now):
            self._send("portwarden: mail rate limit reached",
                       wrapped(f"MAIL_PER_HOUR={per_hour} mails were sent in the last hour. "
                               "Further reports are held back, not mailed, until "
                               f"{local_stamp(reopens)}; one mail will then list them. Every "
                               "report is in the JSON event log regardless. (This notice is "
                               "the one mail allowed over the limit.)"))  # fmt: skip

    def _wall(self, monotonic: float) -> float:
        return time.time() + (monotonic - self._clock())

    def _render(self, verdict: Verdict | str, text: str) -> tuple[str, str, float]:
        """Subject, body, and the delivery's deadline (monotonic): the reverse lookup of the
        source is part of the delivery's time."""
        until = time.monotonic() + deadline_s(self.settings)
        if isinstance(verdict, str):
            return verdict, text, until
        name = self._source_name(verdict, until) if self.settings.resolve_host else None
        return (subject(self.settings.mail_subject, verdict),
                body(verdict, name, text, socket.gethostname()), until)  # fmt: skip

    def _source_name(self, verdict: Verdict, until: float) -> str | None:
        """The source's name, looked up for at most RESOLVE_HOST_TIMEOUT_S (a dead name server
        takes several seconds a lookup), within the delivery's deadline."""
        wait = min(limits.RESOLVE_HOST_TIMEOUT_S, until - time.monotonic())
        name = Resolver.name(self._resolver.start(verdict.probe.src), wait)
        return None if name is None else safe_hostname(name)

    def _send(self, title: str, text: str, until: float | None = None) -> None:
        """Deliver one mail by `until` (monotonic; default: the whole deadline from now)."""
        from portwarden.alert.smtp import DeliveryFailed, RelayLookup, deliver  # see smtp.py

        s = self.settings
        if self._relay_lookup is None:
            self._relay_lookup = RelayLookup()
        if until is None:
            until = time.monotonic() + deadline_s(s)
        try:
            refused = deliver(s, title, text, until, self._relay_lookup)
        except DeliveryFailed as error:
            if not self._gave_up:  # else the stop has said it already (mails not sent)
                self.failed += 1
                log.error("mail to %s via %s port %d failed: %s", ", ".join(s.mail_to),
                          s.smtp_relay, s.smtp_port, error)  # fmt: skip
            return
        if not self._gave_up:
            self.sent += 1
            self.failed += bool(refused)
        if refused:  # the relay took the mail for the others: smtplib raises only if for none
            log.error("mail %r via %s port %d: the relay refused %s; sent to the others",
                      title, s.smtp_relay, s.smtp_port,
                      "; ".join(f"{address} ({reply})" for address, reply in refused.items()),
                      )  # fmt: skip


def deadline_s(settings: Settings) -> float:
    """The most one delivery may take: SMTP_TIMEOUT x MAIL_DELIVERY_TIMEOUTS."""
    return settings.smtp_timeout * limits.MAIL_DELIVERY_TIMEOUTS
