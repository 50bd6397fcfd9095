"""The PortSentry files, written from the store (their formats: respond/portsentry_files.py):
HISTORY_FILE gets a line for each block that took effect and each scan noted in alert-only
mode, once (a line a kill left unwritten is written at the next start, a line written already
is not written again); BLOCKED_FILE.<mode> lists the active blocks."""

import ipaddress
import logging
from collections.abc import Sequence

from portwarden.respond import portsentry_files
from portwarden.respond.context import ActionContext, hostname
from portwarden.respond.recorded import enforced
from portwarden.store.db import BlockRecord, HistoryNote
from portwarden.text import one_line

log = logging.getLogger("portwarden")


class PortSentryWriter:
    def __init__(self, context: ActionContext) -> None:
        self._context = context
        self._store = context.store

    def write_history(self, records: list[BlockRecord]) -> None:
        """HISTORY_FILE gets the line of each block of `records` that took effect (see
        `enforced`), then the store knows they are written (a failure: at the next start)."""
        if records and self._append_history([r for r in records if enforced(r.actions)]):
            self._store.set_written([r.id for r in records])

    def write_notes(self) -> None:
        """HISTORY_FILE gets the line of each scan reported in alert-only mode that the store
        holds (see ResponsePolicy._note), with the name RESOLVE_HOST finds for its address,
        waited for as a block's is; the name is recorded before the line is written (a start
        after a kill in between must recognise the line: catch_up_history). Then the store
        forgets them; a write that fails leaves them there, for the next note or start."""
        notes = self._store.notes()
        if not notes:
            return
        lookups = [
            self._context.start_lookup(ipaddress.ip_address(n.address))
            if n.hostname == n.address
            else None
            for n in notes
        ]
        named = []
        for note, lookup in zip(notes, lookups, strict=True):
            name = hostname(lookup, note.address, note.since)
            if lookup is not None and name != note.hostname:
                self._store.set_note_hostname(note.id, name)
                note = note._replace(hostname=name)
            named.append(note)
        if not self._append_history(named):
            return
        self._store.forget_notes([n.id for n in named])
        for note in named:
            log.info(
                "history-note address=%s port=%d proto=%s: HISTORY_FILE line written "
                "(alert only, HISTORY_ALERT_ONLY=1)",
                note.address,
                note.port,
                note.proto,
            )

    def catch_up_history(self) -> None:
        """At start: the lines a kill left unwritten, of blocks that took effect (see
        Store.unwritten) and of alert-only notes, oldest first, but those the file has
        already (the kill came between the write and the store's update)."""
        blocks, notes = self._store.unwritten(), self._store.notes()
        due: list[BlockRecord | HistoryNote] = [r for r in blocks if enforced(r.actions)]
        due = sorted([*due, *notes], key=lambda entry: entry.since)
        if (blocks or notes) and self._append_history(due, catching_up=True):
            self._store.set_written([r.id for r in blocks])
            self._store.forget_notes([n.id for n in notes])

    def _append_history(
        self, entries: Sequence[BlockRecord | HistoryNote], catching_up: bool = False
    ) -> bool:
        """Append the entries' lines to HISTORY_FILE (`catching_up`: but those it has
        already). Returns whether that worked (if not, it is said)."""
        path = self._context.settings.history_file
        try:
            if catching_up and entries:
                present = portsentry_files.history_lines(path)
                entries = [e for e in entries if portsentry_files.portsentry_line(e) not in present]
            portsentry_files.append_history(path, entries)
        except OSError as error:
            log.error("writing HISTORY_FILE failed: %s", one_line(str(error)))
            return False
        if catching_up and entries:
            log.warning("HISTORY_FILE: %d lines a stop left unwritten written now", len(entries))
        return True

    def write_files(
        self, new: BlockRecord | None = None, active: list[BlockRecord] | None = None
    ) -> None:
        """BLOCKED_FILE.<mode> lists the active blocks: after a new block (`new`) its mode's
        file, else the files of the modes that run, of every mode with a block, and every one
        that exists (emptied when its last block has gone)."""
        s = self._context.settings
        try:
            blocks = self._store.active() if active is None else active
            if new is not None:
                modes = {new.mode}
            else:
                modes = {m.value for m in (s.tcp_mode, s.udp_mode) if m}
                modes |= {b.mode for b in blocks} | portsentry_files.blocked_files_present(
                    s.blocked_file
                )
            portsentry_files.write_blocked_files(s.blocked_file, blocks, modes)
        except OSError as error:
            log.error("writing PortSentry files failed: %s", one_line(str(error)))
