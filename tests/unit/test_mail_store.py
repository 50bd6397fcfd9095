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
from portwarden.config import load_settings
from portwarden.store.db import Store
from tests.lab.smtp import relay
from tests.unit.test_mail import LOOPBACK, Clock, free_port, inbox, settings, subjects

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
    assert f"mail 'report 1' via 127.0.0.1 port {port}: not delivered to admin@example.org " \
           "for now (" in caplog.text and "trying again in 300 s" in caplog.text  # fmt: skip
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


def test_held_reports_are_kept_at_stop_and_mailed_after_a_restart(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    conf = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'
    mailer = Mailer(settings(tmp_path, conf + 'MAIL_PER_HOUR="1"\n'))
    mailer.start()
    for n in range(3):
        mailer.submit(f"report {n}", "text\n")
    wait_until(lambda: mailer.withheld == 2)
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.stop()
    assert caplog.messages == [
        "2 reports held back by MAIL_PER_HOUR=1 are kept in the store: they will be mailed "
        "after a restart (and are in the JSON event log)"
    ]
    assert subjects(inbox) == ["report 0", "portwarden: mail rate limit reached"]
    again = Mailer(settings(tmp_path, conf))
    again.start()
    wait_until(lambda: again.sent == 2)
    again.stop()
    controller.stop()
    assert subjects(inbox)[2:] == ["report 1", "report 2"]
    assert [o[1:] for o in outcomes(tmp_path)] == [("sent", True)] * 4


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
