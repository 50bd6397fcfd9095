"""What PortSentry 1.2 read from a portsentry.conf, as a model to compare our reading with.

PortSentry's ConfigTokenRetrieve (portsentry_io.c) reads the file with fgets() into a
1024-byte buffer, so a longer line comes in pieces, each taken as a line of its own. It passes
over a piece that starts with '#'. A piece matches a key when the key occurs anywhere in it
(strstr) and the character at the column of the key's length, not the one after where the key
was found, is '=' or a space: `KEY="v"` and `KEY "v"`, but also ten blanks before
`TCP_PORTS="v"`, or `BLOCK_UDP="1" # TCP_PORTS="v"` for TCP_PORTS (column 9 is '='). The first
matching piece ends the search: without a double quote in it, the option is skipped ("Quotes
missing from %s token. Option skipped") and the key left unset; else the value runs from the
first double quote in the piece to the next one, or to the first character that is not
printable ASCII (a tab, the line's end).

The model reads the file's bytes as they are, one character per byte: C counts bytes (the
column of `=`, fgets()'s 1023), and a UTF-8 byte-order mark is three bytes before the first
key, so PortSentry never read the first line of such a file.

portwarden reads the file its own way (conffile.py); `differences` names every PortSentry key
whose value would differ, and every port list with a range (PortSentry's atoi() read "100-200"
as port 100), so a migrated file never silently means something else.
"""

from dataclasses import dataclass

from portwarden.config.conffile import Entry
from portwarden.text import one_line
from portwarden.textfile import BOM

# The keys PortSentry 1.2 read (our own keys it never read).
PORTSENTRY_KEYS = (
    "TCP_PORTS",
    "UDP_PORTS",
    "ADVANCED_PORTS_TCP",
    "ADVANCED_PORTS_UDP",
    "ADVANCED_EXCLUDE_TCP",
    "ADVANCED_EXCLUDE_UDP",
    "IGNORE_FILE",
    "HISTORY_FILE",
    "BLOCKED_FILE",
    "RESOLVE_HOST",
    "BLOCK_TCP",
    "BLOCK_UDP",
    "KILL_ROUTE",
    "KILL_HOSTS_DENY",
    "KILL_RUN_CMD",
    "KILL_RUN_CMD_FIRST",
    "SCAN_TRIGGER",
    "PORT_BANNER",
)
_PIECE_CHARS = 1023  # fgets(buffer, MAXBUF = 1024, ...): at most 1023 characters and the NUL
# The port lists PortSentry cut at ',' (strtok) and read item by item with atoi(), so that a
# range was its first port; with what portwarden does with every port of one.
_PORT_LISTS = {
    "TCP_PORTS": "watches",
    "UDP_PORTS": "watches",
    "ADVANCED_EXCLUDE_TCP": "excludes",
    "ADVANCED_EXCLUDE_UDP": "excludes",
}


@dataclass(frozen=True, slots=True)
class PortSentryReading:
    """Where PortSentry's search for a key ended (line None: no line matched) and the value it
    took there (None: that line had no quote, so it skipped the option)."""

    line: int | None
    value: str | None


def portsentry_reading(data: bytes, key: str) -> PortSentryReading:
    """What PortSentry 1.2 made of `key` in the file whose bytes are `data`."""
    return _reading(_lines(data), key)


def _reading(lines: list[str], key: str) -> PortSentryReading:
    for number, line in enumerate(lines, start=1):
        if key not in line:  # in no piece either: passed over at once (a huge file)
            continue
        for piece in _pieces(line + "\n"):
            if piece.startswith("#") or key not in piece or piece[len(key)] not in "= ":
                continue
            start = piece.find('"')
            if start < 0:
                return PortSentryReading(number, None)
            value = piece[start + 1 :]
            end = next(
                (i for i, ch in enumerate(value) if ch == '"' or not " " <= ch <= "~"), len(value)
            )
            return PortSentryReading(number, value[:end])
    return PortSentryReading(None, None)


def _pieces(line: str) -> list[str]:
    """The strings fgets() gave for `line` (with its '\\n'), each cut at a NUL as C reads it."""
    chunks = [line[i : i + _PIECE_CHARS] for i in range(0, len(line), _PIECE_CHARS)]
    return [chunk.partition("\0")[0] for chunk in chunks]


def _lines(data: bytes) -> list[str]:
    """The file's lines, one character per byte."""
    return data.decode("latin-1").split("\n")


def differences(
    data: bytes, source: str, entries: dict[str, Entry], defaults: dict[str, Entry]
) -> list[str]:
    """One warning for each PortSentry key whose value in the file `data` (read by us into
    `entries`, with `defaults` for the keys it leaves out) PortSentry 1.2 would have read
    otherwise. Our reading stands: it is the saner one, but the file no longer means what it
    meant, and an administrator must hear of it."""
    warnings = []
    lines = _lines(data)
    for key in PORTSENTRY_KEYS:
        ours, theirs = entries.get(key), _reading(lines, key)
        if ours is None and theirs.line is None:
            continue  # both take their defaults
        ours_value = ours.value if ours else defaults[key].value if key in defaults else None
        if ours_value == theirs.value:
            if ours is not None and key in _PORT_LISTS:
                warnings += _first_ports(ours, source, _PORT_LISTS[key])
            continue
        if ours is not None and theirs.line is None:
            why = _unread(lines[ours.line - 1], key)
            said = f"PortSentry 1.2 did not read line {ours.line} ({why}) and left it unset"
        else:
            said = _theirs(theirs)
        warnings.append(
            f"{source}:{ours.line if ours else theirs.line}: {key}: {said}; "
            f"portwarden applies {_ours(ours, defaults.get(key))}"
        )
    return warnings


def _first_ports(ours: Entry, source: str, does: str) -> list[str]:
    """One warning if the port list `ours`, which PortSentry 1.2 read as we do, has a range:
    it read "100-200" as port 100, so the file now names more ports."""
    ranges = [item.strip() for item in ours.value.split(",") if "-" in item]
    if not ranges:
        return []
    first = ranges[0]
    port = first.partition("-")[0].strip().lstrip("0") or "0"  # (a bad one is an error later)
    return [
        f"{source}:{ours.line}: {ours.key}: PortSentry 1.2 read only the first port of a "
        f'range ("{one_line(first)}" as port {one_line(port)}); portwarden {does} every '
        "port of each range"
    ]


def _unread(line: str, key: str) -> str:
    """Why PortSentry did not read `line`, which we read as setting `key`."""
    if line.startswith(BOM.decode("latin-1")):
        return "a byte-order mark before the key"
    return "a tab after the key" if line.startswith(key) else "a blank before the key"


def _theirs(theirs: PortSentryReading) -> str:
    if theirs.value is None:
        return f"PortSentry 1.2 skipped it at line {theirs.line} (no quotes) and left it unset"
    return f'PortSentry 1.2 read "{theirs.value}" (line {theirs.line})'


def _ours(ours: Entry | None, default: Entry | None) -> str:
    if ours is not None:
        return f'"{ours.value}" (line {ours.line})'
    return "its default" if default is None else f'its default "{default.value}"'
