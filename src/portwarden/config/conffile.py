"""The PortSentry configuration file format: KEY="value" lines and # comments.

Keys, `=` and quotes as PortSentry 1.2 wrote them: `KEY="value"`, `KEY = "value"`,
`KEY "value"`; a key that appears twice means its first occurrence (we warn about the later
ones). We also accept, as a superset, leading blanks, tabs, unquoted values after '=' and a
trailing comment after the value. PortSentry's own reading was cruder (it found a key anywhere
in a line, took the value from the line's first double quote, and skipped a line without
quotes): portsentry_reading.py models it, and a PortSentry key whose value it would have read
otherwise is applied our way, with a warning.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeVar

from portwarden import limits
from portwarden.config.errors import ConfigError
from portwarden.textfile import numbered_lines

# KEY, then '=' and the value, or blanks and a quoted value
_LINE = re.compile(r'[ \t]*([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*=[ \t]*(.*)|[ \t]+(".*))')
_NAME = re.compile(r"[ \t]*([A-Za-z0-9_]*)")  # what a line starts with, if a key
_TRAILER = re.compile(r"[ \t]*(#.*)?")
T = TypeVar("T")
_UNQUOTED = re.compile(r"(.*?)(?:[ \t]+#.*)?[ \t]*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Entry:
    """One KEY="value" assignment, with where it came from."""

    key: str
    value: str
    source: str
    line: int


def parse_conf(
    text: str,
    source: str,
    lenient: bool = False,
    strict_for: frozenset[str] = frozenset(),
    known: frozenset[str] | None = None,
) -> tuple[dict[str, Entry], list[str]]:
    """Parse a whole file. Returns the first entry of each key and a list of warnings.

    Raises ConfigError for a line that is not a comment, blank, or KEY=value; `lenient` skips
    such lines instead (for what must work on a broken file, such as `status`), except those
    that start with a key of `strict_for`, which that caller needs. With `known` (the keys),
    such a line that starts with none of them is skipped with a warning, as PortSentry skipped
    it (a comment an editor wrapped onto a second line); one that does is still an error, since
    its setting would be lost.
    """
    entries: dict[str, Entry] = {}
    skipped: list[tuple[int, str]] = []
    repeated: list[tuple[int, str]] = []
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
        except ConfigError as error:
            name = _leading_name(raw)
            if lenient and name not in strict_for:
                continue
            if known is not None and name not in known:
                skipped.append(
                    (
                        number,
                        f"{error}; it starts with no key portwarden knows, so "
                        "it is skipped (as PortSentry did)",
                    )
                )
                continue
            raise
        if key in entries:
            first = entries[key].line
            repeated.append((number, f"{source}:{number}: {key} is set again; line {first} wins"))
            continue
        entries[key] = Entry(key, value, source, number)
    at, said = itemgetter(0), itemgetter(1)
    warnings = capped(skipped, at, said, source, "lines skipped") + capped(
        repeated, at, said, source, "keys set again"
    )
    return entries, warnings


def capped(
    items: Sequence[T], line: Callable[[T], int], text: Callable[[T], str], source: str, what: str
) -> list[str]:
    """The warnings `text` of the first WARNINGS_OF_A_KIND_MAX `items`, then one line counting
    the rest by their `line` numbers: a file of a million stray lines gives a few warnings, not
    a million (nor a million warnings to compose)."""
    said = [text(item) for item in items[: limits.WARNINGS_OF_A_KIND_MAX]]
    rest = items[limits.WARNINGS_OF_A_KIND_MAX :]
    if rest:
        said.append(
            f"{source}: and {len(rest)} more {what} (lines {line(rest[0])}-{line(rest[-1])})"
        )
    return said


def _leading_name(raw: str) -> str:
    found = _NAME.match(raw)
    return found.group(1) if found else ""


def _value(rest: str, source: str, line: int, key: str, text: str) -> str:
    """The value of `rest` (what follows '=', or the blanks after the key); `text` is the whole
    line, for errors."""
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            raise ConfigError(source, "missing closing quote", line=line, text=text)
        value, trailer = rest[1:end], rest[end + 1 :]
        if _TRAILER.fullmatch(trailer) is None:
            raise ConfigError(
                source, "unexpected text after the closing quote", line=line, text=text
            )
    else:
        unquoted = _UNQUOTED.fullmatch(rest)
        value = unquoted.group(1) if unquoted else rest
    if not value.isprintable():
        raise ConfigError(source, "value has control characters", line=line, key=key, value=value)
    return value
