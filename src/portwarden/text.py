"""Rendering text safely: untrusted values (attacker data, bad config values) on one line,
times, and port lists."""

import time
from collections.abc import Iterable

from portwarden import limits


def one_line(value: str, limit: int = limits.SHOWN_CHARS_MAX, backslashes: bool = True) -> str:
    """Return `value` with every control or non-ASCII-printable character escaped.

    The result never contains a line break, so a hostile hostname, banner or config value
    cannot forge or split a log line. Long values are cut and marked with '...'. A backslash
    is doubled, so that an escape in the result is always one of ours; `backslashes=False` is
    for a whole line made of values escaped already (a second pass would double theirs).
    """
    out: list[str] = []
    for ch in value[:limit]:
        if ch == "\\" and backslashes:
            out.append("\\\\")
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    if len(value) > limit:
        out.append("...")
    return "".join(out)


def safe_hostname(name: str) -> str:
    """A reverse-DNS name fit for a log line or PortSentry's files: no controls, no spaces,
    no `/` (PortSentry's files write `name/address`)."""
    return one_line(name, limits.HOSTNAME_MAX).replace(" ", "\\x20").replace("/", "\\x2f")


def field_value(value: str) -> str:
    """An untrusted value for a `key=value` field: one_line, `"` turned into `'`, and
    double-quoted when it has a space or is empty, so it cannot end its field and forge
    another (a process renamed `x pid=1 user=root` shows as `"x pid=1 user=root"`)."""
    value = one_line(value).replace('"', "'")
    return f'"{value}"' if " " in value or not value else value


def utc_stamp(epoch: float) -> str:
    """Seconds since the epoch as `2026-11-24T12:09:42Z`: the one time format of events,
    reports and status."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def local_stamp(epoch: float) -> str:
    """Seconds since the epoch in the host's time zone, with its offset from UTC
    (`2026-11-24 13:09:42 +0100`): for what people read on this host (mail, the `blocked`
    table); the offset keeps it unambiguous beside the UTC times of logs and events."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(epoch))


def counted(count: int, noun: str, plural: str = "") -> str:
    """`count` and its noun in the right number: '1 report', '2 reports', '1 summary, 3
    summaries' (`plural` when adding an s will not do)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def are(count: int) -> str:
    """The verb for `count` things: '1 block is', '2 blocks are'."""
    return "is" if count == 1 else "are"


def port_count(count: int) -> str:
    """A count of distinct ports for people: the engine stops counting at PORTS_TRACKED_MAX, so
    that many is shown as at least that many ('64+')."""
    return _at_least(count, limits.PORTS_TRACKED_MAX)


def address_count(count: int) -> str:
    """A count of distinct addresses of an IPv6 prefix, as port_count (ADDRESSES_TRACKED_MAX)."""
    return _at_least(count, limits.ADDRESSES_TRACKED_MAX)


def _at_least(count: int, most: int) -> str:
    return f"{count}+" if count >= most else str(count)


def port_spans(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Ports as (first, last) runs of consecutive numbers, in order: {1, 2, 3, 7} -> [(1, 3),
    (7, 7)]."""
    spans: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if spans and spans[-1][1] == port - 1:
            spans[-1] = (spans[-1][0], port)
        else:
            spans.append((port, port))
    return spans


def port_ranges(ports: Iterable[int]) -> str:
    """{1, 2, 3, 7} -> '1-3,7', as port lists are written in the configuration."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in port_spans(ports))
