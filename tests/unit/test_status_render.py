"""`portwarden status` for people: times as times, and a daemon that does not answer said first."""

from portwarden.status import render

BLOCKS = {"active": 0, "latest": []}


def test_the_last_audit_run_is_a_time_or_never() -> None:
    """It was shown as epoch seconds (0 before the first audit)."""
    counters = {"probes": 3, "audit_last_run": None}
    text = render({"running": True, "answering": True, "pid": 7, "started": "S", "config": "C",
                   "counters": counters, "blocks": BLOCKS})  # fmt: skip
    assert "  probes          3\n  audit_last_run  never\n" in text


def test_a_daemon_that_does_not_answer_is_said_first() -> None:
    saved = {"running": True, "answering": False, "pid": 7, "saved": "2026-11-24T12:09:42Z",
             "blocks": BLOCKS}  # fmt: skip
    assert render(saved).startswith(
        "portwarden: daemon pid 7 not answering; last saved status (2026-11-24T12:09:42Z):\n"
    )
    assert render({**saved, "saved": None}).startswith(
        "portwarden: daemon pid 7 not answering; last saved status: none yet\n"
    )
