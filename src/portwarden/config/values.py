"""Parsers for single configuration values. Each raises ValueError with a short reason."""

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from enum import Enum, IntEnum
from pathlib import Path
from typing import NamedTuple, TypeVar

from portwarden import limits

M = TypeVar("M", bound=Enum)

PORT_MIN = 1
PORT_MAX = 65535


class TcpMode(Enum):
    """PortSentry's TCP modes: classic (bind), stealth (raw), advanced (inverse, raw)."""

    CLASSIC = "tcp"
    STEALTH = "stcp"
    ADVANCED = "atcp"


class UdpMode(Enum):
    """PortSentry's UDP modes."""

    CLASSIC = "udp"
    STEALTH = "sudp"
    ADVANCED = "audp"


# The classic modes by name (as probes, reports and the files carry them): they bind the ports.
CLASSIC_MODES = frozenset({TcpMode.CLASSIC.value, UdpMode.CLASSIC.value})

# The TCP and UDP modes of one process (None: that protocol off), as the command line gives them.
Modes = tuple[TcpMode | None, UdpMode | None]


class BlockMode(IntEnum):
    """BLOCK_TCP / BLOCK_UDP: 0 alert only, 1 block (see BlockMaker.steps), 2 command only."""

    ALERT_ONLY = 0
    BLOCK = 1
    RUN_CMD_ONLY = 2


class NftUse(Enum):
    """BLOCK_NFTABLES: the built-in nftables blocker always, never, or when KILL_ROUTE is unset."""

    AUTO = "auto"
    ALWAYS = "1"
    NEVER = "0"


def nft_use(text: str) -> NftUse:
    for use in NftUse:
        if text.strip().lower() == use.value:
            return use
    raise ValueError("must be auto, 1 or 0")


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # [0-9], not \d: that takes any script's digits
_DECIMAL_FORM = "in ASCII digits, with a fraction if need be (30, 0.5)"


def plain_number(text: str) -> float | None:
    """The number `text` writes as the keys take numbers, ASCII digits with an optional
    fractional part ('30', '0.5'); else None. float() alone also reads '٣', '1_000', '+1',
    '1e3', ' 3', 'inf' and 'nan'."""
    return float(text) if _DECIMAL.fullmatch(text) else None


def duration(text: str, most: float = limits.SETTING_SECONDS_MAX) -> float:
    """Seconds, or 0 (or 0.0), which each key gives its meaning: forever (BLOCK_DURATION), ten
    years (BLOCK_DURATION_MAX), never (AUDIT_INTERVAL), off (SERVICE_GONE_GRACE)."""
    value = plain_number(text)
    if value is None:
        raise ValueError(f"must be 0 or a number of seconds {_DECIMAL_FORM}")
    if value == 0:
        return 0.0
    if not 0 < value <= most:
        raise ValueError(f"must be 0, or more than 0 and {_at_most(most)}, in seconds")
    return value


def audit_interval(text: str) -> float:
    """AUDIT_INTERVAL: 0 (no periodic check), or AUDIT_INTERVAL_S_MIN seconds up to a year."""
    value = duration(text)
    if 0 < value < limits.AUDIT_INTERVAL_S_MIN:
        raise ValueError(
            f"must be 0 (no periodic check) or at least {limits.AUDIT_INTERVAL_S_MIN:g} seconds"
        )
    return value


def retry_delay(text: str) -> float:
    """SMTP_RETRY_DELAY: SMTP_RETRY_DELAY_S_MIN seconds up to a year."""
    value = seconds(text)
    if value < limits.SMTP_RETRY_DELAY_S_MIN:
        raise ValueError(f"must be at least {limits.SMTP_RETRY_DELAY_S_MIN:g} seconds")
    return value


def block_duration(text: str) -> float:
    """BLOCK_DURATION and BLOCK_DURATION_MAX: up to ten years, the longest a block lasts
    (limits.BLOCK_SECONDS_MAX)."""
    return duration(text, limits.BLOCK_SECONDS_MAX)


def _at_most(seconds: float) -> str:
    span = "ten years" if seconds == limits.BLOCK_SECONDS_MAX else "a year"
    return f"at most {seconds:.0f} ({span})"


def factor(text: str) -> float:
    value = plain_number(text)
    if value is None:
        raise ValueError(f"must be a number >= 1 {_DECIMAL_FORM}")
    if not 1 <= value <= 1000:
        raise ValueError("must be between 1 and 1000")
    return value


def positive(text: str) -> int:
    return _whole_in(text, 1)


def log_generations(text: str) -> int:
    """EVENT_LOG_KEEP: 1 up to limits.EVENT_LOG_KEEP_MAX."""
    return _whole_in(text, 1, limits.EVENT_LOG_KEEP_MAX)


def _whole_in(text: str, least: int, most: int | None = None) -> int:
    """A whole number from `least` (to `most`), with one message for every wrong value ('-1',
    '0', 'x' alike)."""
    why = (
        f"must be a whole number >= {least}"
        if most is None
        else f"must be a whole number from {least} to {most}"
    )
    text = text.strip()
    value = _whole(text)
    if value is None and most is None and ascii_digits(text):
        raise ValueError("is too large (at most 18 digits)")
    if value is None or value < least or (most is not None and value > most):
        raise ValueError(why)
    return value


def log_size(text: str) -> int:
    """EVENT_LOG_MAX_BYTES: at least limits.EVENT_LOG_BYTES_MIN."""
    why = f"must be a whole number of bytes, at least {limits.EVENT_LOG_BYTES_MIN} (64 KiB)"
    if not ascii_digits(text.strip()):  # 64k, 1e6
        raise ValueError(why)
    value = count(text)
    if value < limits.EVENT_LOG_BYTES_MIN:
        raise ValueError(why)
    return value


def ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also takes '²' (which int() refuses) and '１' or '٣' (which it
    reads as 1 and 3)."""
    return text.isascii() and text.isdigit()


def _whole(text: str) -> int | None:
    """A whole number in ASCII digits, or None. At most 18 digits besides leading zeros: int()
    refuses more than 4,300 with a message of its own, and no count here needs a quintillion."""
    if not ascii_digits(text) or len(text.lstrip("0")) > 18:
        return None
    return int(text)


def port(text: str) -> int:
    text = text.strip()
    value = _whole(text)
    if value is None or not PORT_MIN <= value <= PORT_MAX:
        raise ValueError(f"'{text}' is not a port number ({PORT_MIN}-{PORT_MAX})")
    return value


def ports_below(text: str) -> int:
    """ADVANCED_PORTS_*: every port below this number is watched, so 65536 takes in 65535."""
    text = text.strip()
    value = _whole(text)
    if value is None or not PORT_MIN <= value <= PORT_MAX + 1:
        raise ValueError(
            f"'{text}' must be a number from {PORT_MIN} to {PORT_MAX + 1} (every "
            f"port below it is watched: {PORT_MAX + 1} watches all)"
        )
    return value


def port_list(text: str) -> tuple[int, ...]:
    """'1,7,9,100-200' -> sorted unique ports. Empty means no ports. No count limit.

    Empty items ('1,,2', a trailing comma) are skipped, as PortSentry's strtok() did
    (has_empty_items tells, for a warning). Ranges are merged before they are expanded, so a
    list of many overlapping ranges costs no more than the ports it names (at most 65,535)."""
    spans: list[tuple[int, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low, dash, high = item.partition("-")
        first, last = (port(low), port(high)) if dash else (port(item),) * 2
        if first > last:
            raise ValueError(f"range '{item}' runs backwards")
        spans.append((first, last))
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(p for first, last in merged for p in range(first, last + 1))


def has_empty_items(text: str) -> bool:
    """Whether a port list that is not empty has an empty item: '1,,2', '1,2,', ',1'."""
    return bool(text.strip()) and any(not item.strip() for item in text.split(","))


def port_set(text: str) -> frozenset[int]:
    return frozenset(port_list(text))


_NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
PORTMAP_TABLE = "portwarden_portmap"  # `portwarden portmap protect`'s own table


def nft_table(text: str) -> str:
    """NFT_TABLE: a plain nftables name, not the portmap protection's table."""
    name = text.strip()
    if not _NFT_NAME.fullmatch(name):
        raise ValueError("must be a letter, then up to 31 letters, digits or '_'")
    if name == PORTMAP_TABLE:
        raise ValueError("is the table of 'portwarden portmap protect'; choose another")
    return name


def flag(text: str) -> bool:
    """Our 0/1 switches."""
    if text.strip() not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return text.strip() == "1"


def portsentry_flag(text: str) -> bool:
    """PortSentry's 0/1 switches (RESOLVE_HOST, KILL_RUN_CMD_FIRST), leading zeros allowed."""
    return flag(_atoi_digits(text))


def _atoi_digits(text: str) -> str:
    """A decimal number without blanks around it and without leading zeros ('01' is '1',
    '00' is '0'), as PortSentry's atoi() read its switches; anything else as it is, for the
    parser to refuse ('yes', '1x', '')."""
    text = text.strip()
    return (text.lstrip("0") or "0") if ascii_digits(text) else text


def count(text: str) -> int:
    text = text.strip()
    if not ascii_digits(text):
        raise ValueError("must be a whole number >= 0")
    value = _whole(text)
    if value is None:
        raise ValueError("is too large (at most 18 digits)")
    return value


def seconds(text: str) -> float:
    value = plain_number(text)
    if value is None:
        raise ValueError(f"must be a number of seconds {_DECIMAL_FORM}")
    if not 0 < value <= limits.SETTING_SECONDS_MAX:
        raise ValueError(
            f"must be more than 0 and {_at_most(limits.SETTING_SECONDS_MAX)}, in seconds"
        )
    return value


def scan_threshold(text: str) -> int:
    value = count(text)
    if value > limits.PORTS_TRACKED_MAX:
        raise ValueError(
            f"must be at most {limits.PORTS_TRACKED_MAX} (0 turns the scandetd model off)"
        )
    return value


def ipv6_source_prefix(text: str) -> int:
    """IPV6_SOURCE_PREFIX: a prefix length from limits.IPV6_SOURCE_PREFIX_MIN to 128."""
    return _whole_in(text, limits.IPV6_SOURCE_PREFIX_MIN, 128)


def block_mode(text: str) -> BlockMode:
    """BLOCK_TCP / BLOCK_UDP, leading zeros allowed (see _atoi_digits)."""
    number = _atoi_digits(text)
    if number not in ("0", "1", "2"):
        raise ValueError("must be 0 (alert only), 1 (block) or 2 (run KILL_RUN_CMD only)")
    return BlockMode(int(number))


def optional_text(text: str) -> str | None:
    return text or None


def optional_path(text: str) -> Path | None:
    return path(text) if text else None


def path(text: str) -> Path:
    if not text:
        raise ValueError("must not be empty")
    return Path(text)


MODE_OFF = "none"  # TCP_MODE / UDP_MODE for a protocol not watched; "" means it too


def _mode_parser(kind: type[M], what: str) -> Callable[[str], M | None]:
    """Exactly the words Debian's init script took from /etc/default/portsentry (lower case,
    no dash: it ran `portsentry -$TCP_MODE`, and "" started nothing), plus our `none`."""
    names = ", ".join(m.value for m in kind) + f', {MODE_OFF} or ""'

    def parse(text: str) -> M | None:
        if text in ("", MODE_OFF):
            return None
        for mode in kind:
            if mode.value == text:
                return mode
        raise ValueError(f"unknown {what} mode; use one of {names}")

    return parse


tcp_mode = _mode_parser(TcpMode, "TCP")
udp_mode = _mode_parser(UdpMode, "UDP")


FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)


# syslog.conf's deprecated synonyms (sysklogd's and rsyslog's tables): the same facility.
_FACILITY_SYNONYMS = {"security": "auth"}


def facility(text: str) -> str:
    """A syslog facility name, as in syslog.conf (its deprecated `security` is `auth`);
    PortSentry's LOG_DAEMON spelling too. Not `kern`: that is the kernel's (syslog(3) never
    sends it; rsyslog would file our lines as kernel messages)."""
    name = text.strip().lower().removeprefix("log_")
    name = _FACILITY_SYNONYMS.get(name, name)
    if name == "kern":
        raise ValueError(
            "kern is the kernel's own facility, which a program may not use "
            "(rsyslog files it as kernel messages): use daemon, auth, authpriv, "
            "local0 ... local7"
        )
    if name not in FACILITIES:
        usable = ", ".join(name for name in FACILITIES if name != "kern")
        raise ValueError(f"unknown syslog facility; use one of {usable}")
    return name


_MAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_HOST = re.compile(r"[A-Za-z0-9.:-]+")


def mail_address(text: str) -> str:
    text = text.strip()
    if not _MAIL.fullmatch(text):
        raise ValueError(f"'{text}' is not a plain mail address (user@domain)")
    return text


def mail_addresses(text: str) -> tuple[str, ...]:
    """MAIL_TO: several addresses, comma-separated; one named again is kept once (its first
    spelling), so the relay gets it as one RCPT (see repeated_mail_addresses)."""
    kept: dict[str, str] = {}
    for address in _mail_items(text):
        kept.setdefault(_mailbox(address), address)
    return tuple(kept.values())


def repeated_mail_addresses(text: str) -> list[str]:
    """The addresses MAIL_TO names more than once, each once, for a warning."""
    seen = Counter(_mailbox(address) for address in _mail_items(text))
    return [address for address in mail_addresses(text) if seen[_mailbox(address)] > 1]


def _mail_items(text: str) -> list[str]:
    return [mail_address(item) for item in text.split(",") if item.strip()]


def _mailbox(address: str) -> str:
    """One mailbox, however spelt: a domain's case does not matter (a local part's may)."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def header_text(text: str) -> str:
    """Text for a mail header: printable, no line breaks (no header injection)."""
    if not text.isprintable():
        raise ValueError("must be printable text on one line")
    return text


def optional_header_text(text: str) -> str | None:
    """Header text; empty: none given (the default applies)."""
    return header_text(text) or None


def host(text: str) -> str:
    """A host name or address for SMTP: letters, digits, dots, colons, dashes."""
    text = text.strip()
    if not _HOST.fullmatch(text):
        raise ValueError(f"'{text}' is not a host name or address")
    return text


class ListenAddress(NamedTuple):
    """METRICS_LISTEN's address and port; str() is the form the key takes."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def listen_address(text: str) -> ListenAddress | None:
    """METRICS_LISTEN: '' (off), 'PORT' (loopback), 'ADDRESS:PORT' or '[IPV6]:PORT'."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an unclosed or misplaced ']': use [IPV6]:PORT")
        if not rest:
            raise ValueError("no port after the brackets: use [IPV6]:PORT")
        if not host:
            raise ValueError("empty brackets: use [IPV6]:PORT, or PORT for 127.0.0.1")
        address = _listen_host(host)
        if address.version == 4:
            raise ValueError(f"brackets are for IPv6 addresses: use {host}{rest}")
        return ListenAddress(host, port(rest[1:]))
    host, _, number = text.rpartition(":")
    if ":" in host:
        # '::1:9918' is itself an IPv6 address: which part is the port is a guess.
        raise ValueError("an IPv6 address needs brackets and a port: [IPV6]:PORT")
    _listen_host(host or "127.0.0.1")
    return ListenAddress(host or "127.0.0.1", port(number))


def _listen_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"'{host}' is not an IP address (use PORT, ADDRESS:PORT or [IPV6]:PORT)"
        ) from None


SEVERITIES = ("alert", "crit", "err", "warning", "notice", "info", "debug")
_SAMHAIN_SEVERITIES = {"warn": "warning"}  # samhain's SeverityPortCheck names the rest alike


def severity(text: str) -> str:
    """A syslog severity name for audit findings; samhain's `warn` is syslog's `warning`."""
    name = text.strip().lower()
    name = _SAMHAIN_SEVERITIES.get(name, name)
    if name not in SEVERITIES:
        raise ValueError(f"unknown severity; use one of {', '.join(SEVERITIES)} (or warn)")
    return name
