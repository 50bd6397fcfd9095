"""PortSentry's BLOCKED_FILE and HISTORY_FILE lines, and hosts.deny's address form, written
through fileedit (atomic, never through a symbolic link)."""

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path

from portwarden.config.values import TcpMode, UdpMode
from portwarden.fileedit import append_lines, file_lines, replace_atomically
from portwarden.net.addresses import IPAddress
from portwarden.store.db import BlockRecord, HistoryNote


def wrappers_address(address: IPAddress) -> str:
    """An address as hosts.deny patterns match it: tcpd matches an IPv6 client only against
    `[2001:db8::11]`, in brackets (hosts_access(5))."""
    return f"[{address}]" if address.version == 6 else str(address)


def portsentry_line(block: BlockRecord | HistoryNote) -> str:
    """`<epoch> - MM/DD/YYYY HH:MM:SS Host: <name>/<ip> Port: <port> <TCP|UDP> Blocked`: a
    block's, or that of a scan reported in alert-only mode (PortSentry wrote it then too)."""
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.localtime(block.since))
    return (
        f"{int(block.since)} - {stamp} Host: {block.hostname}/{block.address} "
        f"Port: {block.port} {block.proto.upper()} Blocked"
    )


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
    _make_public_folder(base.parent)
    for mode, lines in by_mode.items():
        replace_atomically(blocked_file(base, mode), "".join(lines))


def blocked_files_present(base: Path) -> set[str]:
    """The modes whose BLOCKED_FILE.<mode> exists."""
    return {mode for mode in MODES if blocked_file(base, mode).exists()}


def append_history(path: Path, blocks: Iterable[BlockRecord | HistoryNote]) -> None:
    """HISTORY_FILE: one line per block (or alert-only note), appended (in one write, after
    a newline if the file does not end with one), as PortSentry did. A new file gets
    fileedit.NEW_FILE_MODE, as BLOCKED_FILE does (PortSentry made both with fopen: 0644 under the
    usual umask)."""
    text = "".join(portsentry_line(block) + "\n" for block in blocks)
    if not text:
        return
    _make_public_folder(path.parent)
    append_lines(path, text)


def _make_public_folder(folder: Path) -> None:
    """`folder` and any missing parent, made 0755 (not the daemon's umask 077): the files in
    it are for others to read, as PortSentry's were."""
    if folder.is_dir():
        return
    _make_public_folder(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
        folder.chmod(0o755)


def history_lines(path: Path) -> set[str]:
    """The lines of HISTORY_FILE (none when it does not exist)."""
    return set(file_lines(path))
