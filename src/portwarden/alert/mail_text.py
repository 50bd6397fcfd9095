"""What a mail says: a scan report's subject (MAIL_SUBJECT's macros) and body, the line a report
held back by MAIL_PER_HOUR gets in the mail that lists them, that mail's text and the rate-limit
notice's. Text only: the mail thread (alert.mail) decides what is mailed and when; times are
passed in.
"""

import textwrap

from portwarden.alert.line import prefix_words
from portwarden.alert.portsentry import ONGOING
from portwarden.alert.reportbook import Report
from portwarden.detect.engine import Verdict
from portwarden.net.addresses import Proto
from portwarden.text import counted, local_stamp, one_line, port_count


def protocol(verdict: Verdict) -> str:
    """The summary's protocol (a scan has one); for OS probing, those its probes used."""
    if verdict.kind == "os-summary":
        # A pattern is "udp", or "udp/U1" with nmap's name for the probe (see Verdict).
        return "+".join(
            sorted(
                {"UDP" if pattern.split("/")[0] == "udp" else "TCP" for pattern in verdict.patterns}
            )
        )
    return verdict.probe.proto.value.upper()


SCAN_SUBJECT = "portwarden: %p scan from %s to %d"
OS_PROBE_SUBJECT = "portwarden: OS fingerprinting probe ({tools}) from %s to %d"


def subject_template(configured: str | None, verdict: Verdict) -> str:
    """MAIL_SUBJECT when the administrator set it (for every report); else a scan's default
    subject, or an OS-probe run's, which names the tools (ours: no escape needed)."""
    if configured is not None:
        return configured
    if verdict.kind == "os-summary":
        default = OS_PROBE_SUBJECT.format(tools=", ".join(verdict.types))
    else:
        default = SCAN_SUBJECT
    return f"{default} ({ONGOING})" if verdict.ongoing else default


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


def modes(verdict: Verdict) -> str:
    """The modes of the summary's probes, TCP's first as in `protocol` ("stcp+sudp" for
    OS probing over both)."""
    seen = sorted(verdict.modes, key=lambda mode: mode.endswith("udp")) or [verdict.probe.mode]
    return "+".join(seen)


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
        *([f"Source prefix:   {prefix_words(verdict)}"] if verdict.prefix else []),
        f"Destination:     {p.dst}",
        f"Protocol:        {protocol(verdict)}",
        f"Scan type:       {scan_type(verdict)}",
        f"Mode:            {modes(verdict)}",
        f"Started:         {local_stamp(first.seen_at)}",
        f"Last seen:       {local_stamp(p.seen_at)}",
        f"Probes:          {verdict.probes}",
        *detail,
        f"First port:      {first.dport} at {local_stamp(first.seen_at)}",
        f"Last port:       {p.dport} at {local_stamp(p.seen_at)}",
        f"Action:          {action}",
    ]
    if verdict.ongoing:
        lines.append(
            f"Status:          {ONGOING}: this report covers the scan so far; the next "
            "covers what comes after"
        )
    # Every part is ours or already escaped (the source's name by safe_hostname): no second
    # escape.
    return "\n".join(lines) + "\n"


HELD_FIELDS = ("Started", "Source", "Protocol", "Scan type", "Action")  # of body()


def held_line(report: Report) -> str:
    """One report held back by MAIL_PER_HOUR, for the mail that lists them: first time, source,
    protocol, type, (action); a mail already written (audit findings) by its subject. Read from
    the report as written (the store keeps it so), so that a report held before a restart is
    listed as it would have been without the restart."""
    fields = dict(line.split(":", 1) for line in report.body.splitlines() if ":" in line)
    if report.kind not in ("scan-summary", "os-summary") or not fields.keys() >= set(HELD_FIELDS):
        return one_line(report.subject)
    started, source, proto, scan, action = (fields[key].strip() for key in HELD_FIELDS)
    return f"{started}  {source}  {proto}  {scan}  ({action})"


def wrapped(text: str) -> str:
    """Prose for a mail, in lines of at most 72 characters."""
    return textwrap.fill(text, 72) + "\n"


def held_summary(held: int, listed: list[str], since: float, per_hour: int) -> tuple[str, str]:
    """The subject and text of the mail that lists the reports held back (`held` in all;
    `listed`, the first of them, by held_line) since `since` (epoch) by `per_hour`, the cap in
    force when the hold began."""
    more = held - len(listed)
    reports, were = counted(held, "report"), "was" if held == 1 else "were"
    return (
        f"portwarden: {reports} {were} not mailed (MAIL_PER_HOUR)",
        wrapped(
            f"{reports} {were} held back since "
            f"{local_stamp(since)} by MAIL_PER_HOUR={per_hour}. "
            "Every one of them is in the JSON event log."
        )
        + "\nFirst seen, source, protocol, type (action):\n"
        + "".join(f"  {line}\n" for line in listed)
        + (f"  ... and {more} more\n" if more > 0 else ""),
    )


def rate_limit_notice(per_hour: int, reopens: float) -> tuple[str, str]:
    """The subject and text of the notice that MAIL_PER_HOUR=`per_hour` holds reports back
    until `reopens` (epoch)."""
    return (
        "portwarden: mail rate limit reached",
        wrapped(
            f"MAIL_PER_HOUR={per_hour} mails were tried in the last hour "
            "(each try counts, delivered or not). Further reports are held "
            "back, not mailed, until "
            f"{local_stamp(reopens)}; one mail will then list them. Every "
            "report is in the JSON event log regardless. (This notice is "
            "the one mail allowed over the limit.)"
        ),
    )
