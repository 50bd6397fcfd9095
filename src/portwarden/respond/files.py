"""Files other tools read: hosts.deny, and PortSentry's BLOCKED_FILE and HISTORY_FILE.

Files are replaced atomically (a new file in the same folder, renamed over the old one) and are
never followed through a symbolic link: an attacker who can plant a link must not be able to make
the daemon write elsewhere.
"""

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from portwarden.store.db import BlockRecord


class UnsafeFile(OSError):
    """The path is a symbolic link (or not a regular file)."""


def _read(path: Path) -> str:
    return read_if_exists(path) or ""


def read_if_exists(path: Path) -> str | None:
    """The file's text (undecodable bytes kept as surrogates), None if it does not exist.

    Refuses to follow a symbolic link (UnsafeFile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == 40:  # ELOOP: a symbolic link
            raise UnsafeFile(f"{path} is a symbolic link; refusing to follow it") from None
        raise
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape", newline="") as file:
        return file.read()  # newline="": line ends kept as they are, so rewrites keep the bytes


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and rename; keeps the old file's mode."""
    if path.is_symlink():
        raise UnsafeFile(f"{path} is a symbolic link; refusing to replace it")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_line(path: Path, line: str) -> bool:
    """Append `line` unless present. Returns whether the file changed."""
    text = _read(path)
    if line in text.splitlines():
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    replace_atomically(path, text + line + "\n")
    return True


def remove_line(path: Path, line: str) -> bool:
    """Remove every copy of `line`, and nothing else. Returns whether the file changed."""
    text = _read(path)
    lines = text.splitlines(keepends=True)
    kept = [item for item in lines if item.rstrip("\n") != line]
    if len(kept) == len(lines):
        return False
    replace_atomically(path, "".join(kept))
    return True


def portsentry_line(block: BlockRecord) -> str:
    """`<epoch> - MM/DD/YYYY HH:MM:SS Host: <name>/<ip> Port: <port> <TCP|UDP> Blocked`."""
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.localtime(block.since))
    return (f"{int(block.since)} - {stamp} Host: {block.hostname}/{block.address} "
            f"Port: {block.port} {block.proto.upper()} Blocked")  # fmt: skip


def write_blocked_file(path: Path, blocks: Iterable[BlockRecord]) -> None:
    """BLOCKED_FILE: the active blocks, regenerated from the store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, "".join(portsentry_line(b) + "\n" for b in blocks))


def append_history(path: Path, block: BlockRecord) -> None:
    """HISTORY_FILE: one line per block, appended, as PortSentry did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(portsentry_line(block) + "\n")
