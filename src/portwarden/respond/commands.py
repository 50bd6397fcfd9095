"""KILL_ROUTE and KILL_RUN_CMD: split into arguments, macros filled in, run without a shell.

The template was split into arguments when the configuration was read (config.kill); the macros
($TARGET$, $PORT$, $MODE$) are substituted inside each argument afterwards, so a value can never
become a second argument, an option or a shell command, whatever it contains.
"""

import logging
import shlex
import subprocess
from collections.abc import Sequence

from portwarden.text import one_line

log = logging.getLogger("portwarden")

_OUTPUT_SHOWN = 300


def fill(text: str, target: str, port: int, mode: str) -> str:
    """`text` with the macros $TARGET$, $PORT$ and $MODE$ filled in."""
    for macro, value in (("$TARGET$", target), ("$PORT$", str(port)), ("$MODE$", mode)):
        text = text.replace(macro, value)
    return text


def expand(argv: Sequence[str], target: str, port: int, mode: str) -> list[str]:
    """A command's arguments (split when the configuration was read) with the macros filled
    in, inside each argument."""
    return [fill(arg, target, port, mode) for arg in argv]


def run(argv: list[str], timeout: float, what: str) -> bool:
    """Run and wait at most `timeout` seconds (then kill). Logs failures. Returns success."""
    shown = one_line(shlex.join(argv))
    try:
        result = subprocess.run(
            argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        log.error("%s killed after %gs: %s", what, timeout, shown)
        return False
    except OSError as error:
        log.error("%s could not start: %s: %s", what, error.strerror, shown)
        return False
    if result.returncode != 0:
        output = one_line((result.stderr or result.stdout).decode(errors="replace").strip(),
                          _OUTPUT_SHOWN)  # fmt: skip
        log.error("%s failed with exit status %d: %s: %s", what, result.returncode, shown, output)
        return False
    return True


def route_undo(argv: list[str]) -> list[str] | None:
    """The command that removes what a KILL_ROUTE command added, when we can tell.

    `ip route add ...` and `route add ...` -> `del`; `iptables -I/-A CHAIN [N] ...` -> `-D`.
    """
    for index, arg in enumerate(argv):
        if arg == "add":
            return [*argv[:index], "del", *argv[index + 1 :]]
        if arg in ("-I", "-A", "--insert", "--append") and index + 1 < len(argv):
            rest = argv[index + 2 :]
            if rest and rest[0].isdigit():
                rest = rest[1:]
            return [*argv[:index], "-D", argv[index + 1], *rest]
    return None
