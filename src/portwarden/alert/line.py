"""The stable one-line form of a verdict: `attack key=value ...`, the same for every kind.

Fields, in this order: kind src dst proto port type mode flags probes ports first [os]
[patterns] [ongoing] [prefix [addresses]] [ip_options] time; the log adds `action` to summaries
(alert.dispatch). `ports` stops counting at limits.PORTS_TRACKED_MAX, shown as `64+`; a
summary's `addresses` at limits.ADDRESSES_TRACKED_MAX. Values with spaces are
double-quoted; anything from the network is escaped by one_line, so a line can never be split
or forged.
"""

from datetime import UTC, datetime

from portwarden.detect.engine import Verdict
from portwarden.text import address_count, field_value, port_count


def verdict_line(verdict: Verdict, action: str = "") -> str:
    """The `attack` log line; `action` (summaries) says what was done about the source."""
    p = verdict.probe
    if verdict.kind == "scan":
        scan = p.scan
    elif verdict.kind == "scan-summary":
        scan = ", ".join(verdict.types)
    else:
        scan = f"OS fingerprinting probe ({p.os_tool})"
    fields = [
        ("kind", verdict.kind),
        ("src", str(p.src)),
        ("dst", str(p.dst)),
        ("proto", p.proto.value),
        ("port", str(p.dport)),
        ("type", scan),
        ("mode", p.mode),
        ("flags", p.flags or "-"),
        ("probes", str(verdict.probes)),
        ("ports", port_count(verdict.ports)),
        ("first", "yes" if verdict.first else "no"),
    ]
    if verdict.kind == "scan" and p.os_match:
        fields.append(("os", p.os_match))
    if verdict.kind.startswith("os-"):
        fields.append(("patterns", " ".join(verdict.patterns)))
    if verdict.ongoing:
        fields.append(("ongoing", "yes"))
    if verdict.prefix is not None:
        fields.append(("prefix", str(verdict.prefix)))
        if verdict.kind.endswith("summary"):
            fields.append(("addresses", address_count(verdict.addresses)))
    if p.ip_options:
        fields.append(("ip_options", "yes"))
    stamp = datetime.fromtimestamp(p.seen_at, UTC).isoformat(timespec="milliseconds")
    fields.append(("time", stamp.replace("+00:00", "Z")))
    if action:
        fields.append(("action", action))
    return "attack " + " ".join(f"{key}={field_value(value)}" for key, value in fields)


def prefix_words(verdict: Verdict) -> str:
    """A summary's source when it is an IPv6 prefix (IPV6_SOURCE_PREFIX), for people:
    `2001:db8:1:2::/64 (5 addresses)`; '' when the source is the probe's address alone."""
    if verdict.prefix is None:
        return ""
    count = address_count(verdict.addresses)
    return f"{verdict.prefix} ({count} {'address' if count == '1' else 'addresses'})"


class LineLimiter:
    """A token bucket: one token per alert, whose lines go or are held back together (the
    caller counts what it holds back, in lines)."""

    def __init__(self, per_second: float, burst: int) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = 0.0

    def allow(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
