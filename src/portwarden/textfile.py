"""Reading the old text files (configuration, ignore list) the way PortSentry read them.

PortSentry read both with fgets(): a line ends at '\\n' and nowhere else. str.splitlines() also
breaks at \\v, \\f, \\x1c-\\x1e, \\x85 (NEL: what Latin-1 makes of a cp1252 file's '…') and
U+2028/U+2029, which would shift every line number after it and turn the rest of a comment
into a bogus line.
"""

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from portwarden import limits

BOM = b"\xef\xbb\xbf"  # what some editors put before the first line of a UTF-8 file
_NULL_DEVICE = os.makedev(1, 3)  # /dev/null, whatever it is called: an empty file by design
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def open_regular(path: Path) -> tuple[BinaryIO, int]:
    """`path` opened for reading, and its permission bits. Raises ValueError (why, without the
    path) unless it is a regular file we may read, or the null device (`IGNORE_FILE="/dev/null"`
    is an old way to say "none"): a FIFO (opened without waiting for a writer), any other
    device or a directory is refused before a byte is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise ValueError(error.strerror) from None
    status = os.fstat(fd)
    mode = status.st_mode
    if not stat.S_ISREG(mode) and not (stat.S_ISCHR(mode) and status.st_rdev == _NULL_DEVICE):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "another kind of file")
        raise ValueError(f"not a regular file but {kind}")
    return os.fdopen(fd, "rb"), stat.S_IMODE(mode)


def read_text(path: Path) -> str:
    """The file's text (see `decoded`). Raises ValueError as `read_bytes`."""
    return decoded(read_bytes(path))


def read_bytes(path: Path) -> bytes:
    """The file's bytes as they are (a BOM kept: PortSentry read it as part of the first line).
    Raises ValueError (why, without the path) if it cannot be read, is no regular file, or is
    larger than CONFIG_FILE_BYTES_MAX."""
    file, _ = open_regular(path)
    with file:
        try:
            data = file.read(limits.CONFIG_FILE_BYTES_MAX + 1)
        except OSError as error:
            raise ValueError(error.strerror) from None
    if len(data) > limits.CONFIG_FILE_BYTES_MAX:
        raise ValueError(f"larger than {limits.CONFIG_FILE_BYTES_MAX // 2**20} MiB")
    return data


def decoded(data: bytes) -> str:
    """UTF-8 (a leading BOM dropped), or Latin-1 byte for byte for old files that are not
    UTF-8."""
    data = data.removeprefix(BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) for every line, split at '\\n' only; trailing '\\r's (CRLF files, and
    '\\r\\r\\n' from a CRLF file converted twice) are dropped: PortSentry's value ended at the
    closing quote, or at the first '\\r' without one."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.rstrip("\r")


def lines_with_ends(text: str) -> list[str]:
    """The lines of `text` with their line ends, split at '\\n' only (a CRLF line keeps its
    '\\r\\n'; the last line has no end if the text does not end in '\\n'): joined again they are
    `text`, byte for byte."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1].removesuffix("\n")
    return lines if lines[-1] else lines[:-1]
