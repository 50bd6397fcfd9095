"""`portwarden run --daemon`: the old style, for init scripts without a service manager.

The command returns only when the daemon is ready (exit 0) or has failed (the daemon's exit
status, with the log file to read), like an init script expects. The daemon writes a pid file
and logs to a file.
"""

import atexit
import contextlib
import logging
import logging.handlers
import os
import select
import sys
from collections.abc import Callable
from io import TextIOWrapper
from pathlib import Path

from portwarden import limits
from portwarden.config import ConfigError
from portwarden.text import one_line

log = logging.getLogger("portwarden")

READY = b"ready"  # what the daemon says to the waiting command once it is ready


def default_pid_file(state_dir: Path) -> Path:
    """In STATE_DIR: one per instance, as STATE_DIR is."""
    return state_dir / "portwarden.pid"


def detach(pid_file: Path, log_file: Path, state_dir: Path) -> Callable[[], None]:
    """Fork into the background. Only the daemon returns from this call; it gets the function to
    call once it is ready. The command's own process exits with the daemon's start result.
    Raises ConfigError, before anything starts, when the pid or log file is to be in a folder
    that is not there (STATE_DIR excepted: it is made)."""
    for option, path in (("--pid-file", pid_file), ("--log-file", log_file)):
        if path.parent != state_dir and not path.parent.is_dir():
            raise ConfigError(option, f"{path.parent} is not a directory", value=str(path))
    try:
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as error:
        if log_file.parent == state_dir:  # the default: the caller blames STATE_DIR
            raise
        raise ConfigError("--log-file", error.strerror or str(error), value=str(log_file)) from None
    ready_read, ready_write = os.pipe()
    if os.fork() > 0:
        os.close(ready_write)
        readable, _, _ = select.select([ready_read], [], [], limits.BACKGROUND_READY_WAIT_S)
        said = os.read(ready_read, 4096) if readable else b""
        if said == READY:
            os._exit(0)
        status, why = 1, "stopped before it was ready" if readable else "is not ready in time"
        if said[:1].isdigit():  # the status the daemon stops with, then its error
            status, why = said[0] - ord("0"), said[1:].decode(errors="replace")
        print(
            f"portwarden: error: the daemon {one_line(why, 4000, backslashes=False)}; "
            f"see {log_file}",
            file=sys.stderr,
        )  # escaped already, as the daemon logged it
        os._exit(status)
    os.close(ready_read)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    _log_to(log_file, out)
    logging.getLogger().addHandler(_last_error)
    # A daemon that stops before it is ready tells the waiting command why (one write of less
    # than PIPE_BUF bytes arrives whole), not only "see the log".
    atexit.register(
        lambda: (
            _last_error.message
            and os.write(
                ready_write, (f"{_last_error.status}stopped: {_last_error.message}".encode()[:4000])
            )
        )
    )

    def ready() -> None:
        try:
            _write_pid(pid_file)
        except OSError as error:
            log.error("cannot write the pid file %s: %s", pid_file, error.strerror or error)
            raise SystemExit(1) from None  # through the daemon's clean stop
        logging.getLogger().removeHandler(_last_error)
        _last_error.message = ""
        os.write(ready_write, READY)
        os.close(ready_write)

    return ready


class _LastError(logging.Handler):
    """Keeps the last error logged (or passed to stopped_because) before the daemon is ready."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message = ""
        self.status = 1  # the exit status of a failure that is logged

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()
        self.status = 1


_last_error = _LastError()


def stopped_because(why: str, status: int) -> None:
    """The error that ends the daemon, when it is not logged (printed by the command line):
    a daemon that is not ready yet passes it, and its exit status (2 for a configuration error
    found only once the daemon runs, e.g. a file another instance has claimed), to the waiting
    command, which exits with it as the daemon would have in the foreground."""
    if _last_error in logging.getLogger().handlers:
        _last_error.message, _last_error.status = why, status


class _LogFile(logging.handlers.WatchedFileHandler):
    """The log file, reopened when logrotate has moved it (at the next record, as a SIGHUP's
    reload line); stdout and stderr follow it to the new file, so that stray output (a thread's
    traceback) does not go on into the moved one."""

    def _open(self) -> TextIOWrapper:
        stream = super()._open()
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        return stream


def _log_to(log_file: Path, out: int) -> None:
    """Log records go to the file (reopened when logrotate moves it); so do stdout and stderr
    (see _LogFile), so that an error printed before the loop starts, or a traceback, is not
    lost. `out`: the file, opened before the fork to see that it can be."""
    handler = _LogFile(log_file)
    os.close(out)
    root = logging.getLogger()
    handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def _write_pid(pid_file: Path) -> None:
    pid = str(os.getpid())
    temporary = pid_file.with_name(f".{pid_file.name}.{pid}")
    try:
        temporary.write_text(pid + "\n")
        temporary.replace(pid_file)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise

    def remove() -> None:
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == pid:
                pid_file.unlink()

    atexit.register(remove)
