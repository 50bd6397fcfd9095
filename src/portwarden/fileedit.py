"""Editing files other tools read (hosts.deny, hosts.allow, PortSentry's BLOCKED_FILE and
HISTORY_FILE).

Files are replaced atomically (a new file in the same folder, renamed over the old one), except
that lines are added to hosts.deny in place (appended), so that what other programs append to it
at the same time is kept; nothing is ever followed through a symbolic link: an attacker who can
plant a link must not be able to make the daemon write elsewhere.
"""

import errno
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from portwarden import limits
from portwarden.text import one_line
from portwarden.textfile import numbered_lines

log = logging.getLogger("portwarden")


class UnsafeFile(OSError):
    """The path is a symbolic link (or not a regular file)."""


class FileChanged(OSError):
    """The file changed after it was read, before the edited copy could replace it."""


NEW_FILE_MODE = 0o644  # a hosts.deny we create: readable by every service that reads it


def _open_regular(path: Path, flags: int, what: str) -> int:
    """A descriptor of `path` opened with `flags`, never through a symbolic link, and only if
    it is a regular file (UnsafeFile): a FIFO would make us wait for a writer for ever."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, NEW_FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symbolic link; refusing to follow it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file; refusing to {what} it")
    return fd


def _read_fd(fd: int) -> str:
    """The text of an open file from its start; undecodable bytes kept as surrogates, line
    ends as they are, so a rewrite keeps the bytes."""
    data = bytearray()
    while chunk := os.pread(fd, 1 << 16, len(data)):
        data += chunk
    return data.decode("utf-8", "surrogateescape")


Identity = tuple[int, int, int]
NO_FILE: Identity = (0, -1, 0)  # the identity of a file that does not exist (no inode is 0)


def _identity(status: os.stat_result) -> Identity:
    """What changes when someone writes to the file or replaces it."""
    return status.st_ino, status.st_size, status.st_mtime_ns


def identity_of(path: Path) -> Identity:
    """The identity of `path` itself (a link is not followed) now; NO_FILE if it is not there."""
    try:
        return _identity(os.lstat(path))
    except FileNotFoundError:
        return NO_FILE


def read_with_identity(path: Path) -> tuple[str | None, Identity]:
    """The file's text (None if it does not exist) and its identity taken before it was read
    (a change after that shows at the check before the rename)."""
    try:
        fd = _open_regular(path, os.O_RDONLY, "read")
    except FileNotFoundError:
        return None, NO_FILE
    try:
        identity = _identity(os.fstat(fd))
        return _read_fd(fd), identity
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    return read_if_exists(path) or ""


def read_if_exists(path: Path) -> str | None:
    """The file's text (undecodable bytes kept as surrogates), None if it does not exist.

    Refuses to follow a symbolic link and to read anything but a regular file (UnsafeFile)."""
    return read_with_identity(path)[0]


def replace_atomically(
    path: Path, text: str, unchanged: Identity | None = None, private: bool = False
) -> None:
    """Write `text` to `path` via a temporary file and rename; keeps the old file's mode, owner
    and group (a hosts.allow of root:adm stays root:adm), and its POSIX ACL (a hosts.allow of
    mode 600 that `setfacl -m user:_rpc:r` lets rpcbind read must stay readable). A new file
    gets NEW_FILE_MODE and the writer's owner and group. `private`: the daemon's own state,
    always root's alone (0600, no ACL), whatever the old file's mode was (an older version
    made it under the caller's umask). `unchanged`: the identity the file
    had when it was read (NO_FILE: it was not there); if it has another just before the
    rename (another program wrote to it, made or removed it meanwhile), FileChanged, and
    nothing is replaced."""
    if path.is_symlink():
        raise UnsafeFile(f"{path} is a symbolic link; refusing to replace it")
    try:
        old = path.stat()
        mode, owner = old.st_mode & 0o7777, (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = NEW_FILE_MODE, None
    if private:
        mode, owner = 0o600, None
    acl = _access_acl(path) if owner is not None else None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:  # /proc, a read-only or full file system, a folder not ours
        raise _said_of(path, error, f"its folder {path.parent} takes no new file") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
            made = os.fstat(file.fileno())
            os.fchmod(file.fileno(), mode)
            if acl is not None:  # after the mode: its group bits are the ACL's mask
                os.setxattr(file.fileno(), _ACCESS_ACL, acl)
            if owner is not None and owner != (made.st_uid, made.st_gid):
                # Last: the mode and ACL are set while the file is still ours, which needs no
                # CAP_FOWNER (the systemd unit grants CAP_CHOWN only). Set-id bits, which chown
                # clears on an executable, are no concern of these text files.
                os.fchown(file.fileno(), *owner)
        if unchanged is not None and unchanged != NO_FILE:
            _replace_keeping_appends(temporary, path, unchanged)
        elif unchanged is not None and identity_of(path) != unchanged:
            raise FileChanged(f"{path} changed while it was being edited")
        else:
            os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, FileChanged | UnsafeFile):
            why = "its new copy could not be written or put in its place"
            raise _said_of(path, error, why) from None
        raise
    _sync_folder(path.parent)


def _said_of(path: Path, error: OSError, why: str) -> OSError:
    """`error` about `path`, the file being replaced, with `why`: never about the temporary
    copy, a name the administrator has never seen (`/proc/.version.xw8ho6my`). The same
    errno, so the same kind (PermissionError stays one)."""
    return OSError(error.errno, f"{why} ({error.strerror or error})", str(path))


def _replace_keeping_appends(temporary: str, path: Path, unchanged: Identity) -> None:
    """Rename `temporary` over `path` if `path` is still as it was read (else FileChanged);
    what another program appends to the old file in the moment between that check and the
    rename, or through a descriptor it opened before the rename (fail2ban, our own
    KILL_HOSTS_DENY), is appended to the new file after it, so no such line is lost."""
    try:
        old = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileChanged(f"{path} changed while it was being edited") from None
    try:
        if _identity(os.fstat(old)) != unchanged or identity_of(path) != unchanged:
            raise FileChanged(f"{path} changed while it was being edited")
        os.replace(temporary, path)
        late = os.pread(old, limits.LATE_APPEND_BYTES_MAX, unchanged[1])
        time.sleep(limits.LATE_APPEND_SETTLE_S)  # a write through a descriptor opened before
        late += os.pread(old, limits.LATE_APPEND_BYTES_MAX - len(late), unchanged[1] + len(late))
    finally:
        os.close(old)
    if late:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _append(fd, late, path)
        finally:
            os.close(fd)


_ACCESS_ACL = "system.posix_acl_access"


def _access_acl(path: Path) -> bytes | None:
    """The file's POSIX access ACL as the kernel stores it; None when it has none (its mode
    says it all) or the file system has no ACLs."""
    try:
        return os.getxattr(path, _ACCESS_ACL, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: until the folder is synced, a crash can bring back
    the old file (or none)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lines(text: str) -> list[str]:
    """The file's lines as tcpd and PortSentry read them: split at '\n' only (see
    textfile), trailing '\r's dropped (tcpd takes them for blanks)."""
    return [line for _, line in numbered_lines(text)]


def has_line(path: Path, line: str) -> bool:
    return line in _lines(_read(path))


def add_line(path: Path, line: str) -> bool:
    """Append `line` unless present. Returns whether the file changed."""
    return bool(add_lines(path, [line]))


def add_lines(path: Path, lines: Iterable[str]) -> set[str]:
    """Append every line not present yet, in one read and one write (a restore of thousands
    of hosts.deny lines). Returns the lines added.

    Appended in place (O_APPEND, whole lines in one write), not rewritten: lines that other
    programs (fail2ban, DenyHosts) append at the same moment are kept. A newline comes first
    if the file does not end with one."""
    fd = _open_to_append(path)
    try:
        present = set(_lines(_read_fd(fd)))
        added = [line for line in dict.fromkeys(lines) if line not in present]
        if not added:
            return set()
        _append_lines(fd, "".join(line + "\n" for line in added), path)
    finally:
        os.close(fd)
    return set(added)


def _open_to_append(path: Path) -> int:
    """`path` opened to read and append to; made (mode NEW_FILE_MODE) if it is not there."""
    try:
        return _open_regular(path, os.O_RDWR | os.O_APPEND, "append to")
    except FileNotFoundError:
        fd = _open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, "append to")
        os.fchmod(fd, NEW_FILE_MODE)  # not the daemon's umask
        return fd


def _append_lines(fd: int, text: str, path: Path) -> None:
    """Append whole lines (`text` ends with a newline) to the file `path` open at `fd`, after
    a newline if the file does not end with one, and sync (see _append)."""
    data = text.encode("utf-8", "surrogateescape")
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data
    _append(fd, data, path)


def _append(fd: int, data: bytes, path: Path) -> None:
    """One write at the end of the file `path` open at `fd` (O_APPEND; several writes only if
    the disk fills up), then a sync. If any of it fails (ENOSPC part-way), what we wrote is
    cut off and the error raised: a partial line must never stay, as `ALL: 198.` would become
    a rule for 198.0.0.0/8 once the next line's newline ends it. Other programs append to the
    same file (fail2ban to hosts.deny, another instance to a shared HISTORY_FILE): the cut
    goes from where our first byte landed (an O_APPEND write leaves the offset at the end of
    what it wrote), and only if nothing of theirs came between or after our bytes; else the
    file is left as it is, and said."""
    start: int | None = None  # where our first byte landed
    end = 0  # just past our last byte
    whole = True  # our bytes in one piece: no other writer's came between two of our writes
    try:
        rest = data
        while rest:
            written = os.write(fd, rest)
            rest = rest[written:]
            landed = os.lseek(fd, 0, os.SEEK_CUR) - written
            if start is None:
                start = landed
            elif landed != end:
                whole = False
            end = landed + written
        os.fsync(fd)
    except OSError:
        if start is not None:
            _cut_back(fd, start, end if whole else None, path)
        raise


def _cut_back(fd: int, start: int, end: int | None, path: Path) -> None:
    """Cut the file back to `start` if our bytes are its last, in one piece, up to `end`
    (None: they are not in one piece); else leave it, and say so."""
    try:
        if end is not None and os.fstat(fd).st_size == end:
            os.ftruncate(fd, start)
            return
        why = "another program appended to it meanwhile, and a cut would take its lines too"
    except OSError as error:
        why = f"it could not be cut back: {error.strerror}"
    log.error(
        "%s: a write failed part-way; a partial line may remain there (%s)",
        one_line(str(path)),
        why,
    )


def remove_line(path: Path, line: str) -> bool:
    """Remove one copy of `line` (see remove_lines). Returns whether the file changed."""
    return bool(remove_lines(path, [line]))


def remove_lines(path: Path, lines: Iterable[str]) -> set[str]:
    """Remove one copy of each of `lines` (the last: ours was appended), and nothing else; a
    copy the administrator added stays. Returns the lines removed. The file is read, edited
    and replaced once, however many lines go (an unblock of thousands of hosts.deny blocks);
    if it changed meanwhile (another program appended a line), all of that again."""
    wanted = set(lines)
    for _ in range(limits.FILE_EDIT_TRIES_MAX):
        text, identity = read_with_identity(path)
        parts = (text or "").split("\n")  # the last part: what follows the last newline
        last: dict[str, int] = {}  # line: index of its last copy
        for number, kept in numbered_lines(text or ""):
            if kept in wanted:
                last[kept] = number - 1
        if not last:
            return set()
        for index in sorted(last.values(), reverse=True):
            if index == len(parts) - 1:  # the last line, with no newline after it
                parts[index] = ""
            else:
                del parts[index]
        try:
            replace_atomically(path, "\n".join(parts), identity)
        except FileChanged:
            continue
        return set(last)
    raise FileChanged(
        f"{path} kept changing; lines not removed after {limits.FILE_EDIT_TRIES_MAX} tries"
    )


def append_lines(path: Path, text: str) -> None:
    """Append whole lines (`text` ends with a newline) in one write, after a newline if the
    file does not end with one, and sync; a new file gets NEW_FILE_MODE."""
    fd = _open_to_append(path)
    try:
        _append_lines(fd, text, path)
    finally:
        os.close(fd)


def file_lines(path: Path) -> list[str]:
    """The lines of `path` as tcpd and PortSentry read them (none when it does not exist)."""
    return _lines(_read(path))
