"""`portwarden status` for people: times as times, and a daemon that does not answer said first;
`portwarden blocked`: each block's state."""

import time
from pathlib import Path

from portwarden import status
from portwarden.status import render
from portwarden.store.db import Action, Store

BLOCKS = {"active": 0, "latest": []}


def test_the_last_audit_run_is_a_time_or_never() -> None:
    """It was shown as epoch seconds (0 before the first audit)."""
    counters = {"probes": 3, "audit_last_run": None}
    text = render(
        {
            "running": True,
            "answering": True,
            "pid": 7,
            "started": "S",
            "config": "C",
            "counters": counters,
            "blocks": BLOCKS,
        }
    )
    assert "  probes          3\n  audit_last_run  never\n" in text


def test_no_audit_yet_says_whether_one_is_coming() -> None:
    shown = {
        "running": True,
        "answering": True,
        "pid": 7,
        "started": "S",
        "config": "C",
        "blocks": BLOCKS,
    }
    assert "\nLast audit: none yet\n" in render({**shown, "audit_interval_s": 300.0})
    assert "\nLast audit: none (the periodic audit is off: AUDIT_INTERVAL=0)\n" in render(
        {**shown, "audit_interval_s": 0.0}
    )


def test_a_daemon_that_does_not_answer_is_said_first() -> None:
    saved = {
        "running": True,
        "answering": False,
        "pid": 7,
        "saved": "2026-11-24T12:09:42Z",
        "blocks": BLOCKS,
    }
    assert render(saved).startswith(
        "portwarden: daemon pid 7 not answering; last saved status (2026-11-24T12:09:42Z):\n"
    )
    assert render({**saved, "saved": None}).startswith(
        "portwarden: daemon pid 7 not answering; last saved status: none yet\n"
    )


def test_a_block_whose_unblock_was_interrupted_is_shown_so(tmp_path: Path) -> None:
    """Marked as being unblocked, then killed before it ended: not `active`, in the table and
    in --json."""
    store = Store(tmp_path / "portwarden.db")
    now = time.time()
    for address in ("198.18.0.11", "198.18.0.12"):
        store.add_block(
            address,
            "tcp",
            11,
            "stcp",
            "x",
            address,
            now,
            None,
            (Action("nft", (), "done"),),
            "boot",
        )
    (first, _) = store.active()
    store.start_unblocking([first.id], "command")
    listed = status.blocked_listing(store, now)
    assert [(r.address, state) for r, state in listed] == [
        ("198.18.0.11", "unblocking"),
        ("198.18.0.12", "active"),
    ]
    assert [b["state"] for b in status.blocked_json(listed, now)] == ["unblocking", "active"]
    assert "unblocking" in status.render_blocked(listed).splitlines()[1]
