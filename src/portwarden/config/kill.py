"""KILL_ROUTE, KILL_RUN_CMD and KILL_HOSTS_DENY, checked when the file is read, not at block time.

PortSentry substituted the macros into the text and handed KILL_ROUTE and KILL_RUN_CMD to
system(), and wrote KILL_HOSTS_DENY into hosts.deny as it was (fprintf "%s\\n"). We split the
commands into arguments here, once, and run them without a shell; the hosts.deny text stays
literal, as PortSentry wrote it.
"""

import itertools
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

MACROS = ("$TARGET$", "$PORT$", "$MODE$")  # what respond.commands.fill replaces, in this order
_OPERATOR_CHARS = frozenset("();<>|&")


@dataclass(frozen=True, slots=True)
class Command:
    """A KILL_ROUTE / KILL_RUN_CMD template: the text as written and its arguments, with the
    macros still in them (they are filled in inside each argument, so a value can never become
    a second argument). `shell_syntax`: the shell operators it has outside quotes, which
    PortSentry's shell obeyed and which reach our program as literal arguments."""

    text: str
    argv: tuple[str, ...]
    shell_syntax: tuple[str, ...]

    def __str__(self) -> str:
        return self.text


def command(text: str) -> Command | None:
    """KILL_RUN_CMD: '' is unset. Raises ValueError when the text cannot be split."""
    if not text:
        return None
    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:  # "No closing quotation", "No escaped character"
        raise ValueError(f"cannot be split into arguments: {str(error).lower()}") from None
    if not argv or not argv[0]:
        raise ValueError("names no program")
    return Command(text, argv, _shell_syntax(text))


def route_command(text: str) -> Command | None:
    """KILL_ROUTE: as a command, and it must name the target (PortSentry skipped one that did
    not; run as it is, it would act on no address or on all of them)."""
    found = command(text)
    if found is not None and "$TARGET$" not in text:
        raise ValueError("names no $TARGET$")
    return found


def route_undo(argv: Sequence[str]) -> list[str] | None:
    """The command that removes what a KILL_ROUTE command added, when we can tell.

    `ip route add ...` and `route add ...` -> `del`; `iptables -I/-A CHAIN [N] ...` -> `-D`;
    `nft add element ...` (or `create element`) -> `delete element` (nft has no `del`). No
    other nft command: a rule is removed by its handle, which the command does not print.
    """
    if _program(argv) == "nft":
        return nft_element_command(argv, "delete")
    for index, arg in enumerate(argv):
        if arg == "add":
            return [*argv[:index], "del", *argv[index + 1 :]]
        if arg in ("-I", "-A", "--insert", "--append") and index + 1 < len(argv):
            rest = argv[index + 2 :]
            if rest and rest[0].isdigit():
                rest = rest[1:]
            return [*argv[:index], "-D", argv[index + 1], *rest]
    return None


def nft_element_command(argv: Sequence[str], verb: str) -> list[str] | None:
    """`nft [options] add|create element FAMILY TABLE SET { ... }` with `verb` in place of
    `add`/`create` (`delete` undoes it; `get` exits 0 when the element is there already,
    which `add` does too); None for any other command, and for several commands in one
    (`... ; add element ...`: the rest would run with it). nft joins its arguments into one
    command, so they may come one word each or all in one; the command starts at the first
    that is not an option (options with a value, `-I DIR`, are not looked for: a KILL_ROUTE
    has no use for them)."""
    if _program(argv) != "nft":
        return None
    for index, arg in enumerate(argv[1:], 1):
        if arg.startswith("-"):
            continue
        joined = " ".join(argv[index:])  # as nft reads it
        if ";" in joined or "\n" in joined:  # more commands: the verb of the first is not all
            return None
        command = joined.split()
        if command[:1] not in (["add"], ["create"]) or command[1:2] != ["element"]:
            return None
        replaced = " ".join([verb, *arg.split(maxsplit=1)[1:]])  # the rest of its argument
        return [*argv[:index], replaced, *argv[index + 1 :]]
    return None


def _program(argv: Sequence[str]) -> str:
    """The program's file name, without its folder."""
    return argv[0].rsplit("/", 1)[-1] if argv else ""


IPV4_ONLY_PROGRAMS = frozenset({"iptables", "iptables-legacy", "iptables-nft"})


def ipv4_only(argv: Sequence[str]) -> bool:
    """Whether a KILL_ROUTE command cannot take an IPv6 $TARGET$: net-tools' `route` without
    `-A inet6` / `-6` (Debian's `route add -host $TARGET$ reject` says `Unknown host`) and
    `iptables` (IPv6 is ip6tables')."""
    program = _program(argv)
    if program == "route":
        return not {"-6", "inet6"} & set(argv)
    return program in IPV4_ONLY_PROGRAMS  # with -6 too: iptables refuses it


def hosts_deny_line(text: str) -> str | None:
    """KILL_HOSTS_DENY: the line written into hosts.deny once the macros are filled in. Raises
    ValueError for text that would not stay one line there or names no target."""
    if not text:
        return None
    if not text.isprintable():
        raise ValueError("must be printable text on one line (it becomes one hosts.deny line)")
    if text.endswith("\\"):
        raise ValueError("ends with a backslash, which would join the next hosts.deny line to it")
    if "$TARGET$" not in text:
        raise ValueError("names no $TARGET$ (PortSentry skipped such a line: it denies everyone)")
    return text


BRACKETED_TARGET = "[$TARGET$]"  # filled in as $TARGET$: see hosts_deny_problems


def hosts_deny_problems(text: str) -> list[str]:
    """What in a KILL_HOSTS_DENY line tcpd would not match as meant, for load warnings: tcpd
    reads `daemon_list : client_list [: ...]` (hosts_access(5)) and skips a line with no
    colon; $TARGET$ before the first colon is a daemon name, not a client. Brackets written
    around $TARGET$ are dropped (BRACKETED_TARGET): an IPv6 $TARGET$ is bracketed already
    (`[2001:db8::c]`, the form tcpd matches), and an IPv4 one in brackets matches nothing."""
    found = []
    daemons, colon, clients = text.partition(":")
    if not colon:
        found.append(
            'has no ":" between the services and the clients (as in "ALL: $TARGET$"): '
            "tcpd skips such a line, so it blocks nothing"
        )
    elif "$TARGET$" not in clients:
        found.append(
            'has $TARGET$ only before the first ":", among the services: tcpd takes '
            "it for a service name, so it blocks nothing"
        )
    if BRACKETED_TARGET in text:
        found.append(
            f"{BRACKETED_TARGET} is written as $TARGET$: portwarden puts an IPv6 "
            "address in brackets itself ([2001:db8::c], as tcpd matches it), and tcpd "
            "matches an IPv4 address only without them"
        )
    return found


def _shell_syntax(text: str) -> tuple[str, ...]:
    """Shell operators outside quotes (`&&`, `|`, `;`, `>`, `$(`, a backquote), each once."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # as shlex.split(), which made the arguments
    seen: list[str] = []
    for before, token in itertools.pairwise(["", *lexer]):
        if token == "(" and before.endswith("$"):
            token = "$("
        elif "`" in token:
            token = "`"
        elif token == ")" or not set(token) <= _OPERATOR_CHARS:
            continue
        if token not in seen:
            seen.append(token)
    return tuple(seen)
