"""Reading the old text files (configuration, ignore list) the way PortSentry read them.

PortSentry read both with fgets(): a line ends at '\\n' and nowhere else. str.splitlines() also
breaks at \\v, \\f, \\x1c-\\x1e, \\x85 (NEL: what Latin-1 makes of a cp1252 file's '…') and
U+2028/U+2029, which would shift every line number after it and turn the rest of a comment
into a bogus line.
"""

from collections.abc import Iterator
from pathlib import Path

from portwarden.config.errors import ConfigError


def read_text(path: Path, what: str) -> str:
    """The file's text: UTF-8, or Latin-1 byte for byte for old files that are not UTF-8.

    Raises ConfigError naming `what` ("configuration", "ignore file") if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(path, f"cannot read {what}: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) for every line, split at '\\n' only; a trailing '\\r' (CRLF files) is
    dropped."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")
