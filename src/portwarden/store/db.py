"""The block store. Every block is committed here before it is reported done.

A block row is active while `ended` is NULL; at most one active row per address. `actions`
records, as JSON, what was done and how to undo it, so an unblock (by the daemon, by expiry or by
the `unblock` command) undoes exactly that.
"""

import functools
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

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
    ended_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_block ON blocks(address) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS blocks_by_address ON blocks(address);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    saved REAL NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Action:
    """One thing done for a block: kind nft, route, hosts.deny or command; how to undo it."""

    kind: str
    undo: tuple[str, ...] = ()  # route: the argv that removes it; hosts.deny: (path, line)
    status: str = "done"  # done, failed: <why>, or planned (recorded, not yet confirmed)


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


def _actions_json(actions: tuple[Action, ...]) -> str:
    return json.dumps([{"kind": a.kind, "undo": list(a.undo), "status": a.status}
                       for a in actions])  # fmt: skip


@functools.lru_cache(maxsize=256)
def _actions(text: str) -> tuple[Action, ...]:
    """Parsed once per distinct text: most blocks share their action list (restore of 100k)."""
    return tuple(Action(a["kind"], tuple(a["undo"]), a["status"]) for a in json.loads(text))


_COLUMNS = "id, address, proto, port, mode, reason, hostname, since, until, offence, actions"


def _record(row: tuple) -> BlockRecord:
    return BlockRecord._make((*row[:10], _actions(row[10])))


def store_path(state_dir: Path) -> Path:
    return state_dir / "portwarden.db"


class Store:
    """One connection; use one Store per thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cue to re-read."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def add_block(self, address: str, proto: str, port: int, mode: str, reason: str,
                  hostname: str, since: float, until: float | None,
                  actions: tuple[Action, ...]) -> BlockRecord | None:  # fmt: skip
        """Record a new active block; None if the address already has one."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            offence = (
                1
                + self._db.execute(
                    "SELECT count(*) FROM blocks WHERE address = ?", (address,)
                ).fetchone()[0]
            )
            try:
                cursor = self._db.execute(
                    "INSERT INTO blocks (address, proto, port, mode, reason, hostname, since,"
                    " until, offence, actions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (address, proto, port, mode, reason, hostname, since, until, offence,
                     _actions_json(actions)))  # fmt: skip
            except sqlite3.IntegrityError:
                return None
        return BlockRecord(cursor.lastrowid or 0, address, proto, port, mode, reason, hostname,
                           since, until, offence, actions)  # fmt: skip

    def offences(self, address: str) -> int:
        """How many blocks this address has had before."""
        return int(self._db.execute(
            "SELECT count(*) FROM blocks WHERE address = ?", (address,)).fetchone()[0])  # fmt: skip

    def set_actions(self, block_id: int, actions: tuple[Action, ...]) -> None:
        with self._db:
            self._db.execute("UPDATE blocks SET actions = ? WHERE id = ?",
                             (_actions_json(actions), block_id))  # fmt: skip

    def set_hostname(self, block_id: int, hostname: str) -> None:
        with self._db:
            self._db.execute("UPDATE blocks SET hostname = ? WHERE id = ?", (hostname, block_id))

    def end_block(self, block_id: int, when: float, by: str) -> bool:
        """Mark a block ended. False if it had already ended (someone else undid it)."""
        with self._db:
            cursor = self._db.execute(
                "UPDATE blocks SET ended = ?, ended_by = ? WHERE id = ? AND ended IS NULL",
                (when, by, block_id))  # fmt: skip
        return cursor.rowcount == 1

    def last_end(self, address: str) -> tuple[float, str] | None:
        """When and by what (expired, command, stop) the address's latest ended block ended."""
        row = self._db.execute(
            "SELECT ended, ended_by FROM blocks WHERE address = ? AND ended IS NOT NULL"
            " ORDER BY ended DESC LIMIT 1", (address,)).fetchone()  # fmt: skip
        return None if row is None else (row[0], row[1])

    def active(self) -> list[BlockRecord]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL ORDER BY since, id"
        )
        return [_record(row) for row in rows]

    def active_count(self) -> int:
        query = "SELECT count(*) FROM blocks WHERE ended IS NULL"
        return int(self._db.execute(query).fetchone()[0])

    def latest_active(self, limit: int) -> list[BlockRecord]:
        """The `limit` most recent active blocks, newest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL ORDER BY since DESC, id DESC"
            " LIMIT ?", (limit,))  # fmt: skip
        return [_record(row) for row in rows]

    def active_block(self, address: str) -> BlockRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL AND address = ?", (address,)
        ).fetchone()
        return None if row is None else _record(row)

    def save_snapshot(self, name: str, saved: float, body: dict[str, Any]) -> None:
        """Keep the latest `name` snapshot (status, audit) for when the daemon is not running."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots (name, saved, body) VALUES (?, ?, ?)",
                (name, saved, json.dumps(body)),
            )

    def snapshot(self, name: str) -> tuple[float, dict[str, Any]] | None:
        row = self._db.execute("SELECT saved, body FROM snapshots WHERE name = ?",
                               (name,)).fetchone()  # fmt: skip
        return None if row is None else (row[0], json.loads(row[1]))

    def due(self, now: float) -> list[BlockRecord]:
        """Active blocks whose time is up."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blocks WHERE ended IS NULL AND until <= ? ORDER BY until",
            (now,),
        )
        return [_record(row) for row in rows]

    def active_addresses(self) -> set[str]:
        return {row[0] for row in self._db.execute(
            "SELECT address FROM blocks WHERE ended IS NULL")}  # fmt: skip
