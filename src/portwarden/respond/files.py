"""Files other tools read: hosts.deny, and PortSentry's BLOCKED_FILE and HISTORY_FILE.

Files are replaced atomically (a new file in the same folder, renamed over the old one) and are
never followed through a symbolic link: an attacker who can plant a link must not be able to make
the daemon write elsewhere.
"""

import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from portwarden.config.ignore import Address
from portwarden.config.values import TcpMode, UdpMode
from portwarden.store.db import BlockRecord


class UnsafeFile(OSError):
    """The path is a symbolic link (or not a regular file)."""


def _read(path: Path) -> str:
    return read_if_exists(path) or ""


def read_if_exists(path: Path) -> str | None:
    """The file's text (undecodable bytes kept as surrogates), None if it does not exist.

    Refuses to follow a symbolic link and to read anything but a regular file (UnsafeFile):
    a FIFO would make the reader wait for a writer for ever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == 40:  # ELOOP: a symbolic link
            raise UnsafeFile(f"{path} is a symbolic link; refusing to follow it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file; refusing to read it")
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape", newline="") as file:
        return file.read()  # newline="": line ends kept as they are, so rewrites keep the bytes


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and rename; keeps the old file's mode, owner
    and group (a hosts.allow of root:adm stays root:adm). A new file gets mode 0644 and the
    writer's owner and group."""
    if path.is_symlink():
        raise UnsafeFile(f"{path} is a symbolic link; refusing to replace it")
    try:
        old = path.stat()
        mode, owner = old.st_mode & 0o7777, (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, None
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
            made = os.fstat(file.fileno())
            if owner is not None and owner != (made.st_uid, made.st_gid):
                os.fchown(file.fileno(), *owner)  # before the mode: chown clears set-id bits
            os.fchmod(file.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def has_line(path: Path, line: str) -> bool:
    return line in _read(path).splitlines()


def add_line(path: Path, line: str) -> bool:
    """Append `line` unless present. Returns whether the file changed."""
    return bool(add_lines(path, [line]))


def add_lines(path: Path, lines: Iterable[str]) -> set[str]:
    """Append every line not present yet, in one read and one write (a restore of thousands
    of hosts.deny lines). Returns the lines added."""
    text = _read(path)
    present = set(text.splitlines())
    added = [line for line in dict.fromkeys(lines) if line not in present]
    if not added:
        return set()
    if text and not text.endswith("\n"):
        text += "\n"
    replace_atomically(path, text + "".join(line + "\n" for line in added))
    return set(added)


def remove_line(path: Path, line: str) -> bool:
    """Remove one copy of `line` (the last: ours was appended), and nothing else; a copy the
    administrator added stays. Returns whether the file changed."""
    lines = _read(path).splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].rstrip("\n") == line:
            del lines[index]
            replace_atomically(path, "".join(lines))
            return True
    return False


def wrappers_address(address: Address) -> str:
    """An address as hosts.deny patterns match it: tcpd matches an IPv6 client only against
    `[2001:db8::11]`, in brackets (hosts_access(5))."""
    return f"[{address}]" if address.version == 6 else str(address)


def portsentry_line(block: BlockRecord) -> str:
    """`<epoch> - MM/DD/YYYY HH:MM:SS Host: <name>/<ip> Port: <port> <TCP|UDP> Blocked`."""
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.localtime(block.since))
    return (f"{int(block.since)} - {stamp} Host: {block.hostname}/{block.address} "
            f"Port: {block.port} {block.proto.upper()} Blocked")  # fmt: skip


MODES = tuple(mode.value for mode in (*TcpMode, *UdpMode))


def blocked_file(base: Path, mode: str) -> Path:
    """PortSentry 1.2 appended the mode to BLOCKED_FILE: portsentry.blocked.atcp, ..."""
    return base.with_name(f"{base.name}.{mode}")


def write_blocked_files(base: Path, blocks: Iterable[BlockRecord], modes: set[str]) -> None:
    """BLOCKED_FILE.<mode> for each of `modes`: the active blocks made in that mode,
    regenerated from the store."""
    by_mode: dict[str, list[str]] = {mode: [] for mode in modes}
    for block in blocks:
        if block.mode in by_mode:
            by_mode[block.mode].append(portsentry_line(block) + "\n")
    base.parent.mkdir(parents=True, exist_ok=True)
    for mode, lines in by_mode.items():
        replace_atomically(blocked_file(base, mode), "".join(lines))


def blocked_files_present(base: Path) -> set[str]:
    """The modes whose BLOCKED_FILE.<mode> exists."""
    return {mode for mode in MODES if blocked_file(base, mode).exists()}


def append_history(path: Path, block: BlockRecord) -> None:
    """HISTORY_FILE: one line per block, appended, as PortSentry did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(portsentry_line(block) + "\n")
