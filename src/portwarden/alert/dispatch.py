"""Every alert path behind one object: the log (stderr), syslog, the JSON event log, mail.

Each path is contained: one that fails is counted and logged, never stops the others, and
never raises into the loop. Probe-level output is rate-limited; summaries and actions are not.
What syslog, the JSON log and mail delivered, and dropped (rate limit or error), is counted.
"""

import contextlib
import functools
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from portwarden import limits
from portwarden.alert import portsentry
from portwarden.alert.events import (
    probe_event,
    stamp,
    summary_event,
    unblock_event,
    unblocks_not_shown_event,
)
from portwarden.alert.hostnames import HostNames
from portwarden.alert.jsonlog import JsonLog
from portwarden.alert.line import LineLimiter, verdict_line
from portwarden.alert.mail import Mailer
from portwarden.alert.syslog import ERROR, INFO, SEVERITIES, WARNING, Syslog
from portwarden.audit.findings import Finding
from portwarden.config import Settings
from portwarden.config.values import CLASSIC_MODES
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Probe
from portwarden.net.addresses import IPAddress
from portwarden.store.db import BlockRecord
from portwarden.text import counted, utc_stamp

log = logging.getLogger("portwarden")


PATHS = ("syslog", "json", "mail")  # units: syslog lines, JSON events, mails
REASONS = ("rate_limit", "error")  # why an alert was dropped


class Delivery:
    """What each alert path delivered or dropped since start; the loop, the action worker and
    the mail thread all count, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, path: str, outcome: str, count: int = 1) -> None:
        """path: one of PATHS; outcome: "sent" or one of REASONS."""
        if count:
            with self._lock:
                self._counts[path, outcome] += count

    def counts(self) -> dict[str, dict[str, Any]]:
        """{"sent": {path: n}, "dropped": {path: {reason: n}}} for every path."""
        with self._lock:
            return {
                "sent": {path: self._counts[path, "sent"] for path in PATHS},
                "dropped": {
                    path: {reason: self._counts[path, reason] for reason in REASONS}
                    for path in PATHS
                },
            }


def _said(message: str) -> Callable[[str | None], str]:
    """A syslog line that names no source."""
    return lambda _name: message


class Alerts:
    def __init__(self, settings: Settings) -> None:
        """Raises OSError when the JSON event log cannot be opened."""
        self.delivery = Delivery()
        self.settings = settings
        self._lines = LineLimiter(limits.ATTACK_LINES_PER_S, limits.ATTACK_LINES_BURST)
        self._held_back = 0  # lines the attack-line limit held back since the last report
        self._events = LineLimiter(limits.JSON_EVENTS_PER_S, limits.JSON_EVENTS_BURST)
        self._syslog, self._json = self._outputs(settings)
        self._mailer = Mailer(settings, self.mail_held)
        self._mailer.start()
        self._next_report = 0.0
        # RESOLVE_HOST: syslog lines that wait for a name, and the lines that came after them
        # (from the loop and the action worker: hence the lock), in the order they came.
        self._hostnames: HostNames[Callable[[str | None], None]] = HostNames()
        self._order = threading.Lock()
        # Lines the loop holds back while it acts on a verdict (see holding_lines).
        self._held: list[Callable[[], None]] | None = None
        self._holder = 0  # the thread that holds them

    def _outputs(self, settings: Settings) -> tuple[Syslog | None, JsonLog | None]:
        """The JSON log first: it is what may fail to open (OSError), and a Syslog made before
        it would be left with its sender thread running (at each refused reload)."""
        json_log = (
            JsonLog(settings.event_log, settings.event_log_max_bytes, settings.event_log_keep)
            if settings.event_log
            else None
        )
        syslog = (
            Syslog(settings.syslog_socket, settings.syslog_facility, self._count_syslog)
            if settings.syslog_socket
            else None
        )
        return syslog, json_log

    def stop_mail(self) -> None:
        """At stop: send the syslog lines that wait for a name, and the queued mail within a
        bound (see Mailer.stop); later reports are not mailed."""
        self._send_named(time.monotonic(), stopping=True)
        self._mailer.stop()

    def close(self) -> None:
        self._send_named(time.monotonic(), stopping=True)
        self._mailer.stop()
        self._close_outputs(self._syslog, self._json)

    @staticmethod
    def _close_outputs(syslog: Syslog | None, json_log: JsonLog | None) -> None:
        if syslog:
            syslog.close()
        if json_log:
            json_log.close()

    def reconfigure(self, settings: Settings) -> None:
        """SIGHUP: new settings; syslog and the JSON log are reopened (after logrotate moved
        it). The new outputs are opened before the old ones close (raises OSError, and changes
        nothing, when they cannot be); closing the old ones never raises (JsonLog.close logs a
        failure), so the new settings are in force whole. The mailer thread, its hourly budget
        and the rate limits carry on."""
        syslog, json_log = self._outputs(settings)
        old = self._syslog, self._json
        if json_log and self._json and settings.event_log == self.settings.event_log:
            json_log.outage = self._json.outage  # a disk still full is not said again
        self.settings, self._syslog, self._json = settings, syslog, json_log
        self._mailer.reconfigure(settings)
        self._close_outputs(*old)

    def reopen(self) -> None:
        """SIGHUP whose new configuration was refused: the outputs are reopened all the same
        (logrotate moved the event log and expects the next line in a new file)."""
        if self._syslog is not None:
            self._syslog.reconnect()
        if self._json is not None:
            try:
                self._json.reopen()
            except OSError as error:
                log.error(
                    "JSON event log %s: cannot reopen (%s); writing on to the old file",
                    self.settings.event_log,
                    error.strerror,
                )

    def verdict(self, verdict: Verdict, now: float, action: str) -> None:
        """One verdict; `action` says what was done about its source (for summaries)."""
        p = verdict.probe
        if verdict.kind in ("scan-summary", "os-summary"):
            self._syslog_in_order(None, _said(portsentry.summary_line(verdict)), WARNING)
            self._event(summary_event(verdict, action, time.time()))
            log.warning("%s", verdict_line(verdict, action))
            if self._mailer.wants(verdict):
                self._mailer.submit(verdict, action)
            return
        if self._lines.allow(now):
            log.warning("%s", verdict_line(verdict))
            named = self.settings.resolve_host and self._syslog is not None
            with self._order:
                waits = named and self._hostnames.submit(
                    p.src, functools.partial(self._probe_lines, verdict), now
                )
            if waits:
                self._send_named(now)
            else:
                self._probe_lines(verdict, None)
        elif self._syslog is None:
            self._hold_back(1)  # its log line
        else:  # counted, not formatted: this is the flood's path
            self._hold_back(1 + p.ip_options + (portsentry.detail_line(verdict) is not None))
        if verdict.first or verdict.new_type or verdict.kind == "os-probe":  # a limit of its own
            if self._events.allow(now):
                self._event(probe_event(verdict))
            elif self._json is not None:
                self.delivery.add("json", "rate_limit")

    def _send_named(self, now: float, stopping: bool = False) -> None:
        """The syslog lines whose source's name is known now (RESOLVE_HOST), and those that
        waited behind them."""
        with self._order:
            for write, name in self._hostnames.ready(now, stopping):
                write(name)

    def _probe_lines(self, verdict: Verdict, name: str | None) -> None:
        """A verdict's syslog lines: PortSentry's (with the source's name, if known) and our
        detail."""
        p = verdict.probe
        self._syslog_write(portsentry.attack_line(verdict, name))
        detail = portsentry.detail_line(verdict)
        if detail is not None:
            self._syslog_write(detail)
        if p.ip_options:
            self._syslog_write(portsentry.ip_options_line(p, name))

    @property
    def logs_probes(self) -> bool:
        """Whether probe() has anything to do: LOG_CONNECTIONS or LOG_DETAILS, and syslog."""
        s = self.settings
        return self._syslog is not None and (s.log_connections or s.log_details)

    def probe(self, probe: Probe, now: float) -> None:
        """scandetd's LogConnections and LogDetails: lines for every probe the engine counts,
        below its threshold too (SCAN_TRIGGER, SCAN_COUNT_THRESHOLD); limited with the attack
        lines."""
        s = self.settings
        if not self._lines.allow(now):
            self._hold_back(s.log_connections + s.log_details)
            return
        if s.log_connections:
            self._syslog_send(portsentry.connection_line(probe), INFO)
        if s.log_details:
            self._syslog_send(portsentry.details_line(probe), INFO)

    def tick(self, now: float) -> None:
        """Every turn of the loop: the lines that waited for a name. Once a second: how much
        the rate limits held back."""
        self._send_named(now)
        if now < self._next_report:
            return
        self._next_report = now + 1.0
        held_back, self._held_back = self._held_back, 0
        if held_back:
            log.warning(
                "attack lines suppressed: %d in the last second (rate limit %d/s)",
                held_back,
                limits.ATTACK_LINES_PER_S,
            )
            self._syslog_send(f"attackalert: {held_back} more alerts suppressed (rate limit)")
            self._event({"time": stamp(time.time()), "event": "suppressed", "count": held_back})

    def _hold_back(self, lines: int) -> None:
        """The attack-line limit held back an alert of `lines` lines: syslog lines, as the
        metric counts them (with syslog off, the verdict's log line). The next report (see
        tick) says how many lines, in the same unit everywhere."""
        self._held_back += lines
        if self._syslog is not None:
            self.delivery.add("syslog", "rate_limit", lines)

    def summaries_dropped(self, count: int) -> None:
        """Summaries the engine dropped (a flood of sources: see Engine.tick)."""
        message = (
            f"{counted(count, 'summary', 'summaries')} dropped (a flood of sources: more "
            "waiting than the daemon keeps; those that touched the fewest ports went "
            "first)"
        )
        log.warning("%s", message)
        self._syslog_send(f"attackalert: {message}", WARNING)
        self._event({"time": stamp(time.time()), "event": "summary-suppressed", "count": count})

    def active(self, modes: str, reloaded: bool = False) -> None:
        """The daemon is ready, or has reloaded its configuration (`modes`: what it watches)."""
        self._syslog_send(portsentry.active_line(modes, reloaded))

    def reload_refused(self, error: str) -> None:
        self._syslog_send(portsentry.reload_refused_line(error), ERROR)

    def reload_failed(self, outcome: str) -> None:
        """A bug in a reload: the administrator who reads only syslog hears of it too."""
        self._syslog_send(
            f"adminalert: ERROR: {outcome} (a bug: the daemon's log has its traceback)", ERROR
        )

    def reload_warnings(self, warnings: Sequence[str]) -> None:
        """A reload's warnings (a missing ignore file, ...), which would otherwise only be in
        stderr: one `adminalert:` line each, at most limits.RELOAD_WARNINGS_SENT_MAX, then how
        many more (before the "configuration reloaded" line)."""
        shown = warnings[: limits.RELOAD_WARNINGS_SENT_MAX]
        for warning in shown:
            self._syslog_send(portsentry.reload_warning_line(warning), WARNING)
        if len(warnings) > len(shown):
            self._syslog_send(
                f"adminalert: WARNING: {len(warnings) - len(shown)} more reload "
                "warnings (portwarden check-config lists all)",
                WARNING,
            )

    def stopping(self, why: str) -> None:
        """The last line, after the summaries of the scans still open and the unblocks at stop,
        as PortSentry's shutdown line was."""
        self._syslog_send(portsentry.shutdown_line(why))

    def audit(self, findings: Sequence[Finding], when: float) -> None:
        """An audit's findings: one log, syslog and JSON line each, one mail for all. At most
        limits.AUDIT_FINDINGS_REPORTED_MAX, then one line that says how many more."""
        shown = findings[: limits.AUDIT_FINDINGS_REPORTED_MAX]
        for finding in shown:
            log.warning("audit %s", finding.line())
            self._syslog_send(f"audit: {finding.line()}", SEVERITIES[finding.severity])
            self._event({"time": stamp(when), **finding.event()})
        more = len(findings) - len(shown)
        if more:
            message = f"audit: {more} more findings not shown (portwarden audit --json lists all)"
            log.warning("%s", message)
            self._syslog_send(message, WARNING)
            self._event({"time": stamp(when), "event": "audit-suppressed", "count": more})
        if findings and self.settings.mail_on_audit:
            lines = "\n".join(
                [finding.line() for finding in shown] + ([f"... and {more} more"] if more else [])
            )
            said = counted(len(findings), "port audit finding")
            self._mailer.submit(f"portwarden: {said} on {socket.gethostname()}", lines + "\n")

    def blocked(self, record: BlockRecord) -> None:
        for line in portsentry.action_lines(
            record.address, record.actions, self.settings.nft_table
        ):
            self._syslog_send(line, WARNING)
        actions = [{"kind": a.kind, "status": a.status} for a in record.actions]
        self._event(
            {
                "time": stamp(record.since),
                "event": "block",
                "src": record.address,
                "port": record.port,
                "proto": record.proto,
                "mode": record.mode,
                "reason": record.reason,
                "until": stamp(record.until or 0) or None,
                "offence": record.offence,
                "actions": actions,
            }
        )

    def already_blocked(self, address: str, mode: str) -> None:
        """PortSentry's line, in the stealth modes with the source's name (RESOLVE_HOST)."""
        named = self.settings.resolve_host and mode not in CLASSIC_MODES
        self._syslog_named(
            ipaddress.ip_address(address) if named else None,
            functools.partial(portsentry.already_blocked_line, address, mode),
        )

    def unblocked(self, address: str, by: str, when: float) -> None:
        """A block ended: by expiry, the unblock command, or at stop (UNBLOCK_ON_STOP)."""
        self._notice(f"Host {address} unblocked: {by}", unblock_event(address, by, when))

    def unblocks_not_shown(self, count: int, when: float) -> None:
        """Past limits.UNBLOCKS_REPORTED_MAX at once (`unblock --all`): only their number."""
        self._notice(f"{count} more hosts unblocked", unblocks_not_shown_event(count, when))

    def block_cap(self, per_minute: int) -> None:
        self._notice(
            "block rate cap reached; detection goes on",
            {"time": stamp(time.time()), "event": "block-cap", "per_minute": per_minute},
        )

    def block_max(self, active: int) -> None:
        """BLOCKS_MAX blocks (`active`, or more: after a reload that lowered it) are in force:
        no new block until some end."""
        self._notice(
            f"{active} active blocks: BLOCKS_MAX reached: no new block until some "
            "end; detection goes on",
            {"time": stamp(time.time()), "event": "block-max", "active": active},
        )

    def not_blocking(self, address: str, what: str) -> None:
        """`what`: why it is protected, "a default gateway", "a name server" or both."""
        self._notice(
            f"Host {address} is {what}: not blocked",
            {"time": stamp(time.time()), "event": "not-blocking", "src": address},
        )

    def block_failed(self, address: str) -> None:
        """No action of a block took effect: the source is not blocked; its next probe tries
        again."""
        self._notice(
            f"ERROR: Could not block host {address}: every action failed; the next probe tries "
            "again",
            {"time": stamp(time.time()), "event": "block-failed", "src": address},
        )

    def audit_unchecked(self, reason: str, when: float) -> None:
        """A periodic audit that could not look (no audited address, unreadable tables)."""
        message = f"audit: nothing was checked: {reason}"
        log.error("%s", message)
        self._syslog_send(message, WARNING)
        self._event({"time": stamp(when), "event": "audit-unchecked", "reason": reason})

    def table_lost(self) -> None:
        self._notice(
            f"nftables table inet {self.settings.nft_table} was removed; putting the "
            "active blocks back",
            {"time": stamp(time.time()), "event": "table-lost"},
        )

    def element_lost(self, address: str) -> None:
        """A blocked source's nftables element was gone (`nft flush set`, `nft delete
        element`): its probe reached us, and the element is back."""
        self._notice(
            f"nftables element of blocked host {address} was removed; putting it back",
            {"time": stamp(time.time()), "event": "element-lost", "src": address},
        )

    def nft_failed(self, reason: str) -> None:
        """The active blocks could not be put in our nftables sets at start."""
        self._notice(
            f"ERROR: nftables blocks not in force: {reason}; trying again",
            {"time": stamp(time.time()), "event": "nft-failed", "reason": reason},
        )

    def _notice(self, message: str, event: dict[str, Any]) -> None:
        self._syslog_send(f"attackalert: {message}", WARNING)
        self._event(event)

    def mail_held(self, reopens: float) -> None:
        """MAIL_PER_HOUR began to hold reports back (called in the mail thread)."""
        per_hour = self.settings.mail_per_hour
        message = (
            f"mail rate limit reached: MAIL_PER_HOUR={per_hour}; further reports are "
            f"held back until {utc_stamp(reopens)}, then counted in one mail"
        )
        log.warning("%s", message)
        self._syslog_send(f"adminalert: {message}", WARNING)
        self._event(
            {
                "time": stamp(time.time()),
                "event": "mail-rate-limit",
                "per_hour": per_hour,
                "until": stamp(reopens),
            }
        )

    def delivered(self) -> dict[str, dict[str, Any]]:
        """Alerts sent and dropped per path and reason (Delivery.counts), the mailer's included."""
        counts = self.delivery.counts()
        counts["sent"]["mail"] += self._mailer.sent
        counts["dropped"]["mail"]["error"] += self._mailer.failed
        counts["dropped"]["mail"]["rate_limit"] += self._mailer.withheld
        return counts

    @contextlib.contextmanager
    def holding_lines(self) -> Iterator[None]:
        """While the loop acts on a verdict and reports it: the syslog lines the policy says
        inside ("already blocked", "not blocked") go out on leaving, after the verdict's own
        lines. The block is made first, for speed, yet the lines are in PortSentry's order:
        the attack line, then "Host: ... is already blocked Ignoring". Only the calling
        thread's lines are held (the action worker's go out as they come)."""
        self._held, self._holder = [], threading.get_ident()
        try:
            yield
        finally:
            held, self._held = self._held, None
            for send in held:
                send()

    def _syslog_send(self, message: str, severity: int = 5) -> None:
        """A line; held while the loop acts on a verdict (see holding_lines)."""
        self._syslog_named(None, _said(message), severity)

    def _syslog_named(
        self, source: IPAddress | None, line: Callable[[str | None], str], severity: int = 5
    ) -> None:
        """The line `line` makes from `source`'s name (escaped; None when it has none, or for
        `source` None: a line that names no one); held while the loop acts on a verdict (see
        holding_lines)."""
        if self._held is not None and threading.get_ident() == self._holder:
            self._held.append(functools.partial(self._syslog_in_order, source, line, severity))
            return
        self._syslog_in_order(source, line, severity)

    def _syslog_in_order(
        self, source: IPAddress | None, line: Callable[[str | None], str], severity: int = 5
    ) -> None:
        """A line; with RESOLVE_HOST, behind the probe lines that still wait for a name, so that
        "Host ... has been blocked" follows the attack line, as PortSentry wrote them; a line
        with a `source` waits for its name as the attack lines do."""
        if self._syslog is None:
            return
        with self._order:
            waits = (source is not None or self._hostnames) and self._hostnames.submit(
                source, lambda name: self._syslog_write(line(name), severity), time.monotonic()
            )
        if not waits:
            self._syslog_write(line(None), severity)
        elif source is not None:
            self._send_named(time.monotonic())  # a name known already: at once

    def _syslog_write(self, message: str, severity: int = 5) -> None:
        if self._syslog is not None:
            self._syslog.send(message, severity)  # counted by _count_syslog

    def _count_syslog(self, sent: bool) -> None:
        self.delivery.add("syslog", "sent" if sent else "error")

    def _event(self, event: dict[str, Any]) -> None:
        if self._json is None:
            return
        try:
            self._json.write(event)  # a failure is said by JsonLog, once
        except OSError:
            self.delivery.add("json", "error")
            return
        self.delivery.add("json", "sent")
