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
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

from portwarden import limits
from portwarden.config.ignore import ALWAYS_IGNORED, Network, parse_network, shown, within
from portwarden.fileedit import (
    FileChanged,
    Identity,
    UnsafeFile,
    identity_of,
    read_with_identity,
    replace_atomically,
)
from portwarden.portmap.libwrap import (
    daemon_pattern_matches,
    daemons_match,
    fields,
    is_except,
    is_keyword,
    names,
    split_except,
    words,
)
from portwarden.text import one_line
from portwarden.textfile import lines_with_ends

DAEMONS = "rpcbind portmap"
MARKER = "# portwarden-portmap"
BEGIN = (
    f"{MARKER} begin: added by 'portwarden portmap protect'; "
    "'portwarden portmap unprotect' removes these lines"
)
CREATED = " (and created this file)"
END = f"{MARKER} end"
_RULE_START = f"{DAEMONS}: "
# The daemon name rpcbind checks its callers under (Debian's, and every current distribution's),
# and the old portmapper's, which our lines name too.
RPCBIND, PORTMAP = "rpcbind", "portmap"
# The options of a hosts.allow line that keep a caller it matches from the daemon.
_REFUSING = frozenset({"deny", "twist"})
_NO_MASK = "255.255.255.255"  # what inet_addr() cannot tell from its error value
EVERYONE: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class WrappersError(Exception):
    """A file we cannot change safely; str() is one line naming the file."""


def pattern(network: Network) -> str:
    """The TCP Wrappers client pattern: IPv4 as address/dotted-mask, IPv6 as [net]/bits."""
    if isinstance(network, ipaddress.IPv4Network):
        if network.prefixlen == 32:
            return str(network.network_address)
        return f"{network.network_address}/{network.netmask}"
    return f"[{network.network_address}]/{network.prefixlen}"


def allow_rules(networks: tuple[Network, ...], refused: Iterable[Network] = ()) -> tuple[str, ...]:
    """Loopback alone on the first line, then the other `networks`, as many to a line as fit,
    each line with `EXCEPT` and the `refused` networks inside its own (hosts.deny's bans, which
    our lines, read first, would otherwise override): `rpcbind portmap: 198.18.0.0/255.255.255.0
    EXCEPT 198.18.0.20`. A network whose exceptions do not fit on one line is cut in halves
    until they do (a half that is all refused is left out)."""
    rules = [_RULE_START + " ".join(pattern(n) for n in ALWAYS_IGNORED)]
    line: list[_Entry] = []
    others = [n for n in networks if n not in ALWAYS_IGNORED]
    for entry in _entries(others, collapsed(refused)):
        if line and len(_rule([*line, entry])) > limits.HOSTS_ALLOW_RULE_LINE_CHARS_MAX:
            rules.append(_rule(line))
            line = []
        line.append(entry)
    return (*rules, _rule(line)) if line else tuple(rules)


class _Entry(NamedTuple):
    network: Network  # allowed
    excepted: tuple[Network, ...]  # refused inside it


def _entries(networks: Iterable[Network], refused: tuple[Network, ...]) -> Iterator[_Entry]:
    for network in networks:
        inside = tuple(r for r in refused if within(r, network))
        if network in inside:
            continue
        entry = _Entry(network, inside)
        if len(_rule([entry])) <= limits.HOSTS_ALLOW_RULE_LINE_CHARS_MAX:
            yield entry
        else:
            yield from _entries(network.subnets(prefixlen_diff=1), inside)


def _rule(entries: list[_Entry]) -> str:
    named = " ".join(pattern(entry.network) for entry in entries)
    excepted = " ".join(pattern(n) for entry in entries for n in entry.excepted)
    return _RULE_START + named + (f" EXCEPT {excepted}" if excepted else "")


def collapsed(networks: Iterable[Network]) -> tuple[Network, ...]:
    """`networks` merged where they overlap or adjoin, IPv4 first, in address order."""
    listed = list(networks)
    return (
        *ipaddress.collapse_addresses(n for n in listed if isinstance(n, ipaddress.IPv4Network)),
        *ipaddress.collapse_addresses(n for n in listed if isinstance(n, ipaddress.IPv6Network)),
    )


def deny_rules() -> tuple[str, ...]:
    return (_RULE_START + "ALL",)


Edit = Callable[[str | None], str | None]  # a file's text (None: no file) -> the text wanted


@dataclass(frozen=True)
class FileChange:
    """One file's text before and after (None: the file does not exist), and how `after` was
    made from `before`, so that it can be made again from the file as it is at the moment it
    is replaced: other programs (fail2ban, PortSentry) append to hosts.deny at any time."""

    path: Path
    before: str | None
    after: str | None
    identity: Identity  # of the file when `before` was read (NO_FILE: there was none)
    edit: Edit

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff of the change ('' when nothing changes)."""
        lines = difflib.unified_diff(
            lines_with_ends(self.before or ""),
            lines_with_ends(self.after or ""),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null",
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )

    def apply(self) -> "FileChange":
        """Make the change, only if the file is still as it was read; if it changed
        meanwhile, read it again and make the change anew from that, a bounded number of
        times, then WrappersError with the file untouched. Returns the change as made."""
        change = self
        for _ in range(limits.FILE_EDIT_TRIES_MAX):
            try:
                change._write()
            except FileChanged:
                change = planned(self.path, self.edit)
                continue
            return change
        raise WrappersError(
            f"{self.path}: kept changing while it was being edited "
            f"({limits.FILE_EDIT_TRIES_MAX} tries); it was left as it was"
        )

    def undo(self) -> None:
        """Take a change that apply() made back out of the file as it is now (used when a
        later step of the same command fails): what others appended since then stays."""
        planned(self.path, partial(_taken_back, self)).apply()

    def _write(self) -> None:
        """Raises FileChanged when the file is no longer the one `before` was read from."""
        if not self.changed:
            return
        if self.after is None:
            if identity_of(self.path) != self.identity:
                raise FileChanged(f"{self.path} changed while it was being edited")
            self.path.unlink()
        else:
            replace_atomically(self.path, self.after, self.identity)


def planned(path: Path, edit: Edit) -> FileChange:
    """The change `edit` makes to `path` as it is now."""
    before, identity = _read_with_identity(path)
    return FileChange(path, before, edit(before), identity, edit)


def _taken_back(change: FileChange, text: str | None) -> str | None:
    """`text` without `change`: its `before` again, and what was appended after its `after`."""
    if text == change.after:
        return change.before
    if text is not None and change.after is not None and text.startswith(change.after):
        return (change.before or "") + text[len(change.after) :]
    raise WrappersError(f"{change.path}: changed by another program meanwhile, not only at its end")


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


def read(path: Path) -> str | None:
    """The file's text, None if it does not exist. Raises WrappersError for a symbolic link
    and anything but a regular file."""
    return _read_with_identity(path)[0]


def _read_with_identity(path: Path) -> tuple[str | None, Identity]:
    try:
        return read_with_identity(path)
    except UnsafeFile as error:
        raise WrappersError(str(error)) from None
    except OSError as error:
        raise WrappersError(f"{path}: {error.strerror or error}") from None


def protect_change(path: Path, rules: tuple[str, ...]) -> FileChange:
    """The change that puts our block with `rules` at the top of `path` (or updates it)."""
    return planned(path, partial(_with_block, path, rules))


def _with_block(path: Path, rules: tuple[str, ...], before: str | None) -> str:
    lines = lines_with_ends(before or "")
    block = find_block(path, lines)
    body = "".join(rule + "\n" for rule in rules)
    if block is None:
        begin = BEGIN + (CREATED if before is None else "")
        return f"{begin}\n{body}{END}\n" + (before or "")
    lines[block.start + 1 : block.stop - 1] = [body]
    return "".join(lines)


def unprotect_change(path: Path) -> FileChange:
    """The change that removes our block from `path` (and the file, if we created it)."""
    return planned(path, partial(_without_block, path))


def _without_block(path: Path, before: str | None) -> str | None:
    lines = lines_with_ends(before or "")
    block = find_block(path, lines)
    if block is None:
        return before
    after = "".join(lines[: block.start] + lines[block.stop :])
    return None if block.created and not after else after


def unterminated(path: Path, text: str | None, denies: bool) -> str | None:
    """A warning when the last line of `text` has no newline, or ends in a backslash, which
    continues it on a next line that is not there (so libwrap reads it without a newline all
    the same): libwrap counts that line as an error, which in hosts.deny (`denies`) denies
    every caller that no line above matches, and in hosts.allow grants no caller. Our lines go
    at the top and never touch that line."""
    if not text or (text.endswith("\n") and not text.endswith("\\\n")):
        return None
    effect = "denies every caller" if denies else "ignores that line"
    what = "ends in a backslash but no line follows" if text.endswith("\n") else "has no newline"
    return f"{path}: the last line {what}: libwrap counts that as an error and {effect}"


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


def applies_to_portmapper(rule: str) -> bool:
    """Whether libwrap applies a hosts.allow/deny line (or its daemon field) to rpcbind: its
    daemon list matches the name, by `ALL`, `KNOWN`, a wildcard (`rpc*`, `rpcbin?`) or the
    name, in any case; or the list names portmap, the old portmapper's name."""
    daemons = fields(rule)[0]
    return daemons_match(daemons, RPCBIND) or names(daemons, PORTMAP)


def single_addresses(rule: str) -> tuple[Network, ...]:
    """The clients of a rule that reaches the portmapper only through the daemon pattern ALL
    and names nothing but single numeric addresses (fail2ban's and PortSentry's `ALL:
    203.0.113.7`); () for any other rule, one with another pattern for rpcbind or portmap
    among its daemons (`rpcbind`, `rpc*`, `KNOWN`)."""
    parts = fields(rule)
    if len(parts) < 2 or any(
        not is_keyword(word, "ALL")
        and (daemon_pattern_matches(word, RPCBIND) or daemon_pattern_matches(word, PORTMAP))
        for word in words(parts[0])
    ):
        return ()
    found = []
    for word in words(parts[1]):
        network = client_network(word)
        if network is None or network.num_addresses != 1:
            return ()  # EXCEPT, ALL, a name, a network: more than single addresses
        found.append(network)
    return tuple(found)


def client_network(word: str) -> Network | None:
    """The addresses a client pattern stands for when it is one of libwrap's numeric forms
    (n.n.n.n, n.n.n. as a prefix, n.n.n.n/m.m.m.m or /bits, [v6] or [v6]/bits); None for any
    other (ALL, LOCAL, KNOWN, a name, .domain, @netgroup, a pattern with wildcards), and for
    one that matches no caller (see matches_no_caller)."""
    if matches_no_caller(word):
        return None
    text = word.replace("[", "").replace("]", "")
    if re.fullmatch(r"(\d{1,3}\.){1,3}", text):
        parts = text.rstrip(".").split(".")
        text = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
    try:
        return parse_network(text)
    except ValueError:
        return None


def matches_no_caller(word: str) -> bool:
    """Whether a client pattern is a numeric form that libwrap matches with no caller (as
    hosts_ctl measures it): a mask of 255.255.255.255, which inet_addr() returns as its error
    value (INADDR_NONE), so masked_match gives up; an IPv4 address in brackets
    (`[::ffff:198.18.0.20]`, `[::ffff:198.18.0.0]/120`, `[198.18.0.20]`): libwrap compares
    a bracketed pattern with IPv6 callers only, and an IPv4 caller is no IPv6 one."""
    if word.partition("/")[2] == _NO_MASK:
        return True
    if not word.startswith("["):
        return False
    try:
        return parse_network(word.replace("[", "").replace("]", "")).version == 4
    except ValueError:
        return False


def block_networks(lines: list[str], block: Block) -> tuple[Network, ...]:
    """The clients our block's rule lines allow (before their EXCEPT, which only narrows); a
    pattern that is no address (ALL, written by hand) stands for everyone."""
    return tuple(n for named, _ in block_rules(lines, block) for n in named)


def block_rules(
    lines: list[str], block: Block
) -> list[tuple[tuple[Network, ...], tuple[Network, ...]]]:
    """Each of our block's rule lines as the clients it names and those it excepts; a pattern
    that is no address (ALL, written by hand) stands for everyone among the named, for no one
    among the excepted."""
    found = []
    for line in lines[block.start + 1 : block.stop - 1]:
        named, excepted = split_except(words(line.rstrip("\r\n").removeprefix(_RULE_START)))
        networks: list[Network] = []
        for word in named:
            network = client_network(word)
            networks += [network] if network else EVERYONE
        found.append((tuple(networks), _numeric(excepted)))
    return found


@dataclass(frozen=True)
class Ban:
    """A hosts.deny line that refuses the portmapper to `network`, which overlaps the allowed
    network `inside`: our hosts.allow lines, read first, let it in unless they except it."""

    path: Path
    number: int  # from 1
    text: str
    network: Network
    inside: Network
    # It can go into our line's EXCEPT: a plain ban (no EXCEPT of its own) of part of `inside`.
    # One of all of `inside` (or more) is the administrator's to settle with --allow.
    carried: bool

    def __str__(self) -> str:
        return f'{self.path}:{self.number}: "{one_line(self.text)}"'


def bans(path: Path, lines: list[str], allowed: Iterable[Network]) -> tuple[Ban, ...]:
    """The administrator's hosts.deny `lines` (fail2ban's, PortSentry's, ours from
    KILL_HOSTS_DENY...) that refuse the portmapper to numeric clients in the `allowed` networks
    (loopback left out: our line lets it in whatever hosts.deny says)."""
    networks = [n for n in allowed if n not in ALWAYS_IGNORED]
    found = []
    for number, line, parts in _portmapper_denials(path, lines):
        named, excepted = split_except(words(parts[1]))
        for client in _numeric(named):
            for network in networks:
                if within(client, network) or within(network, client):
                    plain = not excepted and client != network and within(client, network)
                    found.append(Ban(path, number + 1, line, client, network, plain))
    return tuple(found)


def refused(path: Path, lines: list[str]) -> tuple[Network, ...]:
    """The numeric clients that the administrator's hosts.deny `lines` refuse the portmapper
    by a line without EXCEPT: our hosts.allow lines leave out an allowed network's part that is
    all banned (see allow_rules)."""
    found: list[Network] = []
    for _, _, parts in _portmapper_denials(path, lines):
        named, excepted = split_except(words(parts[1]))
        found += [] if excepted else _numeric(named)
    return tuple(found)


def _portmapper_denials(path: Path, lines: list[str]) -> Iterator[tuple[int, str, list[str]]]:
    """(number from 0, logical line, its fields) of the administrator's hosts.deny rules (ours
    left out) that apply to the portmapper, name clients and deny (no `allow` option)."""
    block = find_block(path, lines)
    ours = range(block.start, block.stop) if block else range(0)
    for number, line in logical_lines(lines):
        parts = fields(line)
        if (
            number not in ours
            and not is_comment(line)
            and len(parts) >= 2
            and applies_to_portmapper(parts[0])
            and "allow" not in {p.lower() for p in parts[2:]}
        ):
            yield number, line, parts


@dataclass(frozen=True)
class Grant:
    """A hosts.allow line that lets part of what a ban in hosts.deny refuses reach the
    portmapper: libwrap reads hosts.allow first, so for that part the ban is not in effect."""

    path: Path
    number: int  # from 1
    text: str
    ours: bool  # a line of our block; else the administrator's
    # It names an address or network of the ban's, or ALL. Not certain: only a name or pattern
    # libwrap may match it with (LOCAL, .example.org, 198.18.*), by the caller's name.
    certain: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.number} ({one_line(self.text)})"

    def lets_in(self, network: Network) -> str:
        """What this line, the administrator's, does with a ban of `network`, and what to do."""
        lets = "lets" if self.certain else "may let (by the caller's name)"
        return (
            f"{self}, the administrator's line, read before hosts.deny, {lets} {shown(network)} "
            f"reach rpcbind (add EXCEPT {pattern(network)} to that line, or narrow it)"
        )


def ban_allowed_by(path: Path, lines: list[str], ban: Ban) -> Grant | None:
    """The first hosts.allow line (of `lines`, the file `path`: ours or the administrator's)
    that lets part of what `ban` refuses reach rpcbind, or None: the ban is in effect.
    A line for rpcbind (by that name: one for portmap alone has no effect on it) lets part of
    it in when a client before its EXCEPT may match part of it (an address or network that
    overlaps it, ALL, a name or a pattern; not a form that matches no caller) and the numeric
    ones after EXCEPT do not except all of it (an EXCEPT among those, which lets some back in,
    excepts nothing here); a line with a `deny` or `twist` option (twist hands the caller to
    its command instead of the daemon) that refuses all of it, met first, keeps it out."""
    block = find_block(path, lines)
    ours = range(block.start, block.stop) if block else range(0)
    net = ban.network
    for number, line in logical_lines(lines):
        parts = fields(line)
        if is_comment(line) or len(parts) < 2 or not daemons_match(parts[0], RPCBIND):
            continue
        named, excepted = split_except(words(parts[1]))
        if any(within(net, e) for e in _numeric(excepted)) and not any(map(is_except, excepted)):
            continue
        named = [word for word in named if not matches_no_caller(word)]
        everyone = any(is_keyword(word, "ALL") for word in named)
        numeric = _numeric(named)
        if _REFUSING & {p.split()[0].lower() for p in parts[2:] if p.split()}:
            if everyone or any(within(net, n) for n in numeric):
                return None
            continue
        certain = everyone or any(within(n, net) or within(net, n) for n in numeric)
        if certain or len(numeric) < len(named):
            return Grant(path, number + 1, line, number in ours, certain)
    return None


@dataclass(frozen=True)
class StaleExcept:
    """An EXCEPT entry of our hosts.allow line that no ban in hosts.deny covers (wholly) any
    longer: the ban carried over has ended (fail2ban's unban, `portwarden unblock`, a
    KILL_HOSTS_DENY block that expired), and our line still keeps `unbanned` from rpcbind."""

    number: int  # our hosts.allow line, from 1
    excepted: Network
    unbanned: tuple[Network, ...]  # the part of `excepted` no ban covers: usually all of it


def stale_excepts(lines: list[str], block: Block, found: Iterable[Ban]) -> tuple[StaleExcept, ...]:
    """The EXCEPT entries of our hosts.allow block (`lines`, `block`) with addresses that none
    of hosts.deny's bans (`found`, see `bans`) refuses."""
    banned = collapsed(ban.network for ban in found)
    stale = []
    for offset, (_, excepted) in enumerate(block_rules(lines, block)):
        for network in excepted:
            unbanned = uncovered(network, banned)
            if unbanned:
                stale.append(StaleExcept(block.start + 2 + offset, network, unbanned))
    return tuple(stale)


def uncovered(network: Network, cover: Iterable[Network]) -> tuple[Network, ...]:
    """The addresses of `network` outside every network of `cover`, as networks."""
    parts = [network]
    for covering in cover:
        parts = [rest for part in parts for rest in _without(part, covering)]
    return collapsed(parts)


def _without(part: Network, covering: Network) -> list[Network]:
    """`part` less `covering`, by halves (at most one per bit of the prefix)."""
    if within(part, covering):
        return []
    if not within(covering, part):
        return [part]
    return [rest for half in part.subnets(prefixlen_diff=1) for rest in _without(half, covering)]


def _numeric(words: Iterable[str]) -> tuple[Network, ...]:
    """The client patterns among `words` that are numeric (see client_network)."""
    return tuple(n for n in map(client_network, words) if n is not None)


def covers_everyone(networks: Iterable[Network]) -> Network | None:
    """The whole family (0.0.0.0/0 or ::/0) when `networks` together cover it, else None."""
    return next((n for n in collapsed(networks) if n.prefixlen == 0), None)


@dataclass(frozen=True)
class Leak:
    """An administrator's line that lets callers outside the allowed networks reach the
    portmapper, our lines notwithstanding."""

    path: Path
    number: int  # from 1
    text: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.number} ({one_line(self.text)}) lets callers outside the "
            "allowed networks reach the portmapper (TCP Wrappers follow the first line "
            "that matches)"
        )


def leaks(
    allow: Path,
    allow_lines: list[str],
    deny: Path,
    deny_lines: list[str],
    allowed: tuple[Network, ...],
) -> tuple[Leak, ...]:
    """The lines that defeat our blocks. TCP Wrappers read hosts.allow first and grant at the
    first line that matches, then hosts.deny, where the first line that matches refuses (or
    grants, with an `allow` option); a caller no line matches is let in. So any hosts.allow
    line for the portmapper that may match a caller outside `allowed` lets them in, above or
    below our block, and so does a hosts.deny line above our `ALL` with an `allow` option.
    A client that is not an address (a name, ALL, LOCAL...) may match anyone."""
    allow_block, deny_block = find_block(allow, allow_lines), find_block(deny, deny_lines)
    ours = range(allow_block.start, allow_block.stop) if allow_block else range(0)
    found = [
        Leak(allow, number + 1, line)
        for number, line in logical_lines(allow_lines)
        if number not in ours and _grants_outsiders(line, "deny", allowed)
    ]
    above = deny_lines[: deny_block.start] if deny_block else []
    found += [
        Leak(deny, number + 1, line)
        for number, line in logical_lines(above)
        if _grants_outsiders(line, "allow", allowed, granting=True)
    ]
    return tuple(found)


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """The rules of a file's `lines` (with line ends, split at '\\n' only, as libwrap's fgets
    does) as libwrap reads them, each with the index of its first line: a line that ends in a
    backslash goes on on the next one (libwrap's xgets drops the backslash and the newline and
    joins the two; `\\` before `\\r\\n` is no continuation); line ends dropped. A last line
    without a newline, or continued at the end of the file, is left out: libwrap takes it for
    an error, no rule (see `unterminated`)."""
    joined: list[tuple[int, str]] = []
    start, parts = 0, list[str]()
    for index, line in enumerate(lines):
        start = start if parts else index
        if line.endswith("\\\n"):
            parts.append(line[:-2])
        elif line.endswith("\n"):
            joined.append((start, "".join([*parts, line.rstrip("\r\n")])))
            parts = []
    return joined


def _grants_outsiders(
    line: str, option: str, allowed: tuple[Network, ...], granting: bool = False
) -> bool:
    """Whether this rule, if it matches, grants and may match someone outside `allowed`: a
    hosts.allow rule grants unless it has a `deny` option (`option`); a hosts.deny one only
    with an `allow` option (`granting`)."""
    if is_comment(line):
        return False
    parts = fields(line)
    if len(parts) < 2 or not applies_to_portmapper(parts[0]):
        return False
    if (option in {p.lower() for p in parts[2:]}) != granting:
        return False
    named, _ = split_except(words(parts[1]))  # EXCEPT only narrows
    return any(not _inside(word, allowed) for word in named)


def is_comment(line: str) -> bool:
    """libwrap takes a line for a comment only when `#` is its very first character: after a
    blank, `#` is one more daemon pattern and the line a rule."""
    return line.startswith("#")


def _inside(word: str, allowed: tuple[Network, ...]) -> bool:
    """Whether a client pattern matches no caller outside `allowed`: it names a network
    inside one of them, or it matches no caller at all."""
    network = client_network(word)
    if network is None:
        return matches_no_caller(word)
    return any(within(network, a) for a in allowed)


def denies_everyone(path: Path, text: str | None) -> str | None:
    """A warning when one of the administrator's hosts.deny lines already refuses every caller
    of the portmapper (`rpcbind: ALL`, `ALL: ALL`): our hosts.allow lines, read first, then let
    the allowed networks in where nothing came in before."""
    for number, line, parts in _portmapper_denials(path, lines_with_ends(text or "")):
        clients, excepted = split_except([word.upper() for word in words(parts[1])])
        if "ALL" in clients and not excepted:
            return (
                f"{path}:{number + 1} ({one_line(line)}) already refuses every caller of "
                "the portmapper: protect lets the allowed networks in, which it kept "
                "out"
            )
    return None
