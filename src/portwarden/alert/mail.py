"""One mail per scan, sent by one worker thread with a time limit; a rate limit per hour.

A dead or slow relay never reaches the packet path: the queue is bounded, each attempt has a
timeout, and a mail that cannot be sent is logged (the event itself is in the JSON log and the
store regardless).
"""

import collections
import contextlib
import logging
import queue
import socket
import threading
import time
from pathlib import Path

from portwarden import limits
from portwarden.config import Settings
from portwarden.detect.engine import Verdict
from portwarden.respond.actions import safe_hostname
from portwarden.text import local_stamp, one_line

log = logging.getLogger("portwarden")

_HOUR_S = 3600.0
STOP_WAIT_MAX_S = 15.0  # the longest a stop waits for queued mail


def subject(template: str, verdict: Verdict) -> str:
    """MAIL_SUBJECT with scandetd's macros: %p protocol, %s source, %d destination."""
    p = verdict.probe
    values = {"p": p.proto.value.upper(), "s": str(p.src), "d": str(p.dst), "%": "%"}
    out, i = [], 0
    while i < len(template):
        if template[i] == "%" and i + 1 < len(template) and template[i + 1] in values:
            out.append(values[template[i + 1]])
            i += 2
        else:
            out.append(template[i])
            i += 1
    return one_line("".join(out))


def body(verdict: Verdict, name: str | None, action: str) -> str:
    """Every field an administrator needs to act, one per line."""
    p, first = verdict.probe, verdict.first_probe or verdict.probe
    if verdict.kind == "os-summary":
        kind = f"OS fingerprinting probe ({p.os_tool})"
        detail = f"Flag patterns seen: {' '.join(verdict.patterns)}"
    else:
        kind = ", ".join(verdict.types) or p.scan
        detail = f"Distinct ports:  {verdict.ports}"
    lines = [
        f"Source:          {p.src}" + (f" ({name})" if name else ""),
        f"Destination:     {p.dst}",
        f"Protocol:        {p.proto.value.upper()}",
        f"Scan type:       {kind}",
        f"Mode:            {p.mode}",
        f"Started:         {local_stamp(first.seen_at)}",
        f"Last seen:       {local_stamp(p.seen_at)}",
        f"Probes:          {verdict.probes}",
        detail,
        f"First port:      {first.dport} at {local_stamp(first.seen_at)}",
        f"Last port:       {p.dport} at {local_stamp(p.seen_at)}",
        f"Action:          {action}",
    ]
    # Every part is ours or already escaped (the host name by safe_hostname): no second escape.
    return "\n".join(lines) + "\n"


def password(path: Path) -> str:
    """The first line of SMTP_PASSWORD_FILE, without its line break; nothing else is taken
    (a comment or a second line after it is not part of the password)."""
    with path.open(encoding="utf-8") as file:
        return file.readline().removesuffix("\n").removesuffix("\r")


class Mailer(threading.Thread):
    """Mails summaries from a bounded queue; at most MAIL_PER_HOUR, then one summary mail."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="portwarden-mail", daemon=True)
        self.settings = settings
        # A scan report (verdict, action) or a finished mail (subject, text); None stops.
        self.jobs: queue.Queue[tuple[Verdict | str, str] | None] = queue.Queue(
            limits.MAIL_QUEUE_MAX
        )
        self._sent: collections.deque[float] = collections.deque()
        self._held = 0  # held back by the hourly limit, not yet said in a summary mail
        self.withheld = 0  # held back since start
        self.sent = 0
        self.failed = 0

    def wants(self, verdict: Verdict) -> bool:
        s = self.settings
        if verdict.kind == "os-summary":
            return s.mail_on_os_probe
        if verdict.kind != "scan-summary":
            return False
        return s.mail_on_tcp_scan if verdict.probe.proto.value == "tcp" else s.mail_on_udp_scan

    def submit(self, verdict: Verdict | str, text: str) -> None:
        """A scan report (verdict, action), or a mail already written (subject, text)."""
        try:
            self.jobs.put_nowait((verdict, text))
        except queue.Full:
            self.failed += 1
            log.error("mail queue full; a report was not mailed")

    def stop(self) -> None:
        """Send what is queued, within a bound: a hung relay cannot hold the stop."""
        with contextlib.suppress(queue.Full):
            self.jobs.put(None, timeout=1)
        self.join(timeout=min(self.settings.smtp_timeout + 5, STOP_WAIT_MAX_S))

    def run(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=60)
            except queue.Empty:
                self._release_held()
                continue
            if job is None:
                return
            try:
                self._mail(*job)
            except Exception:  # a bad report must not end the mail thread
                self.failed += 1
                log.exception("mail report failed")

    def _mail(self, verdict: Verdict | str, text: str) -> None:
        if not self._may_send():
            self._held += 1
            self.withheld += 1
            return
        self._release_held()
        if isinstance(verdict, str):
            self._send(verdict, text)
            return
        name = self._resolve(verdict) if self.settings.resolve_host else None
        self._send(subject(self.settings.mail_subject, verdict), body(verdict, name, text))

    def _may_send(self) -> bool:
        now = time.monotonic()
        while self._sent and now - self._sent[0] > _HOUR_S:
            self._sent.popleft()
        return len(self._sent) < self.settings.mail_per_hour

    def _release_held(self) -> None:
        """Once the hour allows it again, say in one mail how many reports were held back."""
        if self._held and self._may_send():
            held, self._held = self._held, 0
            self._send(
                "portwarden: mail rate limit reached",
                f"{held} scan reports were not mailed: MAIL_PER_HOUR="
                f"{self.settings.mail_per_hour}. They are in the JSON event log.\n",
            )

    @staticmethod
    def _resolve(verdict: Verdict) -> str | None:
        try:
            return safe_hostname(socket.gethostbyaddr(str(verdict.probe.src))[0])
        except (OSError, UnicodeError):
            return None

    def _send(self, title: str, text: str) -> None:
        # Imported here: smtplib, ssl and email cost about 10 MiB of memory, which a daemon
        # that never mails should not carry.
        import smtplib
        import ssl
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        s = self.settings
        message = EmailMessage()
        message["From"] = s.mail_from
        message["To"] = ", ".join(s.mail_to)
        message["Subject"] = title
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=s.smtp_helo)
        message.set_content(text)
        self._sent.append(time.monotonic())
        try:
            with smtplib.SMTP(s.smtp_relay, s.smtp_port, local_hostname=s.smtp_helo,
                              timeout=s.smtp_timeout) as smtp:  # fmt: skip
                if s.smtp_starttls:
                    # The relay's certificate is checked: against SMTP_CA_FILE if given (a
                    # private CA), else the system's CAs; and its name against SMTP_RELAY.
                    smtp.starttls(context=ssl.create_default_context(cafile=s.smtp_ca_file))
                if s.smtp_user and s.smtp_password_file:
                    smtp.login(s.smtp_user, password(s.smtp_password_file))
                smtp.send_message(message)
            self.sent += 1
        except (OSError, UnicodeError, smtplib.SMTPException) as error:
            self.failed += 1
            log.error("mail to %s via %s:%d failed: %s", ", ".join(s.mail_to), s.smtp_relay,
                      s.smtp_port, one_line(str(error)))  # fmt: skip
