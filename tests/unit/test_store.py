"""The block store: what is written is read back, and an old store is upgraded once, also when
several processes open it at the same moment."""

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from portwarden.store.db import Action, Store, StoreError

ADDRESS = "198.18.0.11"


def test_an_undo_failure_naming_the_address_reads_back_with_the_address(tmp_path: Path) -> None:
    """The action lists are parsed with the address taken out (a cache shared by the blocks);
    the address must come back in the status too, not a placeholder."""
    store = Store(tmp_path / "store.db")
    undo = ("ip", "route", "del", "blackhole", ADDRESS)
    status = f"undo failed: {' '.join(undo)} failed"
    actions = (
        Action("route", undo, status, ("ip", "route", "add", "blackhole", ADDRESS)),
        Action("command", (), f"failed: {ADDRESS} unreachable"),
    )
    record = store.add_block(
        ADDRESS, "tcp", 11, "stcp", "x", ADDRESS, time.time(), None, actions, "boot"
    )
    assert record is not None
    store.end_block(record.id, time.time(), "command", actions)
    for other in ("198.18.0.12", "198.18.0.13"):  # more blocks of the same shape share a parse
        again = tuple(
            a._replace(
                undo=tuple(w.replace(ADDRESS, other) for w in a.undo),
                status=a.status.replace(ADDRESS, other),
                do=tuple(w.replace(ADDRESS, other) for w in a.do),
            )
            for a in actions
        )
        assert (
            store.add_block(other, "tcp", 11, "stcp", "x", other, time.time(), None, again, "boot")
            is not None
        )
    (left,) = store.leftovers()
    assert left.actions == actions
    for block in store.active():
        assert "\ue000" not in repr(block) and block.address in block.actions[0].status


OLD_SCHEMA = (
    "CREATE TABLE blocks (id INTEGER PRIMARY KEY, address TEXT NOT NULL, proto TEXT NOT NULL,"
    " port INTEGER NOT NULL, mode TEXT NOT NULL, reason TEXT NOT NULL, hostname TEXT NOT NULL,"
    " since REAL NOT NULL, until REAL, offence INTEGER NOT NULL, actions TEXT NOT NULL,"
    " ended REAL, ended_by TEXT)"
)


def _open(path: str, start: float) -> str:
    """Open the store at `start` (all processes at once); the error, if any."""
    time.sleep(max(0.0, start - time.time()))
    try:
        Store(Path(path)).close()
    except Exception as error:  # the test reports whatever it is
        return f"{type(error).__name__}: {error}"
    return ""


def test_several_processes_opening_an_old_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for run in range(8):
        path = tmp_path / f"old{run}.db"
        with sqlite3.connect(path) as db:
            db.execute(OLD_SCHEMA)
        start = time.time() + 0.2
        with context.Pool(3) as pool:
            errors = pool.starmap(_open, [(str(path), start)] * 3)
        assert errors == ["", "", ""], errors
        with sqlite3.connect(path) as db:
            columns = [row[1] for row in db.execute("PRAGMA table_info(blocks)")]
        assert columns[-4:] == ["boot", "leftover", "history", "unblocking"]


def test_a_read_only_store_makes_nothing_and_writes_nothing(tmp_path: Path) -> None:
    """What `status` and `blocked` open: a missing store is an error, not a new empty one."""
    missing = tmp_path / "state" / "portwarden.db"
    with pytest.raises(StoreError, match=f"^{missing}: unable to open database file$"):
        Store(missing, read_only=True)
    assert not missing.parent.exists()
    Store(missing).close()
    store = Store(missing, read_only=True)
    assert store.active() == [] and store.snapshot("status") is None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.save_snapshot("status", 0.0, {})


def test_a_read_only_store_of_an_old_version_is_brought_up_to_date(tmp_path: Path) -> None:
    """Or the current queries could not read it (they name the new columns)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
    assert Store(path, read_only=True).leftovers() == []


def test_an_action_kind_is_found_in_active_and_ended_blocks_only_as_a_kind(
    tmp_path: Path,
) -> None:
    """has_action looks for the kind's text first: a KILL_ROUTE that runs nft is no nft
    action."""
    store = Store(tmp_path / "store.db")
    route = ("/usr/sbin/nft", "add", "element", "inet", "f", "s", "{", ADDRESS, "}")
    record = store.add_block(
        ADDRESS,
        "tcp",
        11,
        "stcp",
        "x",
        ADDRESS,
        1.0,
        None,
        (Action("route", (), "done", route),),
        "",
    )
    assert record is not None and not store.has_action("nft")
    store.end_block(record.id, 2.0, "command")
    nft = (Action("nft", (), "done", ("portwarden",)),)
    record = store.add_block("198.18.0.12", "tcp", 11, "stcp", "x", "x", 3.0, None, nft, "")
    assert record is not None and store.has_action("nft") and store.has_action("route")
    store.end_block(record.id, 4.0, "command")
    assert store.has_action("nft") and not store.has_action("hosts.deny")
    store.close()
