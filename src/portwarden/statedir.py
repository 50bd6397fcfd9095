"""The daemon's own state directory, claimed by one instance at a time; and the checks of the
paths the settings name (STATE_DIR and the control socket in it, EVENT_LOG, HISTORY_FILE,
BLOCKED_FILE), which tell what cannot be used before it is."""

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

from portwarden import limits

LOCK_NAME = "portwarden.lock"
SOCKET_NAME = "control.sock"  # the control socket (control.py)
SYMLINK_REFUSED = "symbolic link refused"  # for the event log (not_a_log_file)
_COMMAND_POLL_S = 0.05


class Holder(NamedTuple):
    """Who holds a STATE_DIR, as it wrote it in the lock file: "pid" for a daemon, "pid
    command" for a short command (unblock, reapply)."""

    pid: str  # "?" before it has written it
    command: str = ""  # "" for a daemon


class StateDirBusy(Exception):
    """Another running portwarden (`holder`) holds this STATE_DIR."""

    def __init__(self, state_dir: Path, holder: Holder) -> None:
        if holder.command:
            article = "an" if holder.command[:1] in "aeiou" else "a"
            text = (
                f"{article} {holder.command} command (pid {holder.pid}) is working on "
                f"STATE_DIR {state_dir}; try again when it ends"
            )
        else:
            text = (
                f"STATE_DIR {state_dir} is in use by another portwarden (pid "
                f"{holder.pid}); give each instance its own STATE_DIR"
            )
        super().__init__(text)
        self.holder = holder


def claim(state_dir: Path, command: str = "") -> IO[str]:
    """Create `state_dir` (mode 0700) and lock it for this process. Keep the result open.
    `command`: the name of the short command that claims it (unblock, reapply), written in the
    lock file beside the pid; "" for the daemon, which waits up to STATE_DIR_COMMAND_WAIT_S
    for such a command to end.

    Raises StateDirBusy when another instance holds it, so two instances never share state.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = open(state_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the daemon's lifetime
    held = take(lock, command) if command else _after_commands(lambda: take(lock))
    if held is not None:
        lock.close()
        raise StateDirBusy(state_dir, held)
    return lock


def refuse_if_held(state_dir: Path) -> None:
    """Raise StateDirBusy when a running portwarden holds `state_dir` (nothing is made), for
    a check before claim: `run --daemon` says it before it forks and logs to a file. A short
    command that holds it is waited for, as by claim."""
    held = _after_commands(lambda: holding(state_dir))
    if held is not None:
        raise StateDirBusy(state_dir, held)


def _after_commands(attempt: Callable[[], Holder | None]) -> Holder | None:
    """`attempt` (None: STATE_DIR is free), tried again while a short command holds it, for
    up to STATE_DIR_COMMAND_WAIT_S. Returns the last holder."""
    deadline = time.monotonic() + limits.STATE_DIR_COMMAND_WAIT_S
    held = attempt()
    # "?": the holder has locked the file but not written its pid yet (a command, maybe)
    while held is not None and (held.command or held.pid == "?") and time.monotonic() < deadline:
        time.sleep(_COMMAND_POLL_S)
        held = attempt()
    return held


def take(lock: IO[str], command: str = "") -> Holder | None:
    """Lock the open file `lock` for this process (flock) and write our pid in it (and
    `command`, see claim). When another process holds it: who (Holder), and nothing is
    changed."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(lock)
    lock.truncate(0)
    lock.write(f"{os.getpid()} {command}".rstrip() + "\n")
    lock.flush()
    return None


def holding(state_dir: Path) -> Holder | None:
    """Who holds `state_dir` (without taking it), or None when nobody does."""
    try:
        lock = open(state_dir / LOCK_NAME)  # noqa: SIM115 - read after the lock attempt
    except (FileNotFoundError, NotADirectoryError):
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(lock)
    return None


def holder(state_dir: Path) -> str | None:
    """The pid of the running daemon that holds `state_dir` (without taking it), as it wrote
    it ("?" before it has), or None when none does (an unblock or reapply command holding it
    for a moment is no daemon)."""
    held = holding(state_dir)
    return None if held is None or held.command else held.pid


def in_use(state_dir: Path) -> bool:
    """Whether a running daemon holds `state_dir` (without taking it)."""
    return holder(state_dir) is not None


def _holder(lock: IO[str]) -> Holder:
    lock.seek(0)
    fields = lock.read().split()
    return Holder(fields[0] if fields else "?", " ".join(fields[1:2]))


# File systems that are the kernel's (/proc, /sys and those mounted in them): even root cannot
# make a file there, or what it writes sets something in the kernel.
KERNEL_FILE_SYSTEMS = frozenset(
    {
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "configfs",
        "bpf",
        "pstore",
        "efivarfs",
        "devpts",
    }
)


def unusable_directory(path: Path, written: bool) -> str | None:
    """Why `path` is not a directory the daemon can write and cannot become one (by mkdir -p),
    or None. Nothing is created, so check-config can tell. Whether it can be written is asked
    only as root (who runs the daemon; a user checking the daemon's file could not make
    /var/lib/portwarden), and only when it is to be `written` (for the daemon: `audit` keeps
    what it can in a read-only STATE_DIR and says what it could not). A kernel file system
    (/proc, /sys) is refused too."""
    return _problem(lambda: _unusable_directory(path, written), path)


def unusable_file(path: Path, written: bool) -> str | None:
    """Why the daemon could not write the file `path` (HISTORY_FILE, BLOCKED_FILE),
    or None: it is a directory, or its folder is unusable (unusable_directory)."""
    return _problem(lambda: _unusable_file(path, written), path)


def unusable_event_log(path: Path, written: bool) -> str | None:
    """Why `path` cannot be the event log, or None. The check of check-config and of the daemon
    at start and reload alike; nothing is created."""
    try:
        problem = not_a_log_file(path.lstat().st_mode)
    except (FileNotFoundError, NotADirectoryError):  # not there yet: its folder says
        problem = None
    except OSError as error:  # a name too long, a folder that may not be searched
        if root_only(error):
            return None
        problem = error.strerror or str(error)
    if problem:
        return f"{path}: {problem}"
    return unusable_directory(path.parent, written)


def not_a_log_file(mode: int) -> str | None:
    """Why a file of this mode (lstat's) cannot be the event log, or None."""
    if stat.S_ISLNK(mode):
        return SYMLINK_REFUSED  # what it points to may be anything, e.g. /etc/shadow
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def socket_path_problem(state_dir: Path) -> str | None:
    """Why the control socket cannot have its name in `state_dir`, or None."""
    size = len(os.fsencode(socket_path(state_dir)))
    if size <= limits.SOCKET_PATH_BYTES_MAX:
        return None
    return (
        f"too long: the control socket {SOCKET_NAME} in it would have a name of {size} "
        "bytes, and a Unix socket's name takes at most "
        f"{limits.SOCKET_PATH_BYTES_MAX}"
    )


def _problem(check: Callable[[], str | None], path: Path) -> str | None:
    try:
        return check()
    except OSError as error:  # a name too long, a folder that may not be searched
        return None if root_only(error) else f"{path}: {error.strerror or error}"


def root_only(error: OSError) -> bool:
    """Whether `error` is a user other than root refused a look into a folder of root's (the
    daemon's STATE_DIR is 0700): the daemon, as root, can look; the user cannot tell, so a
    path check says nothing of it (as writability is checked only as root)."""
    return error.errno == errno.EACCES and os.geteuid() != 0


def _unusable_file(path: Path, written: bool) -> str | None:
    if path.is_dir():
        return f"{path}: a directory, not a file"
    return _unusable_directory(path.parent, written)


def _unusable_directory(path: Path, written: bool) -> str | None:
    if not path.is_dir() and (path.exists() or path.is_symlink()):
        return f"{path} exists and is not a directory"
    nearest = next(folder for folder in (path, *path.parents) if folder.exists())
    if not nearest.is_dir():
        return f"{nearest} is not a directory"
    if written and os.geteuid() == 0 and not os.access(nearest, os.W_OK | os.X_OK):
        if nearest == path:
            return f"{path} is not writable"
        return f"{path} cannot be made: {nearest} is not writable"
    return _kernel_file_system(nearest)


def _kernel_file_system(directory: Path) -> str | None:
    """Why nothing of ours can go in `directory`, when it is on one of KERNEL_FILE_SYSTEMS
    (found in /proc/self/mountinfo by its device number), else None."""
    device = os.stat(directory).st_dev
    number = f"{os.major(device)}:{os.minor(device)}"
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for fields in (line.split() for line in mounts):
        if fields[2] == number:  # mount ID, parent ID, major:minor, ... - type source options
            kind = fields[fields.index("-") + 1]
            if kind in KERNEL_FILE_SYSTEMS:
                return f"{directory} is on {kind}, a kernel file system"
    return None
