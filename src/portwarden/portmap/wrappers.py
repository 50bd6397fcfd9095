"""hosts.allow and hosts.deny lines for the portmapper, added and removed exactly.

Our lines sit in a block at the top of each file, between two marker comments:

    # portwarden-portmap begin: added by 'portwarden portmap protect'; ...
    rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128
    rpcbind portmap: 198.18.0.16/255.255.255.240 [2001:db8::10]/124
    # portwarden-portmap end

Loopback has a line of its own, first, and the allowed networks follow on as many lines as they
need: libwrap skips a line longer than its buffer, and a skipped allow line with our `ALL` in
hosts.deny would lock everyone out, loopback included. The markers are whole comment lines
because TCP Wrappers has no end-of-line comments: a trailing "# marker" would be read as two
more client patterns, host names, and would make libwrap look up the caller's name. At the top,
our allow lines are read before any of the administrator's lines. Unprotect removes the block and
nothing else, so the file is byte-identical to before; a file we created (marked in the begin
line) is removed again when nothing else was added to it.
"""

import difflib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from portwarden.config.ignore import ALWAYS_IGNORED, Network
from portwarden.respond.files import read_if_exists, replace_atomically

DAEMONS = "rpcbind portmap"
MARKER = "# portwarden-portmap"
BEGIN = (
    f"{MARKER} begin: added by 'portwarden portmap protect'; "
    "'portwarden portmap unprotect' removes these lines"
)
CREATED = " (and created this file)"
END = f"{MARKER} end"
_RULE_START = f"{DAEMONS}: "

# libwrap reads hosts.allow and hosts.deny a line at a time into a 2048-byte buffer (BUFLEN in
# hosts_access.c) and skips a longer line ("missing newline or line too long"). Our rule lines
# stay at half of that, whatever the number of allowed networks.
RULE_LINE_CHARS_MAX = 1000


class WrappersError(Exception):
    """A file we cannot change safely; str() is one line naming the file."""


def pattern(network: Network) -> str:
    """The TCP Wrappers client pattern: IPv4 as address/dotted-mask, IPv6 as [net]/bits."""
    if isinstance(network, ipaddress.IPv4Network):
        if network.prefixlen == 32:
            return str(network.network_address)
        return f"{network.network_address}/{network.netmask}"
    return f"[{network.network_address}]/{network.prefixlen}"


def allow_rules(networks: tuple[Network, ...]) -> tuple[str, ...]:
    """Loopback alone on the first line, then the other `networks`, as many to a line as fit."""
    rules = [_RULE_START + " ".join(pattern(n) for n in ALWAYS_IGNORED)]
    line = ""
    for text in (pattern(n) for n in networks if n not in ALWAYS_IGNORED):
        if line and len(_RULE_START) + len(line) + 1 + len(text) > RULE_LINE_CHARS_MAX:
            rules.append(_RULE_START + line)
            line = ""
        line = f"{line} {text}" if line else text
    return (*rules, _RULE_START + line) if line else tuple(rules)


def deny_rules() -> tuple[str, ...]:
    return (_RULE_START + "ALL",)


@dataclass(frozen=True)
class FileChange:
    """One file's text before and after (None: the file does not exist)."""

    path: Path
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff of the change ('' when nothing changes)."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null",
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )

    def apply(self) -> None:
        if not self.changed:
            return
        if self.after is None:
            self.path.unlink()
        else:
            replace_atomically(self.path, self.after)

    def undo(self) -> None:
        """Put the file back as it was (used when a later step of the same command fails)."""
        FileChange(self.path, self.after, self.before).apply()


@dataclass(frozen=True)
class Block:
    """Our block found in a file: the indexes of its begin line and of the line after its end
    line, and whether we created the file."""

    start: int
    stop: int
    created: bool


def find_block(path: Path, lines: list[str]) -> Block | None:
    """Our block in `lines` (with line ends), or None. Raises WrappersError if it was edited."""
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r\n").startswith(BEGIN)]
    if not starts:
        return None
    start = starts[0]
    body = [line.rstrip("\r\n") for line in lines[start:]]
    rules = body[1 : body.index(END)] if END in body else []
    intact = body[0] in (BEGIN, BEGIN + CREATED) and bool(rules)
    if len(starts) > 1 or not intact or not all(r.startswith(_RULE_START) for r in rules):
        raise WrappersError(
            f"{path}:{start + 1}: the portwarden-portmap block was edited by hand "
            f"(expected the begin line, '{_RULE_START}...' lines, the end line); fix it first"
        )
    return Block(start, start + len(rules) + 2, body[0] == BEGIN + CREATED)


def _read(path: Path) -> str | None:
    try:
        return read_if_exists(path)
    except OSError as error:
        raise WrappersError(f"{path}: {error.strerror or error}") from None


def protect_change(path: Path, rules: tuple[str, ...]) -> FileChange:
    """The change that puts our block with `rules` at the top of `path` (or updates it)."""
    before = _read(path)
    lines = (before or "").splitlines(keepends=True)
    block = find_block(path, lines)
    body = "".join(rule + "\n" for rule in rules)
    if block is None:
        begin = BEGIN + (CREATED if before is None else "")
        return FileChange(path, before, f"{begin}\n{body}{END}\n" + (before or ""))
    lines[block.start + 1 : block.stop - 1] = [body]
    return FileChange(path, before, "".join(lines))


def unprotect_change(path: Path) -> FileChange:
    """The change that removes our block from `path` (and the file, if we created it)."""
    before = _read(path)
    lines = (before or "").splitlines(keepends=True)
    block = find_block(path, lines)
    if block is None:
        return FileChange(path, before, before)
    after = "".join(lines[: block.start] + lines[block.stop :])
    return FileChange(path, before, None if block.created and not after else after)


def check_writable(change: FileChange) -> None:
    """Fail before anything is written if `change` could not be made."""
    if not change.changed:
        return
    path = change.path
    if path.is_symlink():
        raise WrappersError(f"{path}: is a symbolic link; refusing to replace it")
    if path.exists() and not path.is_file():
        raise WrappersError(f"{path}: not a regular file")
    if not path.parent.is_dir():
        raise WrappersError(f"{path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise WrappersError(f"{path}: not writable")
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        raise WrappersError(f"{path}: read-only file system")
