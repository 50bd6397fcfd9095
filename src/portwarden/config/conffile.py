"""The PortSentry configuration file format: KEY="value" lines and # comments.

PortSentry 1.2 (ConfigTokenRetrieve) reads a key's value from the first line that starts with
the key followed by '=' or a space; the value runs from the first double quote to the next one.
So `KEY="value"`, `KEY = "value"` and `KEY "value"` all set KEY, and a key that appears twice
means its first occurrence. We keep that meaning and warn about the later duplicates. Without
'=' the value must be quoted (PortSentry skipped `KEY value`, "Quotes missing"). We also
accept, as a superset, leading blanks, tabs where PortSentry wanted a space, unquoted values
after '=' and a trailing comment after the value; on a PortSentry key, such a line (which
PortSentry skipped) is applied with a warning, as it may mean more than it meant before.
"""

import re
from dataclasses import dataclass

from portwarden.config.errors import ConfigError
from portwarden.config.textfile import numbered_lines

# KEY, then '=' and the value, or blanks and a quoted value
_LINE = re.compile(r'[ \t]*([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*=[ \t]*(.*)|[ \t]+(".*))')
_NAME = re.compile(r"[ \t]*([A-Za-z0-9_]*)")  # what a line starts with, if a key
_TRAILER = re.compile(r"[ \t]*(#.*)?")
_UNQUOTED = re.compile(r"(.*?)(?:[ \t]+#.*)?[ \t]*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Entry:
    """One KEY="value" assignment, with where it came from."""

    key: str
    value: str
    source: str
    line: int


def parse_conf(
    text: str, source: str, lenient: bool = False, strict_for: frozenset[str] = frozenset()
) -> tuple[dict[str, Entry], list[str]]:
    """Parse a whole file. Returns the first entry of each key and a list of warnings.

    Raises ConfigError for a line that is not a comment, blank, or KEY=value; `lenient` skips
    such lines instead (for what must work on a broken file, such as `status`), except those
    that start with a key of `strict_for`, which that caller needs.
    """
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    skipped: dict[int, str] = {}  # lines PortSentry skipped: why
    for number, raw in numbered_lines(text):
        stripped = raw.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(raw)
        try:
            if match is None:
                raise ConfigError(source, 'line is not KEY="value"', line=number, text=stripped)
            key, rest = match.group(1), match.group(2) or match.group(3) or ""
            value = _value(rest, source, number, key, stripped)
        except ConfigError:
            if lenient and _leading_name(raw) not in strict_for:
                continue
            raise
        if key in entries:
            first = entries[key].line
            warnings.append(f"{source}:{number}: {key} is set again; line {first} wins"
                            + _what_portsentry_did(skipped.get(first), first))  # fmt: skip
            continue
        entries[key] = Entry(key, value, source, number)
        why = _skipped_by_portsentry(raw, key, rest) if key in PORTSENTRY_KEYS else None
        if why is not None:
            skipped[number] = why
            warnings.append(f"{source}:{number}: PortSentry skipped this line ({why}); "
                            f'portwarden applies it: {key}="{value}"')  # fmt: skip
    return entries, warnings


def _leading_name(raw: str) -> str:
    found = _NAME.match(raw)
    return found.group(1) if found else ""


# The keys PortSentry 1.2 read; a line it skipped set nothing there (our keys it never read).
PORTSENTRY_KEYS = frozenset({
    "TCP_PORTS", "UDP_PORTS", "ADVANCED_PORTS_TCP", "ADVANCED_PORTS_UDP", "ADVANCED_EXCLUDE_TCP",
    "ADVANCED_EXCLUDE_UDP", "IGNORE_FILE", "HISTORY_FILE", "BLOCKED_FILE", "RESOLVE_HOST",
    "BLOCK_TCP", "BLOCK_UDP", "KILL_ROUTE", "KILL_HOSTS_DENY", "KILL_RUN_CMD",
    "KILL_RUN_CMD_FIRST", "SCAN_TRIGGER", "PORT_BANNER"})  # fmt: skip
_NO_QUOTES = "no quotes around the value"


def _skipped_by_portsentry(raw: str, key: str, rest: str) -> str | None:
    """Why PortSentry 1.2 did not take this line of `key` (what followed the key: `rest`), or
    None. Its ConfigTokenRetrieve took a line only with the key at its very start followed by
    '=' or a space (buffer[strlen(token)]), and then went on to the next line; such a line
    with no double quote it skipped ("Quotes missing from %s token. Option skipped"), leaving
    the key at its default."""
    if not raw.startswith(key):
        return "a blank before the key"
    if raw[len(key)] not in "= ":
        return "a tab after the key"
    return None if '"' in rest else _NO_QUOTES


def _what_portsentry_did(why: str | None, line: int) -> str:
    """For a key set again: what PortSentry made of it, given why it skipped the first `line`
    (None: it did not)."""
    if why is None:
        return ", as in PortSentry"
    if why == _NO_QUOTES:  # its search for the key ended there
        return f" (PortSentry skipped line {line} and kept the default)"
    return f" (PortSentry skipped line {line} and used this one)"


def _value(rest: str, source: str, line: int, key: str, text: str) -> str:
    """The value of `rest` (what follows '=', or the blanks after the key); `text` is the whole
    line, for errors."""
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            raise ConfigError(source, "missing closing quote", line=line, text=text)
        value, trailer = rest[1:end], rest[end + 1 :]
        if _TRAILER.fullmatch(trailer) is None:
            raise ConfigError(source, "unexpected text after the closing quote", line=line,
                              text=text)  # fmt: skip
    else:
        unquoted = _UNQUOTED.fullmatch(rest)
        value = unquoted.group(1) if unquoted else rest
    if not value.isprintable():
        raise ConfigError(source, "value has control characters", line=line, key=key, value=value)
    return value
