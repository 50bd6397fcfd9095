"""The block store. Every block is committed here before it is reported done.

A block row is active while `ended` is NULL; at most one active row per address. `actions`
records, as JSON, every action of the block before it is done (status `planned`), while an
external command runs (`running`) and after (`done` or `failed: ...`), with how to do and undo
it; so an unblock (by the daemon, by expiry or by the `unblock` command) or a restart after a
kill at any moment undoes or finishes exactly what was, or may have been, done. `boot` is the
boot (kernel boot_id) in which the block's KILL_ROUTE was last carried out: routes and firewall
rules that commands add do not survive a reboot, and running them again without one would add
them twice. `leftover` marks an ended block with an action whose undo failed (its status
`undo failed: ...`): still in force, tried again at the next unblock there and at start.
`history` is 0 until the block's HISTORY_FILE line is written (or the block is known to need
none): a start writes the lines a kill left unwritten. `unblocking` is who asked (the future
`ended_by`) while an unblock undoes the block's actions: set before anything is undone, so a
start after a kill finishes the unblock instead of applying the block again, and no action of
the block not yet done is carried out any more (a block still waiting for the action worker).

`reports` keeps every report meant to be mailed (see alert/reportbook.py): its subject and
body, its `outcome` (queued, retrying, held, sent, listed, failed: ...) and when it was
`mailed` (NULL: not yet); `done`, the recipients that need it no more (delivered to, or refused
for good), one a line, and `reached`, whether it was delivered to some, so that a restart sends a
mail turned away for some recipients to the others only; `tried`, when MAIL_PER_HOUR counted it
(a restart's budget starts from the last hour's); `tries`, how many tries turned it away for now
(so that its delivery, after a restart too, can say after how many tries).

`notes` holds the HISTORY_FILE lines of scans reported in alert-only mode (BLOCK_TCP or
BLOCK_UDP 0, HISTORY_ALERT_ONLY=1: see ResponsePolicy.on_verdict) until they are written: the
loop records one, the action worker finds its `hostname` (RESOLVE_HOST), writes the line and
removes the row. So the table holds only lines not yet written, and a start writes those a kill
left (as it does the lines of blocks); at most limits.NOTES_PENDING_MAX of them.
"""

import contextlib
import functools
import gc
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from portwarden import limits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    proto TEXT NOT NULL,
    port INTEGER NOT NULL,
    mode TEXT NOT NULL,
    reason TEXT NOT NULL,
    hostname TEXT NOT NULL,
    since REAL NOT NULL,
    until REAL,
    offence INTEGER NOT NULL,
    actions TEXT NOT NULL,
    ended REAL,
    ended_by TEXT,
    boot TEXT NOT NULL DEFAULT '',
    leftover INTEGER NOT NULL DEFAULT 0,
    history INTEGER NOT NULL DEFAULT 1,
    unblocking TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_block ON blocks(address) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS blocks_by_address ON blocks(address);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    saved REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    made REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    outcome TEXT NOT NULL,
    mailed REAL,
    done TEXT NOT NULL DEFAULT '',
    reached INTEGER NOT NULL DEFAULT 0,
    tried REAL,
    tries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reports_unmailed ON reports(made) WHERE mailed IS NULL;
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    proto TEXT NOT NULL,
    port INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    since REAL NOT NULL
);
"""


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
UPTIME = Path("/proc/uptime")
PLANNED, RUNNING, DONE = "planned", "running", "done"
FAILED = "failed"  # the block's `ended_by` when none of its actions took effect
# The `ended_by` of a block that only ran KILL_RUN_CMD (BLOCK_TCP or BLOCK_UDP 2) when a probe
# of the other protocol, whose BLOCK is 1, made a block that enforces in its place (see
# ResponsePolicy.on_verdict). Not an offence of its own: the block that replaced it is.
SUPERSEDED = "superseded"
# The `ended_by` of a block that `portwarden unblock` ended: the administrator's word that it
# was a mistake (a false positive), so no offence either.
UNBLOCK_COMMAND = "command"
UNDO_FAILED = "undo failed"  # an ended block's action still in force: `leftover` is set


# Action.kind: the built-in nftables blocker, KILL_ROUTE, KILL_HOSTS_DENY, KILL_RUN_CMD.
NFT, ROUTE, HOSTS_DENY, COMMAND = "nft", "route", "hosts.deny", "command"


class Action(NamedTuple):
    """One action of a block: kind nft, route, hosts.deny or command; how to do it and how to
    undo it (route: argument lists; hosts.deny: (path, line); an empty undo: nothing of ours to
    undo, e.g. a hosts.deny line that was there already). A NamedTuple: 100,000 blocks' actions
    are built at restore."""

    kind: str
    undo: tuple[str, ...] = ()
    # planned, running (an external command), done, failed: <why>, or (on an ended block)
    # undo failed: <why>
    status: str = DONE
    do: tuple[str, ...] = ()


class BlockRecord(NamedTuple):
    """A NamedTuple rather than a frozen dataclass: 100,000 of them are built at restore."""

    id: int
    address: str
    proto: str
    port: int
    mode: str
    reason: str
    hostname: str
    since: float  # epoch seconds
    until: float | None  # None: until unblocked
    offence: int  # 1 for an address's first block, 2 for its second, ...
    actions: tuple[Action, ...]


class HistoryNote(NamedTuple):
    """A scan reported in alert-only mode whose HISTORY_FILE line is not written yet: the
    fields of PortSentry's line, as a block has them (see
    respond.portsentry_files.portsentry_line)."""

    id: int
    address: str
    proto: str  # tcp or udp
    port: int
    hostname: str  # the address until RESOLVE_HOST finds a name
    since: float  # epoch seconds


def _actions_json(actions: tuple[Action, ...]) -> str:
    return json.dumps(
        [
            {"kind": a.kind, "undo": list(a.undo), "status": a.status}
            | ({"do": list(a.do)} if a.do else {})
            for a in actions
        ]
    )


# Stands for a block's own address in the cached parse of its action list. json.dumps
# escapes every non-ASCII character, so it never occurs in a stored text.
_ADDRESS = "\ue000"


@functools.lru_cache(maxsize=256)
def _parsed(template: str) -> tuple[tuple[Action, bool], ...]:
    """The actions, each with whether it holds the address (only those are rebuilt)."""
    actions = [
        Action(a["kind"], tuple(a["undo"]), a["status"], tuple(a.get("do", ())))
        for a in json.loads(template)
    ]
    return tuple((a, any(_ADDRESS in s for s in (a.status, *a.undo, *a.do))) for a in actions)


def _actions(text: str, address: str) -> tuple[Action, ...]:
    """Parsed once per distinct list with the address taken out (100,000 blocks at restore
    share a handful: their hosts.deny lines differ only in the address). The address comes
    back wherever it was: how to do and undo, and the status (an undo's failure names it)."""
    return tuple(
        Action(
            a.kind,
            tuple([s.replace(_ADDRESS, address) for s in a.undo]),
            a.status.replace(_ADDRESS, address),
            tuple([s.replace(_ADDRESS, address) for s in a.do]),
        )
        if holds
        else a
        for a, holds in _parsed(text.replace(address, _ADDRESS))
    )


_COLUMNS = "id, address, proto, port, mode, reason, hostname, since, until, offence, actions"


def _in_force(now: float | None) -> str:
    """The WHERE clause of active blocks; with `now`, of those whose time is not up by then."""
    return "ended IS NULL" + ("" if now is None else " AND (until IS NULL OR until > :now)")


def _record(row: tuple) -> BlockRecord:
    return BlockRecord._make((*row[:10], _actions(row[10], row[1])))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """While 100,000 records are built (restore, `blocked`): the cyclic garbage collector,
    started again and again by so many new objects, took a third of the time (they hold no
    cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def boot_id() -> str:
    """This boot of the kernel: routes and firewall rules added by commands end with it."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _booted_at() -> float:
    """When this boot began, in epoch seconds."""
    try:
        return time.time() - float(UPTIME.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()


def store_path(state_dir: Path) -> Path:
    return state_dir / "portwarden.db"


# The columns a store made by an older version may lack.
_ADDED_COLUMNS = frozenset({"boot", "leftover", "history", "unblocking"})
_ADDED_REPORT_COLUMNS = {
    "done": "TEXT NOT NULL DEFAULT ''",
    "reached": "INTEGER NOT NULL DEFAULT 0",
    "tried": "REAL",
    "tries": "INTEGER NOT NULL DEFAULT 0",
}


class StoreError(Exception):
    """The store cannot be opened (not a database, a directory in its place, ...)."""


class Store:
    """One connection; use one Store per thread."""

    def __init__(self, path: Path, durable: bool = True, read_only: bool = False) -> None:
        """`durable=False` (the daemon's loop): a commit survives the process's death, not the
        machine's (synchronous=NORMAL: ~30 µs instead of ~400 µs for an fsync). What the loop
        records is a planned block whose nftables element is gone with the machine too; the
        action worker's first commit of that block (durable) makes it safe on disk before any
        file or route changes. `read_only` (the commands that only read): a missing store is
        an error, never made (nor its folder); one made by an older version is brought up to
        date all the same, or the current queries could not read it. Raises StoreError or
        OSError."""
        try:
            if not (read_only and self._open_read_only(path)):
                self._open(path, durable)
        except sqlite3.Error as error:
            raise StoreError(f"{path}: {error}") from None

    def _open_read_only(self, path: Path) -> bool:
        """Whether the store at `path`, opened read-only, has the current schema."""
        self._db = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=limits.STORE_BUSY_WAIT_S,
        )
        if self._columns() >= _ADDED_COLUMNS and self._columns("reports") >= set(
            _ADDED_REPORT_COLUMNS
        ):
            return True
        self._db.close()
        return False

    def _columns(self, table: str = "blocks") -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _open(self, path: Path, durable: bool) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        last_write = max(
            (p.stat().st_mtime for p in (path, path.with_name(path.name + "-wal")) if p.exists()),
            default=0.0,
        )
        self._db = sqlite3.connect(path, isolation_level=None, timeout=limits.STORE_BUSY_WAIT_S)
        self._wal()
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):  # root's alone, also one an older
                if file.stat().st_mode & 0o077:  # version made under the caller's umask 022
                    file.chmod(0o600)
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        with self._transaction():  # several processes may open an old store at once
            self._upgrade(last_write)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, committed at the end (rolled back on an error). The connection is
        in autocommit mode, where `with self._db` alone would commit each statement of an
        executemany on its own, with an fsync each: 100,000 updates took 13 s, not 0.2."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield

    def _wal(self) -> None:
        """journal_mode=WAL. Switching a store to it needs the store alone, and SQLite does not
        wait for that (no busy handler): several processes opening a new store at once."""
        deadline = time.monotonic() + limits.STORE_BUSY_WAIT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _upgrade(self, last_write: float) -> None:
        """Make the schema current: a store made before a column gets it."""
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(statement)
        columns = self._columns()
        if "boot" not in columns:
            self._db.execute("ALTER TABLE blocks ADD COLUMN boot TEXT NOT NULL DEFAULT ''")
            if last_write > _booted_at():
                # The daemon of before ran in this boot, and it ran KILL_ROUTE at every start:
                # the routes are in force, running them again would double them.
                self._db.execute("UPDATE blocks SET boot = ? WHERE ended IS NULL", (boot_id(),))
        if "leftover" not in columns:
            self._db.execute("ALTER TABLE blocks ADD COLUMN leftover INTEGER NOT NULL DEFAULT 0")
        if "history" not in columns:  # the daemon of before wrote the lines (or its start did)
            self._db.execute("ALTER TABLE blocks ADD COLUMN history INTEGER NOT NULL DEFAULT 1")
        if "unblocking" not in columns:
            self._db.execute("ALTER TABLE blocks ADD COLUMN unblocking TEXT")
        report_columns = self._columns("reports")
        for column, kind in _ADDED_REPORT_COLUMNS.items():
            if column not in report_columns:
                self._db.execute(f"ALTER TABLE reports ADD COLUMN {column} {kind}")
        self._db.execute("CREATE INDEX IF NOT EXISTS blocks_left ON blocks(id) WHERE leftover")
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS blocks_unwritten ON blocks(id) WHERE NOT history"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS blocks_unblocking ON blocks(id)"
            " WHERE unblocking IS NOT NULL AND ended IS NULL"
        )

    def close(self) -> None:
        self._db.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cue to re-read."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def add_block(
        self,
        address: str,
        proto: str,
        port: int,
        mode: str,
        reason: str,
        hostname: str,
        since: float,
        until: float | None,
        actions: tuple[Action, ...],
        boot: str,
        replacing: int | None = None,
    ) -> BlockRecord | None:
        """Record a new active block; None if the address already has one. `replacing`: the
        id of the address's active block that this one supersedes (SUPERSEDED), ended in the
        same transaction, unless an unblock of it has begun (then None)."""
        with self._transaction():
            if replacing is not None:
                self._db.execute(
                    "UPDATE blocks SET ended = ?, ended_by = ? WHERE id = ? AND ended IS NULL"
                    " AND unblocking IS NULL",
                    (since, SUPERSEDED, replacing),
                )
            offence = 1 + self.offences(address)
            record = BlockRecord(
                0, address, proto, port, mode, reason, hostname, since, until, offence, actions
            )
            try:
                cursor = self._db.execute(
                    "INSERT INTO blocks (address, proto, port, mode, reason, hostname, since,"
                    " until, offence, actions, boot, history)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (*record[1:-1], _actions_json(actions), boot),  # address ... offence
                )
            except sqlite3.IntegrityError:
                return None
        return record._replace(id=cursor.lastrowid or 0)

    def offences(self, address: str, replacing: int | None = None) -> int:
        """How many blocks this address has had before (attempts that took no effect, blocks
        superseded by another and blocks the `unblock` command ended do not count; nor does
        block `replacing`, which the next one is to supersede)."""
        return int(
            self._db.execute(
                "SELECT count(*) FROM blocks WHERE address = ? AND coalesce(ended_by, '') NOT IN"
                " (?, ?, ?) AND id IS NOT ?",
                (address, FAILED, SUPERSEDED, UNBLOCK_COMMAND, replacing),
            ).fetchone()[0]
        )

    def dos_of(self, kind: str) -> set[tuple[str, ...]]:
        """The `do` of every action of `kind` of the blocks, active and ended, each once."""
        rows = self._db.execute(
            "SELECT DISTINCT json_extract(value, '$.do') FROM blocks, json_each(blocks.actions)"
            " WHERE json_extract(value, '$.kind') = ?",
            (kind,),
        )
        return {tuple(json.loads(do)) if do else () for (do,) in rows}

    def has_action(self, kind: str) -> bool:
        """Whether a block, active or ended, has an action of `kind`. Its text is looked for
        first: a JSON parse of every block's actions took 0.6 s for 100,000, this 0.06 s."""
        row = self._db.execute(
            "SELECT 1 FROM blocks WHERE instr(actions, :quoted) AND EXISTS (SELECT 1 FROM"
            " json_each(blocks.actions) WHERE json_extract(value, '$.kind') = :kind) LIMIT 1",
            {"kind": kind, "quoted": json.dumps(kind)},
        ).fetchone()
        return row is not None

    def unwritten(self) -> list[BlockRecord]:
        """Blocks (active or ended) whose HISTORY_FILE line is not known to be written."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM blocks WHERE NOT history ORDER BY id")
        return [_record(row) for row in rows]

    def set_written(self, block_ids: list[int]) -> None:
        """The blocks' HISTORY_FILE lines are written (or they need none)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE blocks SET history = 1 WHERE id = ?", [(i,) for i in block_ids]
            )

    def add_note(self, address: str, proto: str, port: int, since: float) -> None:
        """Record a HISTORY_FILE line to write for a scan reported in alert-only mode; past
        limits.NOTES_PENDING_MAX waiting, the oldest are forgotten."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO notes (address, proto, port, hostname, since) VALUES (?, ?, ?, ?, ?)",
                (address, proto, port, address, since),
            )
            self._db.execute(
                "DELETE FROM notes WHERE id <= (SELECT max(id) FROM notes) - ?",
                (limits.NOTES_PENDING_MAX,),
            )

    def notes(self) -> list[HistoryNote]:
        """The alert-only HISTORY_FILE lines not written yet, oldest first."""
        rows = self._db.execute(
            "SELECT id, address, proto, port, hostname, since FROM notes ORDER BY id"
        )
        return [HistoryNote._make(row) for row in rows]

    def set_note_hostname(self, note_id: int, hostname: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE notes SET hostname = ? WHERE id = ?", (hostname, note_id))

    def forget_notes(self, note_ids: list[int]) -> None:
        """The notes' lines are written."""
        with self._transaction():
            self._db.executemany("DELETE FROM notes WHERE id = ?", [(i,) for i in note_ids])

    def start_unblocking(self, block_ids: list[int], by: str) -> None:
        """Mark the active blocks as being unblocked by `by`, in one transaction, before
        anything of them is undone."""
        with self._transaction():
            self._db.executemany(
                "UPDATE blocks SET unblocking = ? WHERE id = ? AND ended IS NULL",
                [(by, i) for i in block_ids],
            )

    def unblocking(self) -> list[tuple[BlockRecord, str]]:
        """The active blocks whose unblock a kill interrupted, with who asked."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, unblocking FROM blocks WHERE unblocking"
            " IS NOT NULL AND ended IS NULL ORDER BY id"
        )
        return [(_record(row[:-1]), str(row[-1])) for row in rows]

    def set_actions(self, block_id: int, actions: tuple[Action, ...]) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE blocks SET actions = ? WHERE id = ?", (_actions_json(actions), block_id)
            )

    def set_actions_many(self, changes: list[tuple[int, tuple[Action, ...]]]) -> None:
        """set_actions for many blocks (block id, actions) in one transaction."""
        with self._transaction():
            rows = [(_actions_json(actions), block_id) for block_id, actions in changes]
            self._db.executemany("UPDATE blocks SET actions = ? WHERE id = ?", rows)

    def set_boot(self, block_id: int, boot: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE blocks SET boot = ? WHERE id = ?", (boot, block_id))

    def set_boot_all(self, boot: str) -> None:
        """Every active block is known to be in force in the boot `boot`."""
        with self._transaction():
            self._db.execute(
                "UPDATE blocks SET boot = ? WHERE ended IS NULL AND boot != ?", (boot, boot)
            )

    def made_in_other_boots(self, boot: str) -> set[int]:
        """Active blocks whose KILL_ROUTE was last carried out before the boot `boot`."""
        rows = self._db.execute("SELECT id FROM blocks WHERE ended IS NULL AND boot != ?", (boot,))
        return {row[0] for row in rows}

    def set_hostname(self, block_id: int, hostname: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE blocks SET hostname = ? WHERE id = ?", (hostname, block_id))

    def end_block(
        self, block_id: int, when: float, by: str, actions: tuple[Action, ...] | None = None
    ) -> bool:
        """Mark a block ended (with its actions as undone: those whose undo failed make it a
        leftover). False if it had already ended (someone else undid it)."""
        with self._transaction():
            return self._end(block_id, when, by, actions)

    def end_blocks(
        self, ended: list[tuple[int, tuple[Action, ...]]], when: float, by: str
    ) -> set[int]:
        """end_block for many blocks (block id, actions as undone) in one transaction.
        Returns the ids of those that had not ended already."""
        with self._transaction():
            return {i for i, actions in ended if self._end(i, when, by, actions)}

    def _end(self, block_id: int, when: float, by: str, actions: tuple[Action, ...] | None) -> bool:
        """A block ended FAILED took no effect (or was taken back at once, as one the full
        action queue refused, whose element the loop had added): it needs no HISTORY_FILE
        line, said in the same update, so that no kill before set_written gives it one."""
        cursor = self._db.execute(
            "UPDATE blocks SET ended = ?, ended_by = ?, history = history OR ? WHERE id = ?"
            " AND ended IS NULL",
            (when, by, by == FAILED, block_id),
        )
        if actions is not None and cursor.rowcount == 1:
            self._set_left(block_id, actions)
        return cursor.rowcount == 1

    def set_left(self, block_id: int, actions: tuple[Action, ...]) -> None:
        """An ended block's actions after another try at undoing them."""
        with self._transaction():
            self._set_left(block_id, actions)

    def _set_left(self, block_id: int, actions: tuple[Action, ...]) -> None:
        left = any(a.status.startswith(UNDO_FAILED) for a in actions)
        self._db.execute(
            "UPDATE blocks SET actions = ?, leftover = ? WHERE id = ?",
            (_actions_json(actions), int(left), block_id),
        )

    def leftovers(self) -> list[BlockRecord]:
        """Ended blocks with an action whose undo failed (still in force)."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM blocks WHERE leftover ORDER BY id")
        return [_record(row) for row in rows]

    def left_in_other_boots(self, boot: str) -> set[int]:
        """Leftovers whose KILL_ROUTE was last carried out before the boot `boot`."""
        rows = self._db.execute("SELECT id FROM blocks WHERE leftover AND boot != ?", (boot,))
        return {row[0] for row in rows}

    def last_end(self, address: str) -> tuple[str, float] | None:
        """By what (expired, restart, ...) and when the address's latest ended block ended."""
        row = self._db.execute(
            "SELECT ended_by, ended FROM blocks WHERE address = ? AND ended IS NOT NULL"
            " ORDER BY ended DESC LIMIT 1",
            (address,),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def active(self, now: float | None = None) -> list[BlockRecord]:
        """The active blocks; with `now`, only those whose time is not up by then (the daemon
        ends the others within a second, but it may not be running)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE {_in_force(now)} ORDER BY since, id", {"now": now}
        )
        with collector_paused():
            return [_record(row) for row in rows]

    def active_count(self, now: float | None = None) -> int:
        """How many blocks are active (with `now`: and not past their time, as in active())."""
        query = f"SELECT count(*) FROM blocks WHERE {_in_force(now)}"
        return int(self._db.execute(query, {"now": now}).fetchone()[0])

    def latest_active(self, limit: int, now: float | None = None) -> list[BlockRecord]:
        """The `limit` most recent active blocks, newest first (`now` as in active())."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE {_in_force(now)} ORDER BY since DESC, id DESC"
            " LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return [_record(row) for row in rows]

    def ending(self, block_id: int) -> str | None:
        """By what the block ended (expired, command, ...), or who is unblocking it (an unblock
        has begun: see start_unblocking); None while it is active and no unblock has begun."""
        row = self._db.execute(
            "SELECT coalesce(ended_by, unblocking) FROM blocks WHERE id = ?", (block_id,)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def active_block(self, address: str) -> BlockRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL AND address = ?", (address,)
        ).fetchone()
        return None if row is None else _record(row)

    def save_snapshot(self, name: str, saved: float, body: dict[str, Any]) -> None:
        """Keep the latest `name` snapshot (status, audit) for when the daemon is not running."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots (name, saved, body) VALUES (?, ?, ?)",
                (name, saved, json.dumps(body)),
            )

    def snapshot(self, name: str) -> tuple[float, dict[str, Any]] | None:
        row = self._db.execute(
            "SELECT saved, body FROM snapshots WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def due(self, now: float) -> list[BlockRecord]:
        """Active blocks whose time is up, but those an unblock has begun (see
        start_unblocking): that unblock ends them, and says so to whoever asked it."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL AND unblocking IS NULL"
            " AND until <= ? ORDER BY until",
            (now,),
        )
        return [_record(row) for row in rows]

    def active_addresses(self) -> set[str]:
        return {
            row[0] for row in self._db.execute("SELECT address FROM blocks WHERE ended IS NULL")
        }

    def add_report(
        self, made: float, kind: str, subject: str, body: str, outcome: str, keep: int
    ) -> int:
        """Record a report; only the `keep` latest are kept. Returns its id."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO reports (made, kind, subject, body, outcome) VALUES (?, ?, ?, ?, ?)",
                (made, kind, subject, body, outcome),
            )
            report_id = cursor.lastrowid or 0
            self._db.execute("DELETE FROM reports WHERE id <= ?", (report_id - keep,))
        return report_id

    def set_report(
        self,
        report_id: int,
        outcome: str,
        mailed: float | None = None,
        done: tuple[str, ...] = (),
        reached: bool = False,
        tries: int | None = None,
    ) -> None:
        """`tries` None: as it was."""
        with self._transaction():
            self._db.execute(
                "UPDATE reports SET outcome = ?, mailed = ?, done = ?, reached = ?,"
                " tries = coalesce(?, tries) WHERE id = ?",
                (outcome, mailed, "\n".join(done), reached, tries, report_id),
            )

    def set_tried(self, report_id: int, tried: float) -> None:
        with self._transaction():
            self._db.execute("UPDATE reports SET tried = ? WHERE id = ?", (tried, report_id))

    def tried_since(self, since: float) -> list[float]:
        """When MAIL_PER_HOUR counted the reports it counted after `since` (epoch), in order."""
        return [
            row[0]
            for row in self._db.execute(
                "SELECT tried FROM reports WHERE tried > ? ORDER BY tried", (since,)
            )
        ]

    def made_since(self, kind: str, since: float) -> float | None:
        """When the latest report of `kind` made after `since` was made (None: none)."""
        row = self._db.execute(
            "SELECT max(made) FROM reports WHERE kind = ? AND made > ?", (kind, since)
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def list_reports(self, ids: range, was: str, outcome: str, mailed: float) -> None:
        """The reports with an id in `ids` whose outcome is `was` are now `outcome`, mailed at
        `mailed`."""
        with self._transaction():
            self._db.execute(
                "UPDATE reports SET outcome = ?, mailed = ?"
                " WHERE outcome = ? AND id BETWEEN ? AND ?",
                (outcome, mailed, was, ids.start, ids.stop - 1),
            )

    def unmailed_span(self, outcome: str) -> tuple[int, int, int, float] | None:
        """How many reports not mailed have `outcome`, their lowest and highest id, and when the
        oldest was made (epoch); None: there is none."""
        count, low, high, made = self._db.execute(
            "SELECT count(*), min(id), max(id), min(made) FROM reports"
            " WHERE mailed IS NULL AND outcome = ?",
            (outcome,),
        ).fetchone()
        return (int(count), int(low), int(high), float(made)) if count else None

    def unmailed_reports(
        self, outcomes: tuple[str, ...], since: float, limit: int, skip: tuple[int, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """(id, made, kind, subject, body, done, reached, tries) of the reports not mailed with
        one of `outcomes`, made after `since`, oldest first (at most `limit`), but the ids in
        `skip`."""
        marks, skipped = ", ".join("?" * len(outcomes)), ", ".join("?" * len(skip))
        return self._db.execute(
            "SELECT id, made, kind, subject, body, done, reached, tries FROM reports"
            f" WHERE mailed IS NULL AND made > ? AND outcome IN ({marks})"
            f" AND id NOT IN ({skipped}) ORDER BY made, id LIMIT ?",
            (since, *outcomes, *skip, limit),
        ).fetchall()

    def unmailed_count(self, outcomes: tuple[str, ...]) -> int:
        marks = ", ".join("?" * len(outcomes))
        return int(
            self._db.execute(
                f"SELECT count(*) FROM reports WHERE mailed IS NULL AND outcome IN ({marks})",
                outcomes,
            ).fetchone()[0]
        )

    def give_up_reports(self, outcomes: tuple[str, ...], before: float, outcome: str) -> list[str]:
        """The reports not mailed with one of `outcomes`, made at or before `before`, are now
        `outcome`. Returns their subjects, oldest first."""
        marks = ", ".join("?" * len(outcomes))
        where = f"WHERE mailed IS NULL AND made <= ? AND outcome IN ({marks})"
        with self._transaction():
            subjects = [
                row[0]
                for row in self._db.execute(
                    f"SELECT subject FROM reports {where} ORDER BY made, id", (before, *outcomes)
                )
            ]
            self._db.execute(
                f"UPDATE reports SET outcome = ? {where}", (outcome, before, *outcomes)
            )
        return subjects

    def forget_reports(self, before: float) -> None:
        """Remove the reports made before `before` (epoch)."""
        with self._transaction():
            self._db.execute("DELETE FROM reports WHERE made < ?", (before,))
