"""Reports kept in the store: a dead relay, a full queue, MAIL_PER_HOUR or a stop never lose
one; what was not mailed is mailed after a restart (a real aiosmtpd relay on loopback)."""

import email
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.alert.mail import Mailer
from portwarden.config import Settings, load_settings
from portwarden.store.db import Store
from tests.lab.smtp import relay
from tests.unit.test_mail import (
    LOOPBACK,
    Clock,
    free_port,
    inbox,
    scan,
    settings,
    subjects,
    texts,
)

__all__ = ["inbox"]  # the fixture


def outcomes(tmp_path: Path) -> list[tuple[str, str, bool]]:
    """(subject, outcome, mailed) of every report in the store, in order."""
    with sqlite3.connect(tmp_path / "state" / "portwarden.db") as db:
        rows = db.execute("SELECT subject, outcome, mailed FROM reports ORDER BY id").fetchall()
    return [(subject, outcome, mailed is not None) for subject, outcome, mailed in rows]


def wait_until(ready: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(ready) or not ready():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_refused_connection_is_tried_again_and_delivered_once_the_relay_is_back(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens: the connection is refused
    clock = Clock()
    mailer = Mailer(
        settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'), clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.work(("report 1", "text\n"))
    assert (
        f"mail 'report 1' via 127.0.0.1 port {port}: not delivered to admin@example.org for now ("
        in caplog.text
        and "trying again in 300 s" in caplog.text
    )
    assert outcomes(tmp_path) == [("report 1", "retrying", False)]
    controller = relay(LOOPBACK, port, inbox)
    clock.now += 300
    mailer.work(None)
    controller.stop()
    assert subjects(inbox) == ["report 1"]
    assert (mailer.sent, mailer.failed) == (1, 0)
    assert outcomes(tmp_path) == [("report 1", "sent", True)]
    message = email.message_from_bytes(next(inbox.glob("*.eml")).read_bytes())
    assert message["Auto-Submitted"] == "auto-generated"


def test_a_mail_that_goes_through_after_failed_tries_says_so_once(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After `not delivered ... for now` warnings, one line when it is delivered, with the
    tries counted across a restart; none for a mail delivered at its first try."""
    port = free_port()  # nothing listens: the connection is refused
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'
    clock = Clock()
    mailer = Mailer(settings(tmp_path, conf), clock=clock)  # no thread: the test turns it
    mailer.work(("report 1", "text\n"))
    clock.now += 300
    mailer.work(None)  # tried again: turned away again; it stays in the store
    controller = relay(LOOPBACK, port, inbox)
    again = Mailer(settings(tmp_path, conf))
    with caplog.at_level(logging.INFO, logger="portwarden"):
        again.start()
        wait_until(lambda: again.sent == 1)
        again.submit("report 2", "text\n")
        wait_until(lambda: again.sent == 2)
        again.stop()
    controller.stop()
    assert subjects(inbox) == ["report 1", "report 2"]
    assert [m for m in caplog.messages if ": delivered to" in m] == [
        f"mail 'report 1' via {LOOPBACK} port {port}: delivered to admin@example.org after 3 tries"
    ]


def test_reports_not_sent_by_the_stop_are_named_and_mailed_after_a_restart(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'
    mailer = Mailer(settings(tmp_path, conf))
    mailer.start()
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.submit("report 1", "text\n")
        mailer.submit("report 2", "text\n")
        mailer.stop(wait_s=2)
    assert "2 mails not sent by the stop" in caplog.text
    assert "'report 1', 'report 2'; they are in the store and mailed after a restart" in caplog.text
    assert (mailer.sent, mailer.failed) == (0, 2)
    controller = relay(LOOPBACK, port, inbox)
    again = Mailer(settings(tmp_path, conf))
    again.start()
    wait_until(lambda: again.sent == 2)
    again.stop()
    controller.stop()
    assert sorted(subjects(inbox)) == ["report 1", "report 2"]
    assert outcomes(tmp_path) == [("report 1", "sent", True), ("report 2", "sent", True)]


HELD_AT_STOP = (
    "{held} reports held back by MAIL_PER_HOUR={cap} are kept in the store, still held: one "
    "mail will list them after a restart, once MAIL_PER_HOUR has room (they are in the JSON "
    "event log)"
)
SCANNED = "  TCP  TCP SYN/Normal scan  (blocked via nft until forever)"


def assert_listed(text: str, sources: tuple[int, ...]) -> None:
    """The list mail's last lines are the held reports of these sources, each as the list
    shows a scan: first seen, source, protocol, type (action)."""
    listed = text.splitlines()[-len(sources) :]
    for line, n in zip(listed, sources, strict=True):
        assert line.endswith(f"  198.18.1.{n}{SCANNED}"), listed


def held_at_start(held: int, cap: int) -> str:
    return (
        f"{held} reports held back by MAIL_PER_HOUR before the last stop are still held: "
        f"one mail will list them (MAIL_PER_HOUR={cap}) at "
    )


def test_held_reports_stay_held_across_a_restart_and_are_listed_in_one_mail(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart during a MAIL_PER_HOUR hold: its reports stay held (they were queued at start
    and mailed one by one, or held again one by one), and the one mail that lists them lists
    them as it would have without the restart."""
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'
    mailer = Mailer(settings(tmp_path, conf + 'MAIL_PER_HOUR="1"\n'))
    mailer.start()
    for n in range(3):
        mailer.submit(scan(f"198.18.1.{n}", 1.7e9 + n), "blocked via nft until forever")
    wait_until(lambda: mailer.withheld == 2)
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.stop()
    assert caplog.messages == [HELD_AT_STOP.format(held=2, cap=1)]
    caplog.clear()
    again = Mailer(settings(tmp_path, conf))  # the cap raised: the list goes at once
    with caplog.at_level(logging.INFO, logger="portwarden"):
        again.start()
        wait_until(lambda: again.sent == 1)
        again.stop()
    controller.stop()
    assert caplog.messages[0].startswith(held_at_start(2, 20))
    assert subjects(inbox)[1:] == [
        "portwarden: mail rate limit reached",
        "portwarden: 2 reports were not mailed (MAIL_PER_HOUR)",
    ]
    assert_listed(texts(inbox)[-1], (1, 2))
    # report 0, report 1, the notice, report 2, the list
    assert [o[1] for o in outcomes(tmp_path)] == ["sent", "listed", "sent", "listed", "sent"]


def test_a_hold_goes_on_across_a_restart_and_the_stop_names_every_report_not_sent(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap unchanged: the hold goes on after the restart, with the new held reports; the
    reports waiting behind it (taken from the store or not: limits.MAIL_RESUMED_MAX is 2 here)
    are named by the stop. With the cap raised, one mail lists every held report, then those
    waiting are mailed."""
    monkeypatch.setattr(limits, "MAIL_RESUMED_MAX", 2)
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'
    capped = conf + 'MAIL_PER_HOUR="1"\n'
    mailer = Mailer(settings(tmp_path, capped))
    mailer.start()
    for n in range(3):
        mailer.submit(scan(f"198.18.1.{n}", 1.7e9 + n), "blocked via nft until forever")
    wait_until(lambda: mailer.withheld == 2)
    mailer.stop()
    store = Store(tmp_path / "state" / "portwarden.db")  # reports not mailed before a stop
    for n in range(3):
        store.add_report(time.time(), "mail", f"waiting {n}", "text\n", "queued", keep=100)
    store.close()
    again = Mailer(settings(tmp_path, capped))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="portwarden"):
        again.start()
        again.submit(scan("198.18.1.3", 1.7e9 + 3), "blocked via nft until forever")
        wait_until(lambda: again.withheld == 1)
        again.stop()
    assert caplog.messages[0].startswith(held_at_start(2, 1))
    assert caplog.messages[-2:] == [
        f"3 mails not sent by the stop (relay {LOOPBACK} port {port}, 15 s): 'waiting 0', "
        "'waiting 1', 'waiting 2'; they are in the store and mailed after a restart (if within "
        "SMTP_GIVE_UP_AFTER=86400 s)",
        HELD_AT_STOP.format(held=3, cap=1),
    ]
    assert (again.sent, again.failed) == (0, 3)
    assert [o[1] for o in outcomes(tmp_path)] == [
        "sent",
        "held",
        "sent",
        "held",
        *["queued"] * 3,
        "held",
    ]
    third = Mailer(settings(tmp_path, conf))
    third.start()
    wait_until(lambda: third.sent == 4)
    third.stop()
    controller.stop()
    assert subjects(inbox)[2:] == [
        "portwarden: 3 reports were not mailed (MAIL_PER_HOUR)",
        "waiting 0",
        "waiting 1",
        "waiting 2",
    ]
    assert_listed(texts(inbox)[2], (1, 2, 3))


def test_a_full_queue_is_said_once_per_episode_and_its_reports_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAIL_QUEUE_MAX", 2)
    mailer = Mailer(settings(tmp_path, ""))  # not started: nothing takes from the queue
    with caplog.at_level(logging.INFO, logger="portwarden"):
        for n in range(5):
            mailer.submit(f"report {n}", "text\n")
        mailer.jobs.get_nowait()
        mailer.submit("report 5", "text\n")
    assert caplog.messages == [
        "mail queue (2 mails) failing: full: report 'report 2' was not mailed (it is in the "
        "store and the JSON event log); reports are dropped and counted until it works",
        "mail queue (2 mails) works again (3 reports dropped since it failed, 3 so far)",
    ]
    assert mailer.failed == 3
    assert outcomes(tmp_path) == [(f"report {n}", "queued", False) for n in (2, 3, 4)]


def test_the_store_keeps_the_latest_reports_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "portwarden.db")
    for n in range(5):
        store.add_report(1e9 + n, "mail", f"report {n}", "", "queued", keep=3)
    rows = store.unmailed_reports(("queued",), 0, 10)
    assert [row[3] for row in rows] == ["report 2", "report 3", "report 4"]
    store.forget_reports(1e9 + 4)
    assert [row[3] for row in store.unmailed_reports(("queued",), 0, 10)] == ["report 4"]
    assert store.unmailed_reports(("queued",), 1e9 + 4, 10) == []  # older than the give-up age


@pytest.mark.parametrize(("subject", "unknown"), [("%p scan %x", "%x"), ("100%", "a trailing %")])
def test_an_unknown_subject_macro_is_a_warning(tmp_path: Path, subject: str, unknown: str) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nMAIL_SUBJECT="{subject}"\n')
    assert load_settings(conf).warnings == (
        f"{conf}:2: MAIL_SUBJECT {subject!r}: {unknown} is not a macro (%p, %s, %d, %%); it is "
        "sent as written",
    )


def to_a_and_b(tmp_path: Path, port: int) -> Settings:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nSMTP_RELAY="{LOOPBACK}"\n'
        f'SMTP_PORT="{port}"\nMAIL_TO="a@example.org, b@example.org"\n'
    )
    return load_settings(conf)


def test_after_a_restart_a_mail_goes_only_to_those_that_do_not_have_it_with_the_same_id(
    tmp_path: Path, inbox: Path
) -> None:
    """b@ greylists (450 at RCPT) while a@ takes the mail; after a restart it goes to b@ only,
    under the same Message-ID (made from the report's id in the store)."""
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, defer=frozenset({"b@example.org"}))
    Mailer(to_a_and_b(tmp_path, port)).work(("report 1", "text\n"))
    assert outcomes(tmp_path) == [("report 1", "retrying", False)]
    again = Mailer(to_a_and_b(tmp_path, port))
    again.start()
    wait_until(lambda: again.sent == 1)
    again.stop()
    controller.stop()
    assert [p.read_text().split() for p in sorted(inbox.glob("*.rcpt"))] == [
        ["a@example.org"],
        ["b@example.org"],
    ]
    first, second = (
        email.message_from_bytes(p.read_bytes())["Message-ID"] for p in sorted(inbox.glob("*.eml"))
    )
    assert first == second and first.startswith("<portwarden.report-1.")
    assert outcomes(tmp_path) == [("report 1", "sent", True)]


def test_a_recipient_that_greylists_again_holds_back_no_other_mail(
    tmp_path: Path, inbox: Path
) -> None:
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, defer=frozenset({"b@example.org"}))
    clock = Clock()
    mailer = Mailer(to_a_and_b(tmp_path, port), clock=clock)
    mailer.work(("report 1", "text\n"))  # b@ greylisted: due at +300
    clock.now += 5
    controller.handler.defer_data = 1
    mailer.work(("report 2", "text\n"))  # the relay busy at DATA: due at +305
    clock.now += 300
    controller.handler.defer.add("b@example.org")  # b@ greylists report 1 once more
    mailer.work(None)
    controller.stop()
    assert subjects(inbox) == ["report 1", "report 2"]
    assert outcomes(tmp_path) == [("report 1", "retrying", False), ("report 2", "sent", True)]


def test_mail_per_hour_holds_across_a_restart(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon that restarts (a crash loop) sends no more than MAIL_PER_HOUR an hour, and no
    second notice, nor says the limit again (log, syslog, JSON): the budget starts from the
    tries and the notice recorded in the store."""
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\nMAIL_PER_HOUR="2"\n'
    holds: list[float] = []
    for start in range(2):
        mailer = Mailer(settings(tmp_path, conf), holds.append)
        mailer.start()
        for n in range(3):
            mailer.submit(f"report {start}.{n}", "text\n")
        # The second start holds back its own three (and the one held before the restart, if
        # it comes first: else it stays in the store, not held).
        wait_until(lambda m=mailer, held=1 + 2 * start: m.withheld >= held)
        mailer.stop()
    controller.stop()
    assert subjects(inbox) == ["report 0.0", "report 0.1", "portwarden: mail rate limit reached"]
    assert len(holds) == 1
    assert (
        "MAIL_PER_HOUR=2 mails were tried in the last hour (each try counts, delivered "
        "or not)." in " ".join(texts(inbox)[2].split())
    )


def test_reports_older_than_the_give_up_age_are_failed_at_start_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "state" / "portwarden.db")
    for n, outcome in enumerate(("retrying", "queued")):
        store.add_report(time.time() - 2 * 86_400, "mail", f"old {n}", "", outcome, keep=10)
    store.close()
    mailer = Mailer(settings(tmp_path, ""))
    with caplog.at_level(logging.ERROR, logger="portwarden"):
        mailer.start()
        mailer.stop()
    assert caplog.messages == [
        "2 reports not mailed before the last stop are older than SMTP_GIVE_UP_AFTER=86400 s: "
        "given up, not mailed (failed in the store): 'old 0', 'old 1'"
    ]
    assert outcomes(tmp_path) == [("old 0", "failed", False), ("old 1", "failed", False)]


def test_reports_past_the_start_batch_are_mailed_as_the_thread_has_room(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More reports were left than one start takes (limits.MAIL_RESUMED_MAX, 2 here): the rest
    are taken from the store as those are done. Those held before the stop stay held: one mail
    lists them first (there is room for it at once)."""
    monkeypatch.setattr(limits, "MAIL_RESUMED_MAX", 2)
    store = Store(tmp_path / "state" / "portwarden.db")
    for n in range(7):
        store.add_report(
            time.time() - 60 + n,
            "mail",
            f"report {n}",
            "text\n",
            "held" if n % 3 == 1 else "queued",
            keep=10,
        )
    store.close()
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    mailer = Mailer(settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'))
    with caplog.at_level(logging.INFO, logger="portwarden"):
        mailer.start()
        wait_until(lambda: mailer.sent == 6)
        mailer.stop()
    controller.stop()
    assert subjects(inbox) == [
        "portwarden: 2 reports were not mailed (MAIL_PER_HOUR)",
        *(f"report {n}" for n in (0, 2, 3, 5, 6)),
    ]
    assert texts(inbox)[0].splitlines()[-2:] == ["  report 1", "  report 4"]
    assert [o[1] for o in outcomes(tmp_path)] == [
        "listed" if n % 3 == 1 else "sent" for n in range(7)
    ] + ["sent"]
    assert (
        "2 reports not mailed before the last stop are queued again: 'report 0', "
        "'report 2'; 3 more stay in the store, queued as these are done"
    ) in caplog.messages
