"""Looking keys up in a parsed configuration file: values through their parsers, and errors and
warnings that name the file, line, key and value."""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from portwarden.config import values
from portwarden.config.conffile import Entry
from portwarden.config.errors import ConfigError

T = TypeVar("T")


class Reader:
    """Looks keys up in the file, then the defaults; turns ValueError into ConfigError."""

    def __init__(
        self, source: str, entries: dict[str, Entry], defaults: dict[str, Entry], base: Path
    ) -> None:
        self._source = source
        self._entries = entries
        self._defaults = defaults
        self._base = base
        self.used: set[str] = set()

    def entry(self, key: str) -> Entry | None:
        self.used.add(key)
        return self._entries.get(key) or self._defaults.get(key)

    def where(self, key: str) -> str:
        """'file:line: ' of the key's entry, for a warning ('' when it has none)."""
        entry = self.entry(key)
        return f"{entry.source}:{entry.line}: " if entry else ""

    def error(self, key: str, reason: str, value: str | None = None) -> ConfigError:
        """A ConfigError at the key's entry (`value`: the entry's own unless given)."""
        entry = self.entry(key)
        if entry is None:
            return ConfigError(self._source, reason, None, key, value)
        if value is None:
            return ConfigError(
                entry.source, _quote_hint(reason, entry), entry.line, key, entry.value
            )
        return ConfigError(entry.source, reason, entry.line, key, value)

    def get(self, key: str, parse: Callable[[str], T], default: T) -> T:
        entry = self.entry(key)
        if entry is None:
            return default
        try:
            return parse(entry.value)
        except ValueError as error:
            raise self.error(key, str(error)) from None

    def path(self, key: str, default: Path | None) -> Path | None:
        """A path; a relative one is taken relative to the configuration file's directory.
        "" is None: the key is off or unset (EVENT_LOG, IGNORE_FILE, ...)."""
        found = self.get(key, values.optional_path, default)
        return None if found is None else self._base / found

    def required_path(self, key: str, default: Path) -> Path:
        """A path of a key that cannot be off (STATE_DIR, BLOCKED_FILE, ...): "" is an error,
        not a quiet default (STATE_DIR="" would be the system instance's directory); so are
        blanks alone (a file named "   " next to the configuration file is no one's intent)."""
        entry = self.entry(key)
        if entry is not None and not entry.value.strip():
            raise self.error(
                key, f"must name a path (leave the line out for the default, {default})"
            )
        return self.path(key, default) or default


def _quote_hint(reason: str, entry: Entry) -> str:
    """`reason`, and for a value in single quotes (`KEY='1,2'`, as a shell has it) that they
    are none here: the value is read with them."""
    value = entry.value.strip()
    if len(value) < 2 or value[0] != "'" or value[-1] != "'":
        return reason
    return (
        f'{reason}; single quotes are not quotes in this file: use double quotes: {entry.key}="..."'
    )
