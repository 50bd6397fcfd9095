"""One delivery to the relay: connect, STARTTLS with the relay's certificate checked, AUTH, the
message; all of it within one deadline.

Imported only by the mail thread when it first sends: smtplib, ssl and email cost about 10 MiB
of memory, which a daemon that never mails should not carry.
"""

import contextlib
import ipaddress
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from portwarden import limits
from portwarden.alert.mail import deadline_s
from portwarden.alert.reportbook import Report
from portwarden.config import Settings
from portwarden.config.smtp import read_password
from portwarden.text import one_line


class DeliveryFailed(Exception):
    """The mail was not delivered; str() is one line saying why. `deferred`: the recipients
    turned away for now, worth trying again later: those a 4xx reply (a temporary failure, RFC
    5321 4.2.1) refused, or all of them when the relay could not be reached (a refused or
    timed-out connection, one cut, a TLS handshake cut short, or the delivery's deadline
    passed). `relay_wide`: the relay
    turned the whole mail away for now (out of reach, or a 4xx to the greeting, EHLO, MAIL or
    DATA), so it would turn any other mail away too; not so for a 4xx to RCPT (greylisting: one
    recipient's)."""

    def __init__(self, why: str, deferred: tuple[str, ...] = (), relay_wide: bool = False) -> None:
        super().__init__(why)
        self.deferred = deferred
        self.relay_wide = relay_wide


# A recipient the relay refused while it took the mail for others: its reply code, and the
# reply on one line.
Refused = dict[str, tuple[int, str]]


def temporary(code: int) -> bool:
    return 400 <= code < 500


class RelayLookup:
    """SMTP_RELAY's addresses when it is a host name, within a time limit. The system resolver
    has none we can set (a dead name server takes several seconds a lookup), so getaddrinfo runs
    on a thread of its own and the delivery waits for it only until its deadline. While a lookup
    still hangs, the next mail fails at once rather than start another thread."""

    def __init__(self) -> None:
        self._pending: Future[list[str]] | None = None

    def addresses(self, relay: str, port: int, timeout: float) -> list[str]:
        """Raises TimeoutError or OSError."""
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(relay))]
        if self._pending is not None and not self._pending.done():
            raise TimeoutError(f"the last lookup of {relay} has not ended yet")
        lookup: Future[list[str]] = Future()
        self._pending = lookup
        threading.Thread(
            target=self._run, args=(lookup, relay, port), name="portwarden-relay-dns", daemon=True
        ).start()
        try:
            return lookup.result(max(0.0, timeout))
        except FutureTimeout:
            raise TimeoutError(f"no address for {relay} within {timeout:.3g} s") from None

    @staticmethod
    def _run(lookup: "Future[list[str]]", relay: str, port: int) -> None:
        try:
            found = socket.getaddrinfo(relay, port, type=socket.SOCK_STREAM)
            lookup.set_result(list(dict.fromkeys(str(info[4][0]) for info in found)))
        except (OSError, UnicodeError) as error:
            lookup.set_exception(error)


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib whose connection can be cut from another thread. SMTP_TIMEOUT bounds each socket
    operation only: a relay that sends a byte now and then would hold the mail thread for ever,
    so a timer cuts the connection when the whole delivery's time is up. It connects to the
    addresses given (the relay's, looked up within the deadline), not to the name."""

    def __init__(self, addresses: list[str], **options: Any) -> None:
        self._cut_lock = threading.Lock()
        self.expired = False
        self._addresses = addresses
        super().__init__(**options)

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> tuple[int, bytes]:
        self._host = host  # smtplib sets it only in __init__; STARTTLS checks the name against it
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._connect_any(port, timeout)
        with self._cut_lock:  # a cut during connect() finds the socket here
            if self.expired:
                sock.close()
                raise TimeoutError("the deadline passed while connecting")
            self.sock = sock
        return sock

    def _connect_any(self, port: int, timeout: float) -> socket.socket:
        """The first of the relay's addresses that takes the connection."""
        failure: OSError = OSError("no address for the relay")
        for address in self._addresses:
            try:
                return super()._get_socket(address, port, timeout)  # type: ignore[misc]
            except OSError as error:
                failure = error
        raise failure

    def cut(self) -> None:
        with self._cut_lock:
            self.expired = True
            if self.sock is not None:
                # socket.shutdown, not SSLSocket.shutdown: that would unwrap the TLS object
                # under the reading thread. Any blocked read now ends at once.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


_LINE_MAX = 998  # RFC 5322: characters in a line of a message, without CRLF


def helo_name(helo: str) -> str:
    """SMTP_HELO as EHLO and the Message-ID take it: a bare address becomes an address literal
    (RFC 5321 4.1.3: `[198.18.0.1]`, `[IPv6:2001:db8::1]`; RFC 5322 allows it after the `@` of
    a Message-ID, where a bare IPv6 address is not valid); a name stays as it is."""
    try:
        address = ipaddress.ip_address(helo)
    except ValueError:
        return helo
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"


def message_id(report: Report, helo: str) -> str:
    """The report's Message-ID: the same at every try, after a restart too, so that a reader
    sees a mail that came twice as one (delivery is at least once: a stop between the relay's
    250 and the store's record of it sends it again). From the report's id in the store and
    when it was made (a new store numbers from 1 again), at this host (SMTP_HELO)."""
    if not report.id:  # not in the store: tried once only
        return make_msgid(domain=helo)
    return f"<portwarden.report-{report.id}.{report.made:.0f}@{helo}>"


def deliver(
    s: Settings,
    report: Report,
    until: float,
    relay_lookup: RelayLookup,
    recipients: tuple[str, ...],
) -> Refused:
    """Send one report to `recipients` (of MAIL_TO) by `until` (monotonic). Returns the
    addresses the relay refused when it took the mail for the others; raises DeliveryFailed
    when it was delivered to none."""
    text = report.body
    message = EmailMessage()
    message["From"] = s.mail_from
    message["To"] = ", ".join(s.mail_to)
    message["Subject"] = report.subject
    message["Date"] = formatdate(localtime=True)
    helo = helo_name(s.smtp_helo)
    message["Message-ID"] = message_id(report, helo)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    # Plain 7-bit text when it can be (every line of a report is short ASCII), so that scripts
    # and old readers that parse the body see it as written; quoted-printable otherwise.
    plain = text.isascii() and all(len(line) < _LINE_MAX for line in text.splitlines())
    message.set_content(text, cte="7bit" if plain else None)
    addresses: list[str] = []
    smtp = _DeadlineSMTP(addresses, local_hostname=helo, timeout=s.smtp_timeout)
    timer = threading.Timer(max(0.0, until - time.monotonic()), smtp.cut)
    timer.daemon = True
    timer.start()
    try:
        addresses += relay_lookup.addresses(s.smtp_relay, s.smtp_port, until - time.monotonic())
        _greeted(smtp, *smtp.connect(s.smtp_relay, s.smtp_port))
        if s.smtp_starttls:
            # The relay's certificate is checked: against SMTP_CA_FILE if given (a private CA),
            # else the system's CAs; and its name against SMTP_RELAY.
            smtp.starttls(context=ssl.create_default_context(cafile=s.smtp_ca_file))
        if s.smtp_user and s.smtp_password_file:
            smtp.login(s.smtp_user, read_password(s.smtp_password_file))
        refused = smtp.send_message(message, to_addrs=list(recipients))
        with contextlib.suppress(OSError, smtplib.SMTPException):  # delivered: QUIT is a nicety
            smtp.quit()
        return {
            address: (code, one_line(f"{code} {reply.decode('utf-8', 'replace')}"))
            for address, (code, reply) in refused.items()
        }
    except (OSError, UnicodeError, ValueError, smtplib.SMTPException) as error:
        if smtp.expired:
            why = (
                f"not delivered within {deadline_s(s):g} s (SMTP_TIMEOUT x "
                f"{limits.MAIL_DELIVERY_TIMEOUTS})"
            )
            raise DeliveryFailed(why, recipients, relay_wide=True) from None
        deferred = _deferred(error, recipients)
        relay_wide = bool(deferred) and not isinstance(error, smtplib.SMTPRecipientsRefused)
        raise DeliveryFailed(one_line(_reason(error)), deferred, relay_wide) from None
    finally:
        timer.cancel()
        smtp.close()


def _greeted(smtp: smtplib.SMTP, code: int, reply: bytes) -> None:
    """The relay's greeting must be 220 (smtplib does not check it when it connects): a relay
    that greets with 554 (no service for us) or 421 (busy) would answer what follows with 503,
    or close, and its reason would be lost. Raises SMTPConnectError, a reply like any other
    (a 4xx for now, a 5xx final: see _deferred), after QUIT (RFC 5321 3.1: the client should
    send it after a 554 greeting; errors on it are ignored)."""
    if code == 220:
        return
    with contextlib.suppress(OSError, smtplib.SMTPException):
        smtp.quit()
    raise smtplib.SMTPConnectError(code, reply)


def _deferred(error: Exception, recipients: tuple[str, ...]) -> tuple[str, ...]:
    """The recipients turned away for now: those a 4xx reply refused at RCPT, or all of them
    for a 4xx to the whole mail (MAIL FROM, DATA, the greeting) or a relay out of reach."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return tuple(address for address, (code, _) in error.recipients.items() if temporary(code))
    if isinstance(error, smtplib.SMTPResponseException) and temporary(error.smtp_code):
        return recipients
    if unreachable(error):
        return recipients
    return ()


def unreachable(error: Exception) -> bool:
    """The relay could not be reached, or it went away: a refused or timed-out connection, a
    name that did not resolve in time, a connection closed in the middle, the TLS handshake
    cut short or broken (a relay that closes after its 220 to STARTTLS, as one does while it
    restarts: SSLEOFError, SSLZeroReturnError, SSLSyscallError, or bytes that are not TLS).
    Not a certificate that does not verify (it stays so) nor a reply: those are final."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    # smtplib's errors are OSErrors too: a reply or a missing STARTTLS is not "unreachable".
    return isinstance(error, OSError) and not isinstance(
        error, ssl.SSLCertVerificationError | smtplib.SMTPException
    )


def _reason(error: Exception) -> str:
    """Why a delivery failed: the relay's reply (`451 4.3.0 Try again later`) when it gave one;
    each recipient's when it refused them all."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {reply.decode('utf-8', 'replace')}"
            for address, (code, reply) in error.recipients.items()
        )
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        return f"{error.smtp_code} {text}"
    return str(error) or type(error).__name__
