"""Files two instances must not share, claimed by one at a time as STATE_DIR is.

STATE_DIR (statedir.claim) and NFT_TABLE (nft.claim_table) keep two instances apart, but two
configurations with their own STATE_DIR may still name the same BLOCKED_FILE or EVENT_LOG (two
copies of Debian's portsentry.conf): the second instance would rewrite the other's blocked
files from its own store, and the two would rotate one event log under each other. So the
daemon, and `unblock` or `reapply` working without one, hold a lock for each of these files.

The lock cannot be an flock on the file itself: BLOCKED_FILE.<mode> is replaced by a rename at
every change, and the event log is renamed when rotated. Nor on a file beside it, which would
leave files of ours in someone's folder. It is an flock on a small file in a folder of our own
in /run (a tmpfs: emptied at boot), named after the file's real path (symbolic links in its
folders resolved, so two spellings of one file are one claim). The kernel drops the lock when
the process ends, kill -9 included. A lock file is removed by its holder when it lets go (one
a kill left behind is taken over by the next claim of that file, and removed by the next claim
of any file, so those of killed `portwarden lab` runs do not pile up); a claim that finds, once
it has the lock, that the name no longer leads to the file it locked (its holder removed it
meanwhile) starts over, so two processes never each hold a lock on a different file of one
name.

BLOCKED_FILE is claimed whole, for every mode's file: an instance rewrites the file of each
mode that runs and of each that exists. HISTORY_FILE is not claimed: it is only appended to, one
write per line, as PortSentry's -tcp and -udp processes both appended to it.
"""

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import IO

from portwarden.config.defaults import default_state_dir
from portwarden.config.load import error_at
from portwarden.config.settings import Settings

ROOT_CLAIMS = Path("/run/portwarden-claims")  # only root may make a folder in /run


def claims_folder() -> Path:
    """Where the lock files are: ROOT_CLAIMS for root; for another user, a folder in their
    runtime directory (or their state directory when there is none)."""
    if os.geteuid() == 0:
        return ROOT_CLAIMS
    base = os.environ.get("XDG_RUNTIME_DIR") or str(default_state_dir())
    return Path(base) / "portwarden-claims"


def claimed(settings: Settings) -> dict[str, Path]:
    """The files of `settings` an instance holds, by key."""
    files = {"BLOCKED_FILE": settings.blocked_file, "EVENT_LOG": settings.event_log}
    return {key: path for key, path in files.items() if path is not None}


class FileClaims:
    """The files one process holds (see the module's docstring)."""

    def __init__(self, command: str = "") -> None:
        """`command`: the short command that holds them (unblock, reapply), named to another
        instance that finds them held; "" for the daemon."""
        self._command = command
        self._held: dict[str, _Lock] = {}  # by real path

    def claim(self, settings: Settings) -> None:
        """Hold the files of `settings` (those held already stay held). Raises ConfigError at
        the key's line, naming the file and the other instance, when another process holds
        one; what this call took is then let go again."""
        _remove_left_behind(claims_folder())
        taken: list[str] = []
        try:
            for key, path in claimed(settings).items():
                real = os.path.realpath(path)
                if real not in self._held:
                    self._held[real] = self._take(settings, key, path, real)
                    taken.append(real)
        except BaseException:
            for real in taken:
                self._held.pop(real).release()
            raise

    def keep_only(self, settings: Settings) -> None:
        """Let go of every file that `settings` does not name (after a reload, or one
        refused)."""
        kept = {os.path.realpath(path) for path in claimed(settings).values()}
        for real in [real for real in self._held if real not in kept]:
            self._held.pop(real).release()

    def close(self) -> None:
        for lock in self._held.values():
            lock.release()
        self._held.clear()

    def _take(self, settings: Settings, key: str, path: Path, real: str) -> "_Lock":
        folder = claims_folder()
        lock_path = folder / (hashlib.sha256(os.fsencode(real)).hexdigest()[:32] + ".lock")
        while True:
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                lock = _Lock(lock_path)
            except OSError as error:
                raise error_at(
                    settings.source,
                    key,
                    f"cannot claim {path} for this instance: "
                    f"{lock_path}: {error.strerror or error}",
                ) from None
            try:
                fcntl.flock(lock.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(lock.file, key)
                lock.file.close()
                raise error_at(settings.source, key, f"in use by {holder}") from None
            if lock.still_named():
                break
            lock.file.close()  # its holder removed it as we opened it: take the new one
        lock.file.truncate(0)
        json.dump(
            {
                "pid": os.getpid(),
                "command": self._command,
                "key": key,
                "state_dir": str(settings.state_dir),
                "path": real,
            },
            lock.file,
        )
        lock.file.write("\n")
        lock.file.flush()
        return lock


class _Lock:
    """A lock file, open."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.path, self.file = path, os.fdopen(fd, "r+")

    def still_named(self) -> bool:
        """Whether the lock file's name still leads to the file we have open."""
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        opened = os.fstat(self.file.fileno())
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def release(self) -> None:
        """Remove the lock file (while it is held: see the module's docstring) and let go."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.file.close()


def _remove_left_behind(folder: Path) -> None:
    """Remove the lock files nobody holds (their holder was killed). Each is removed while we
    hold it, as a holder removes its own, so a claim that opened it meanwhile starts over."""
    with contextlib.suppress(OSError):
        names = [entry.name for entry in os.scandir(folder) if entry.name.endswith(".lock")]
        for name in names:
            with contextlib.suppress(OSError):
                fd = os.open(folder / name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    named, opened = os.stat(folder / name, follow_symlinks=False), os.fstat(fd)
                    if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                        os.unlink(folder / name)
                finally:
                    os.close(fd)


def _holder(lock: IO[str], key: str) -> str:
    """Who holds `lock`, as it wrote it, and the hint: 'another portwarden (pid N) as its KEY;
    give each ...; its STATE_DIR is D' (an unblock command is named as such)."""
    hint = f"give each instance its own {key}"
    lock.seek(0)
    try:
        found = json.loads(lock.read())
        pid, command = int(found["pid"]), str(found["command"])
        theirs, state_dir = str(found["key"]), str(found["state_dir"])
    except (ValueError, KeyError, TypeError):  # it has not written it yet
        return f"another portwarden; {hint}"
    article = "an" if command[:1] in "aeiou" else "a"
    who = f"{article} {command} command" if command else "another portwarden"
    return f"{who} (pid {pid}) as its {theirs}; {hint} (its STATE_DIR is {state_dir})"
