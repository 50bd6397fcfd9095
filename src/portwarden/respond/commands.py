"""KILL_ROUTE and KILL_RUN_CMD: split into arguments, macros filled in, run without a shell.

The template was split into arguments when the configuration was read (config.kill); the macros
($TARGET$, $PORT$, $MODE$) are substituted inside each argument afterwards, so a value can never
become a second argument, an option or a shell command, whatever it contains.
"""

import contextlib
import logging
import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence

from portwarden import limits
from portwarden.config.kill import MACROS
from portwarden.text import one_line

log = logging.getLogger("portwarden")


def fill(text: str, target: str, port: int, mode: str) -> str:
    """`text` with the macros $TARGET$, $PORT$ and $MODE$ filled in."""
    for macro, value in zip(MACROS, (target, str(port), mode), strict=True):
        text = text.replace(macro, value)
    return text


def expand(argv: Sequence[str], target: str, port: int, mode: str) -> list[str]:
    """A command's arguments (split when the configuration was read) with the macros filled
    in, inside each argument."""
    return [fill(arg, target, port, mode) for arg in argv]


# What `ip route del`, `route del`, `iptables -D` and `nft delete element` (the element, or
# its set or table, is gone) say when what they should remove is not there (removed by hand,
# by a reboot, or with the ruleset): for an undo, that is success.
NOT_THERE = (
    "No such process",
    "does a matching rule exist",
    "Error: Could not process rule: No such file or directory",
    "Error: No such file or directory",
)
# What `run` answers for such an undo: no failure, and nothing logged (there may be thousands:
# the caller says how many in one line).
GONE = "nothing to remove"
# What `ip route add` (`RTNETLINK answers: File exists`) and `route add` (`SIOCADDRT: File
# exists`) say when the route is there already: the address is blocked, by a route not ours.
THERE_ALREADY = ("File exists",)
EXISTS = "there already"


def run(
    argv: list[str],
    timeout: float,
    what: str,
    quiet: bool = False,
    harmless: Sequence[str] = (),
    harmless_as: str = GONE,
) -> str | None:
    """Run and wait at most `timeout` seconds. Logs failures (at debug level when `quiet`: an
    undo of something that may never have been done). Returns None on success, else why it
    failed, on one line (`exit status 1: <the start of its output>`, `killed after 5s`, ...);
    a failure whose output holds one of `harmless` is no failure: `harmless_as` (GONE, for an
    undo of something no longer there; EXISTS, for a route there already), logged at debug
    level.

    The command gets a session of its own: past the time limit the whole process group is
    killed, not only the direct child (`sh -c '...'` forks). Only the direct child is waited
    for: once it has exited, its output is read as far as it is there, so a background process
    that inherited the pipe (`sh -c 'daemon & exit 0'`) does not hold the worker.
    """
    shown = one_line(shlex.join(argv))
    report = log.debug if quiet else log.error
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        report("%s could not start: %s: %s", what, error.strerror, shown)
        return f"could not start: {error.strerror or error}"
    assert proc.stdout is not None
    with proc.stdout:
        try:
            output, finished = _wait(proc.pid, proc.stdout.fileno(), timeout)
        except OSError as error:  # out of descriptors: a command that cannot be timed goes
            _kill(proc)
            why = error.strerror or str(error)
            report("%s killed, it cannot be timed (%s): %s", what, why, shown)
            return f"killed: cannot time it ({why})"
        if not finished:
            _kill(proc)
            report("%s killed after %gs: %s", what, timeout, shown)
            return f"killed after {timeout:g}s"
    status = proc.wait()
    if status != 0:
        text = one_line(output.decode(errors="replace").strip(), limits.COMMAND_OUTPUT_SHOWN_CHARS)
        how = f"exit status {status}" if status > 0 else f"signal {-status}"
        if status > 0 and any(marker in text for marker in harmless):
            log.debug("%s: %s (%s): %s", what, harmless_as, text, shown)
            return harmless_as
        report("%s failed with %s: %s%s", what, how, shown, f": {text}" if text else "")
        return f"{how}: {text[: limits.COMMAND_OUTPUT_RECORDED_CHARS]}" if text else how
    return None


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    """Kill the command's whole process group (its own session) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait(pid: int, pipe: int, timeout: float) -> tuple[bytes, bool]:
    """_read_until_exit, with a pidfd to see the exit. Raises OSError when the descriptors it
    takes (the pidfd, the selector's) cannot be had: the command is then not timed."""
    exited = os.pidfd_open(pid)
    try:
        return _read_until_exit(pipe, exited, timeout)
    finally:
        os.close(exited)


def _read_until_exit(pipe: int, exited: int, timeout: float) -> tuple[bytes, bool]:
    """The first COMMAND_OUTPUT_KEPT_BYTES of the output (the rest is read and dropped, so a
    chatty command never blocks on a full pipe) until the process exits; False if it has not within
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    kept = b""
    os.set_blocking(pipe, False)
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        selector.register(exited, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return kept, False
            ready = {key.fd for key, _ in selector.select(left)}
            if pipe in ready:
                chunk = _read_some(pipe)
                if chunk is None:  # end of output: only the exit is left to wait for
                    selector.unregister(pipe)
                else:
                    kept = (kept + chunk)[: limits.COMMAND_OUTPUT_KEPT_BYTES]
            if exited in ready:
                return (kept + (_read_some(pipe) or b""))[: limits.COMMAND_OUTPUT_KEPT_BYTES], True


def _read_some(pipe: int) -> bytes | None:
    """What the pipe holds now (b"" if nothing); None at its end."""
    try:
        return os.read(pipe, 65536) or None
    except BlockingIOError:
        return b""
