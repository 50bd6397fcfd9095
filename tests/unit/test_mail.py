"""Mail through a real SMTP server (aiosmtpd on loopback): STARTTLS with the relay's
certificate checked, AUTH with the password file's first line; and the SMTP keys that must go
together, checked when the configuration is loaded."""

import dataclasses
import email
import email.policy
import ipaddress
import logging
import socket
import sqlite3
import time
import types
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.alert import mail
from portwarden.alert.mail import Mailer
from portwarden.alert.mail_text import body, subject, subject_template
from portwarden.alert.mailbudget import MailBudget
from portwarden.config import ConfigError, Settings, load_settings
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Probe
from portwarden.net.addresses import Proto
from portwarden.text import counted
from tests.lab.smtp import GreetingRelay, SilentRelay, StartTlsCutRelay, relay
from tests.lab.tls import RelayCertificate, make_relay_certificate
from tests.unit.config_error import load_error
from tests.unit.probes import syn_probe

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def settings(tmp_path: Path, text: str) -> Settings:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nMAIL_TO="admin@example.org"\n{text}'
    )
    return load_settings(conf)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> RelayCertificate:
    return make_relay_certificate(tmp_path_factory.mktemp("tls"), LOOPBACK)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def tls_relay(certificate: RelayCertificate, inbox: Path) -> Iterator[int]:
    """A relay that requires STARTTLS, then AUTH as portwarden / 'pass word'."""
    port = free_port()
    controller = relay(
        LOOPBACK, port, inbox, (certificate.cert, certificate.key), ("portwarden", "pass word")
    )
    yield port
    controller.stop()


def mail_once(s: Settings) -> Mailer:
    mailer = Mailer(s)
    mailer.start()
    mailer.submit("a subject", "a body\n")
    mailer.stop()
    return mailer


def secret(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "smtp.secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_starttls_with_a_private_ca_and_auth_with_the_first_line(
    tmp_path: Path, certificate: RelayCertificate, tls_relay: int, inbox: Path
) -> None:
    # Only the first line is the password: the relay refuses "pass word\nold password".
    password = secret(tmp_path, "pass word\nold password\n")
    mailer = mail_once(
        settings(
            tmp_path,
            (
                f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{tls_relay}"\nSMTP_STARTTLS="1"\n'
                f'SMTP_USER="portwarden"\nSMTP_PASSWORD_FILE="{password}"\n'
                f'SMTP_CA_FILE="{certificate.ca}"\n'
            ),
        )
    )
    assert (mailer.sent, mailer.failed) == (1, 0)
    (saved,) = inbox.glob("*.eml")
    assert email.message_from_bytes(saved.read_bytes())["Subject"] == "a subject"
    assert saved.with_suffix(".login").read_text() == "portwarden"


def test_the_relay_certificate_is_verified(
    tmp_path: Path, tls_relay: int, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without SMTP_CA_FILE the system's CAs are used, and they do not know the lab's CA: the
    mail is refused before the password is sent."""
    password = secret(tmp_path, "pass word\n")
    with caplog.at_level(logging.ERROR, logger="portwarden"):
        mailer = mail_once(
            settings(
                tmp_path,
                (
                    f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{tls_relay}"\nSMTP_STARTTLS="1"\n'
                    f'SMTP_USER="portwarden"\nSMTP_PASSWORD_FILE="{password}"\n'
                ),
            )
        )
    assert (mailer.sent, mailer.failed) == (0, 1)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert list(inbox.iterdir()) == []


def test_a_login_needs_a_readable_password_file_and_a_safe_channel(tmp_path: Path) -> None:
    relay_lines = 'SMTP_RELAY="198.18.0.20"\nSMTP_STARTTLS="1"\n'
    with pytest.raises(ConfigError, match=r':6: SMTP_USER="pw": a login needs SMTP_PASSWORD'):
        settings(tmp_path, relay_lines + 'SMTP_USER="pw"\n')
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, relay_lines + f'SMTP_USER="pw"\nSMTP_PASSWORD_FILE="{missing}"\n')
    assert str(error.value).endswith(
        f'SMTP_PASSWORD_FILE="{missing}": cannot read {missing}: No such file or directory'
    )
    with pytest.raises(ConfigError, match="not a regular file but a directory"):
        settings(tmp_path, relay_lines + f'SMTP_USER="pw"\nSMTP_PASSWORD_FILE="{tmp_path}"\n')
    # The password must not cross the network in clear text; loopback is fine.
    password = secret(tmp_path, "pass word\n")
    login = f'SMTP_USER="pw"\nSMTP_PASSWORD_FILE="{password}"\n'
    with pytest.raises(ConfigError, match='clear text to 198.18.0.20: set SMTP_STARTTLS="1"'):
        settings(tmp_path, 'SMTP_RELAY="198.18.0.20"\n' + login)
    for local in ("localhost", "127.0.0.1", "::1"):
        assert settings(tmp_path, f'SMTP_RELAY="{local}"\n' + login).warnings == ()
    assert settings(tmp_path, relay_lines + login).warnings == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "the password (its first line) is empty"),
        ("\nsecond\n", "the password (its first line) is empty"),
        ("p\u00e4ss\n", "the password has a non-ASCII character"),
    ],
)
def test_an_empty_or_non_ascii_password_is_refused_at_load(
    tmp_path: Path, text: str, why: str
) -> None:
    """smtplib sends AUTH as ASCII: a password it cannot send failed every mail."""
    password = secret(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        settings(
            tmp_path, f'SMTP_RELAY="localhost"\nSMTP_USER="pw"\nSMTP_PASSWORD_FILE="{password}"\n'
        )
    assert f'SMTP_PASSWORD_FILE="{password}": {password}: {why}' in str(error.value)
    assert "\n" not in str(error.value)


def test_a_password_file_others_can_read_is_a_warning(tmp_path: Path) -> None:
    password = secret(tmp_path, "pass word\n", 0o644)
    found = settings(
        tmp_path, f'SMTP_RELAY="localhost"\nSMTP_USER="pw"\nSMTP_PASSWORD_FILE="{password}"\n'
    )
    assert found.warnings == (
        f"{tmp_path}/portwarden.conf:6: SMTP_PASSWORD_FILE {password} can be read by others "
        "(mode 644): chmod 600 it",
    )


def test_the_ca_file_must_hold_a_certificate(tmp_path: Path, certificate: RelayCertificate) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=f'SMTP_CA_FILE="{junk}": {junk} holds no PEM CA'):
        settings(tmp_path, f'SMTP_STARTTLS="1"\nSMTP_CA_FILE="{junk}"\n')
    assert (
        settings(tmp_path, f'SMTP_STARTTLS="1"\nSMTP_CA_FILE="{certificate.ca}"\n').warnings == ()
    )


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plain_relay(inbox: Path) -> Iterator[int]:
    port = free_port()
    controller = relay(LOOPBACK, port, inbox)
    yield port
    controller.stop()


def subjects(inbox: Path) -> list[str]:
    return [
        email.message_from_bytes(p.read_bytes())["Subject"] for p in sorted(inbox.glob("*.eml"))
    ]


def test_mail_rate_limit_says_so_at_once_summarises_later_and_keeps_the_cap(
    tmp_path: Path, plain_relay: int, inbox: Path
) -> None:
    clock = Clock()
    holds: list[float] = []
    s = settings(
        tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\nMAIL_PER_HOUR="2"\n'
    )
    mailer = Mailer(s, holds.append, clock)

    def at(offset: float, job: tuple[str, str] | None) -> None:
        clock.now = 1000.0 + offset
        mailer.work(job)

    at(0, ("report 0", "text\n"))
    at(100, ("report 1", "text\n"))
    at(200, ("report 2", "text\n"))  # over the cap: held, and said at once
    assert subjects(inbox)[-1] == "portwarden: mail rate limit reached"
    (reopens,) = holds
    assert abs(reopens - (time.time() + 3400)) < 5  # when report 0 leaves the hour
    at(300, ("report 3", "text\n"))  # held; no second notice
    assert mailer.budget.reopens_at(clock.now, 2) == clock.now + 3300
    # The hour has room for one mail: the summary takes it, so report 4 is held, not sent.
    at(3600, ("report 4", "text\n"))
    assert len(holds) == 1  # a new hold began, within the hour of the notice: not said again
    at(3700, None)  # report 1 leaves the hour: the summary of report 4
    assert subjects(inbox) == [
        "report 0",
        "report 1",
        "portwarden: mail rate limit reached",
        "portwarden: 2 reports were not mailed (MAIL_PER_HOUR)",
        "portwarden: 1 report was not mailed (MAIL_PER_HOUR)",
    ]
    assert (mailer.sent, mailer.withheld, mailer.failed) == (5, 3, 0)
    notice, summary = (texts(inbox)[i] for i in (2, 3))
    assert max(len(line) for line in notice.splitlines()) <= 72
    assert summary.splitlines()[-2:] == ["  report 2", "  report 3"]


def test_the_list_of_held_reports_names_the_cap_the_hold_began_under(
    tmp_path: Path, plain_relay: int, inbox: Path
) -> None:
    """A reload that changes MAIL_PER_HOUR during a hold: the list says which cap held the
    reports back (it said the new one, which held none)."""
    clock = Clock()
    s = settings(
        tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\nMAIL_PER_HOUR="2"\n'
    )
    mailer = Mailer(s, clock=clock)
    for n in range(3):  # the third is held
        mailer.work((f"report {n}", "text\n"))
    mailer.reconfigure(dataclasses.replace(s, mail_per_hour=5))
    clock.now += 1
    mailer.work(None)  # the higher cap has room: the list goes
    assert subjects(inbox)[-1] == "portwarden: 1 report was not mailed (MAIL_PER_HOUR)"
    assert "by MAIL_PER_HOUR=2." in " ".join(texts(inbox)[-1].split())


def decoded_text(message: Message) -> str:
    """The body of a one-part mail, its transfer encoding undone, with Unix line ends."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes), f"not a one-part mail: {message['Content-Type']}"
    return payload.decode().replace("\r\n", "\n")


def texts(inbox: Path) -> list[str]:
    return [
        decoded_text(email.message_from_bytes(p.read_bytes())) for p in sorted(inbox.glob("*.eml"))
    ]


def scan(src: str, seen_at: float) -> Verdict:
    probe = syn_probe(src=src, seen_at=seen_at)
    return Verdict(
        "scan-summary", probe, True, 1, 1, 0.0, first_probe=probe, types=("TCP SYN/Normal scan",)
    )


def test_the_summary_of_held_reports_lists_them_up_to_a_limit(
    tmp_path: Path, plain_relay: int, inbox: Path
) -> None:
    clock = Clock()
    s = settings(
        tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\nMAIL_PER_HOUR="1"\n'
    )
    mailer = Mailer(s, clock=clock)
    mailer.work(("report 0", "text\n"))
    for n in range(limits.MAIL_HELD_LISTED_MAX + 5):
        mailer.work((scan(f"198.18.1.{n}", 1.7e9 + n), "blocked via nft until forever"))
    clock.now += limits.MAIL_PER_HOUR_WINDOW_S
    mailer.work(None)
    listed = texts(inbox)[-1].splitlines()
    for line, n in zip(listed[-3:-1], (18, 19), strict=True):
        assert line.endswith(
            f"  198.18.1.{n}  TCP  TCP SYN/Normal scan  (blocked via nft until forever)"
        ), line
    assert listed[-1] == "  ... and 5 more"
    assert sum("198.18.1." in line for line in listed) == limits.MAIL_HELD_LISTED_MAX


def test_a_recipient_the_relay_refuses_is_said_and_counted(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, refuse=frozenset({"gone@example.org"}))
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nSMTP_RELAY="{LOOPBACK}"\n'
        f'SMTP_PORT="{port}"\nMAIL_TO="a@example.org, gone@example.org, '
        'b@example.org"\n'
    )
    s = load_settings(conf)
    with caplog.at_level(logging.ERROR, logger="portwarden"):
        mailer = mail_once(s)
    controller.stop()
    assert (inbox / "0001.rcpt").read_text().split() == ["a@example.org", "b@example.org"]
    assert (mailer.sent, mailer.failed) == (1, 1)
    assert caplog.messages == [
        f"mail 'a subject' via {LOOPBACK} port {port}: the relay refused gone@example.org "
        "(550 5.1.1 <gone@example.org>: Recipient address rejected); sent to the others"
    ]


def test_name_lookups_stay_within_their_limits(
    tmp_path: Path, plain_relay: int, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dead name servers: the source's reverse lookup waits RESOLVE_HOST_TIMEOUT_S at most,
    the relay's name no longer than the delivery's deadline (SMTP_TIMEOUT x 3)."""

    def dead_name_server(*args: object, **kwargs: object) -> None:
        time.sleep(60)  # far past the bounds below, which leave room for a loaded machine
        raise socket.herror("no answer")

    monkeypatch.setattr(socket, "gethostbyaddr", dead_name_server)
    s = settings(
        tmp_path,
        f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\n'
        'RESOLVE_HOST="1"\nMAIL_ON_TCP_SCAN="1"\n',
    )
    mailer = Mailer(s)
    started = time.monotonic()
    mailer.work((scan("198.18.0.11", 1.7e9), "not blocked"))
    assert time.monotonic() - started < limits.RESOLVE_HOST_TIMEOUT_S + 4
    assert "Source:          198.18.0.11\n" in texts(inbox)[0]
    monkeypatch.setattr(socket, "getaddrinfo", dead_name_server)
    mailer = Mailer(settings(tmp_path, 'SMTP_RELAY="relay.example"\nSMTP_TIMEOUT="0.2"\n'))
    started = time.monotonic()
    mailer.work(("a subject", "a body\n"))
    assert time.monotonic() - started < 5  # 3 x SMTP_TIMEOUT
    assert (mailer.sent, mailer.failed) == (0, 0)  # the relay out of reach: tried again later


def test_the_os_probe_mail_names_the_host_and_both_protocols() -> None:
    probe = Probe(
        ipaddress.ip_address("198.18.0.11"),
        ipaddress.ip_address("198.18.0.1"),
        Proto.UDP,
        40000,
        33000,
        "sudp",
        "",
        "",
        seen_at=1.7e9,
        os_tool="nmap",
    )
    verdict = Verdict(
        "os-summary",
        probe,
        True,
        2,
        2,
        0.0,
        patterns=("SYN/SEQ1", "udp/U1"),
        first_probe=probe,
        types=("nmap",),
        modes=("sudp", "stcp"),
    )
    lines = body(verdict, None, "not blocked", "target.example").splitlines()
    assert lines[0] == "Target host:     target.example"
    assert "Protocol:        TCP+UDP" in lines
    assert "Mode:            stcp+sudp" in lines  # the modes agree with the protocols
    assert "Flag patterns:   SYN/SEQ1 udp/U1" in lines


def test_os_probe_mails_have_their_own_default_subject_and_mail_subject_rules_both() -> None:
    probe = syn_probe()
    os_run = Verdict(
        "os-summary",
        probe,
        True,
        2,
        2,
        0.0,
        patterns=("SYN/SEQ1",),
        first_probe=probe,
        types=("nmap", "queso"),
    )
    scan = Verdict("scan-summary", probe, True, 2, 2, 0.0, types=("TCP SYN/Normal scan",))
    assert subject(subject_template(None, os_run), os_run) == (
        "portwarden: OS fingerprinting probe (nmap, queso) from 198.18.0.11 to 198.18.0.1"
    )
    assert subject(subject_template(None, scan), scan) == (
        "portwarden: TCP scan from 198.18.0.11 to 198.18.0.1"
    )
    for verdict in (os_run, scan):
        assert subject(subject_template("[pw] %s", verdict), verdict) == "[pw] 198.18.0.11"


@given(st.lists(st.floats(0, 3 * limits.MAIL_PER_HOUR_WINDOW_S), max_size=60), st.integers(1, 5))
def test_no_hour_has_more_than_the_cap_and_one_notice(arrivals: list[float], per_hour: int) -> None:
    """The mail thread's use of the budget, over arrivals at any times (and the wake-ups it
    asks for): in any sliding hour, at most `per_hour` mails and one notice."""
    budget = MailBudget()
    sent: list[float] = []
    notices: list[float] = []
    events = sorted(arrivals)
    now = 0.0
    while events or budget.held:
        wake = budget.reopens_at(now, per_hour)
        if events and (wake is None or events[0] <= wake):
            now, report = events.pop(0), True
        else:
            now, report = wake or now, False
        if budget.release(now, per_hour):
            sent.append(now)
        if report and budget.admit(now, per_hour):
            sent.append(now)
        elif report and budget.held == 1 and budget.notice_allowed(now):
            notices.append(now)
    for start in sent + notices:
        assert sum(start <= t < start + limits.MAIL_PER_HOUR_WINDOW_S for t in sent) <= per_hour
        assert sum(start <= t < start + limits.MAIL_PER_HOUR_WINDOW_S for t in notices) <= 1
    assert budget.held == 0  # every held report was summarised


def test_a_relay_that_trickles_bytes_is_cut_at_the_delivery_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SMTP_TIMEOUT (0.5 s) bounds each read; a byte every 0.05 s never trips it (0.45 s to
    spare on a loaded machine). The whole delivery may take 3 x SMTP_TIMEOUT."""
    silent = SilentRelay(LOOPBACK, 0, trickle=True, every_s=0.05).start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer = Mailer(
            settings(
                tmp_path,
                f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{silent.port}"\nSMTP_TIMEOUT="0.5"\n',
            )
        )
        mailer.start()
        mailer.submit("a subject", "a body\n")
        mailer.stop(wait_s=5)
    silent.close()
    assert (mailer.sent, mailer.failed) == (0, 1)
    assert "for now (not delivered within 1.5 s (SMTP_TIMEOUT x 3))" in caplog.text
    assert time.monotonic() - started < 4  # not the stop's 5 s


def test_mail_left_at_stop_is_counted_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentRelay(LOOPBACK, 0).start()
    mailer = Mailer(
        settings(
            tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{silent.port}"\nSMTP_TIMEOUT="60"\n'
        )
    )
    mailer.start()
    for n in range(3):
        mailer.submit(f"report {n}", "text\n")
    with caplog.at_level(logging.ERROR, logger="portwarden"):
        mailer.stop(wait_s=0.5)
    said = list(caplog.messages)  # not the warning of the try the close below cuts
    silent.close()
    assert (mailer.sent, mailer.failed) == (0, 3)
    assert said == [
        f"3 mails not sent by the stop (relay {LOOPBACK} port {silent.port}, 0.5 s): 'report 0', "
        "'report 1', 'report 2'; they are in the store and mailed after a restart (if within "
        "SMTP_GIVE_UP_AFTER=86400 s)"
    ]


@pytest.mark.parametrize(
    ("body", "plain"),
    [("Types:  " + "TCP SYN/Normal scan, " * 6 + "\n", True), ("Host: caf\u00e9\n", False)],
)
def test_a_report_is_sent_as_plain_7bit_text_when_it_can_be(
    tmp_path: Path, plain_relay: int, inbox: Path, body: str, plain: bool
) -> None:
    """Long ASCII lines stay as written (quoted-printable would break them at 76 with '=')."""
    mailer = Mailer(settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\n'))
    mailer.start()
    mailer.submit("a subject", body)
    mailer.stop()
    (saved,) = inbox.glob("*.eml")
    message = email.message_from_bytes(saved.read_bytes())
    assert (message["Content-Transfer-Encoding"] == "7bit") is plain
    assert decoded_text(message) == body
    if plain:
        assert body.encode() in saved.read_bytes().replace(b"\r\n", b"\n")


def test_the_subject_keeps_the_administrators_text_and_is_encoded(
    tmp_path: Path, plain_relay: int, inbox: Path
) -> None:
    """Only the macros' values are escaped; non-ASCII text goes as RFC 2047 encoded words."""
    template = "\u00fcber a\\b %p scan from %s (100%%) " + "x" * 250
    s = settings(
        tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\nMAIL_SUBJECT="{template}"\n'
    )
    Mailer(s).work((scan("198.18.0.11", 1.7e9), "not blocked"))
    (saved,) = inbox.glob("*.eml")
    message = email.message_from_bytes(saved.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "\u00fcber a\\b TCP scan from 198.18.0.11 (100%) " + "x" * 250
    assert b"=?utf-8?" in saved.read_bytes() and saved.read_bytes().isascii()


@pytest.mark.parametrize(
    ("helo", "sent"),
    [
        ("198.18.0.1", "[198.18.0.1]"),
        ("2001:db8::1", "[IPv6:2001:db8::1]"),
        ("target.example", "target.example"),
    ],
)
def test_an_address_as_helo_is_sent_as_an_address_literal(
    tmp_path: Path, plain_relay: int, inbox: Path, helo: str, sent: str
) -> None:
    to_relay = f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{plain_relay}"\n'
    mailer = mail_once(settings(tmp_path, f'{to_relay}SMTP_HELO="{helo}"\n'))
    assert mailer.sent == 1
    assert (inbox / "0001.helo").read_text() == sent
    message = email.message_from_bytes(
        (inbox / "0001.eml").read_bytes(), policy=email.policy.default
    )
    assert message["Message-ID"].endswith(f"@{sent}>")
    assert message["Message-ID"].defects == ()


def settled(mailer: Mailer, timeout: float = 5.0) -> tuple[int, int]:
    """(sent, failed) once the one mail submitted is counted."""
    deadline = time.monotonic() + timeout
    while mailer.sent + mailer.failed == 0:
        assert time.monotonic() < deadline, "the mail was never counted"
        time.sleep(0.02)
    return mailer.sent, mailer.failed


@pytest.mark.parametrize(
    ("defer", "defer_data", "rcpts", "counted", "said", "waits"),
    [  # a relay busy at DATA; greylisting at RCPT; a relay busy until SMTP_GIVE_UP_AFTER
        (
            (),
            1,
            [["a@example.org", "b@example.org"]],
            (1, 0),
            "not delivered to a@example.org, b@example.org for now (451 4.3.0 Try again later)",
            1,
        ),
        (
            ("b@example.org",),
            0,
            [["a@example.org"], ["b@example.org"]],
            (1, 0),
            "not delivered to b@example.org for now (450 4.2.0 <b@example.org>: Recipient address "
            "rejected: Greylisted)",
            1,
        ),
        (
            (),
            10,
            [],
            (0, 1),
            "'a subject' via 127.0.0.1 port {port}: not delivered to "
            "a@example.org, b@example.org: 451 4.3.0 Try again later; giving up: it is 20 s old",
            2,
        ),
    ],
)
def test_a_temporary_refusal_is_tried_again_until_the_give_up_age(
    tmp_path: Path,
    inbox: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    defer: tuple[str, ...],
    defer_data: int,
    rcpts: list[list[str]],
    counted: tuple[int, int],
    said: str,
    waits: int,
) -> None:
    """A 4xx reply is a temporary failure: the mail is tried again every SMTP_RETRY_DELAY, to
    those it missed, off the packet path, until it is SMTP_GIVE_UP_AFTER old; counted once,
    when its last try is over. The clocks are the test's: the mail thread's and the one that
    ages reports."""
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, defer=frozenset(defer), defer_data=defer_data)
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nSMTP_RELAY="{LOOPBACK}"\n'
        f'SMTP_PORT="{port}"\nMAIL_TO="a@example.org, b@example.org"\n'
        'SMTP_RETRY_DELAY="10"\nSMTP_GIVE_UP_AFTER="15"\n'
    )
    clock = Clock()
    aged = types.SimpleNamespace(
        time=lambda: time.time() + clock.now - 1000, monotonic=time.monotonic
    )
    monkeypatch.setattr(mail, "time", aged)
    mailer = Mailer(load_settings(conf), clock=clock)
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.work(("a subject", "a body\n"))
        while mailer.sent + mailer.failed == 0:
            assert clock.now < 1100, "the mail was never counted"
            clock.now += 10
            mailer.work(None)
    controller.stop()
    assert (mailer.sent, mailer.failed) == counted
    assert [p.read_text().split() for p in sorted(inbox.glob("*.rcpt"))] == rcpts
    assert said.format(port=port) in caplog.text
    assert caplog.text.count("trying again in 10 s") == waits


REFUSED = "mail 'a subject' to admin@example.org via 127.0.0.1 port {port} failed: "
DEFERRED = "mail 'a subject' via 127.0.0.1 port {port}: not delivered to admin@example.org for now "


@pytest.mark.parametrize(
    ("greeting", "answer", "said", "retried"),
    [  # a relay that refuses service, then says 503 to all; one that refuses and hangs up;
        # one busy for now
        (
            "554 5.7.1 no SMTP service here",
            "503 5.5.1 Bad sequence of commands",
            REFUSED + "554 5.7.1 no SMTP service here",
            False,
        ),
        ("554 5.7.1 no SMTP service here", None, REFUSED + "554 5.7.1 no SMTP service here", False),
        (
            "421 4.3.2 Service not available",
            "503 5.5.1 Bad sequence of commands",
            DEFERRED + "(421 4.3.2 Service not available); trying again in 300 s",
            True,
        ),
    ],
)
def test_the_relays_greeting_is_checked(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    greeting: str,
    answer: str | None,
    said: str,
    retried: bool,
) -> None:
    """A greeting other than 220 ends the delivery, with QUIT: a 5xx is final, its text the
    reason; a 4xx turns the relay away for now (tried again later). Before, the daemon sent
    EHLO and HELO after a 554 and logged the 503 that followed, or took a relay that hung up
    after its 554 for one out of reach."""
    refusing = GreetingRelay(LOOPBACK, 0, greeting, answer).start()
    assert isinstance(refusing, GreetingRelay)
    mailer = Mailer(
        settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{refusing.port}"\n'), clock=Clock()
    )
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.work(("a subject", "a body\n"))
    refusing.close()
    assert caplog.messages == [said.format(port=refusing.port)]
    if answer is not None:
        assert [command.upper() for command in refusing.commands] == ["QUIT"]
    assert len(mailer._retries) == retried
    assert (mailer.sent, mailer.failed) == (0, int(not retried))


@pytest.mark.parametrize("cut", ["close", "handshake", "plain"])
def test_a_tls_handshake_cut_short_is_tried_again(
    tmp_path: Path, certificate: RelayCertificate, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    """A relay that answers 220 to STARTTLS and then closes (as one does while it restarts),
    cuts the handshake in the middle, or answers in clear text is out of reach for now, as a
    relay closed in the middle of a command is: tried again, and at the stop kept in the store
    for after a restart. Before, `[SSL: UNEXPECTED_EOF_WHILE_READING]` failed the mail for
    good, and the stop set the mails waiting for a retry failed."""
    cutting = StartTlsCutRelay(LOOPBACK, 0, cut).start()
    assert isinstance(cutting, StartTlsCutRelay)
    tls = f'SMTP_STARTTLS="1"\nSMTP_CA_FILE="{certificate.ca}"\n'
    mailer = Mailer(
        settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{cutting.port}"\n' + tls)
    )
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        mailer.start()
        mailer.submit("a subject", "a body\n")
        deadline = time.monotonic() + 5
        while "for now" not in caplog.text and "failed" not in caplog.text:
            assert time.monotonic() < deadline, "the mail was never tried"
            time.sleep(0.02)
        mailer.stop()
    cutting.close()
    assert "not delivered to admin@example.org for now ([SSL: " in caplog.text
    assert "trying again in 300 s" in caplog.text
    assert "kept for after a restart" in caplog.text
    assert "failed:" not in caplog.text
    with sqlite3.connect(tmp_path / "state" / "portwarden.db") as db:
        assert db.execute("SELECT subject, outcome FROM reports").fetchall() == [
            ("a subject", "retrying")
        ]


def test_a_mail_waiting_to_be_tried_again_is_tried_at_the_stop(tmp_path: Path, inbox: Path) -> None:
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, defer_data=1)
    mailer = Mailer(settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'))
    mailer.start()
    mailer.submit("a subject", "a body\n")
    deadline = time.monotonic() + 5
    while controller.handler.defer_data:  # the first try was turned away
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert (mailer.sent, mailer.failed) == (0, 0)  # waits SMTP_RETRY_DELAY (300 s)
    mailer.stop()
    controller.stop()
    assert (mailer.sent, mailer.failed) == (1, 0)
    assert len(list(inbox.glob("*.eml"))) == 1


def test_mails_waiting_to_be_tried_again_are_capped(
    tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay that defers every mail: at most limits.MAIL_RETRIES_MAX wait for their retry
    (3 here); the next is not tried again, said and counted as failed."""
    monkeypatch.setattr(limits, "MAIL_RETRIES_MAX", 3)
    port = free_port()
    controller = relay(LOOPBACK, port, inbox, defer_data=4)
    clock = Clock()
    mailer = Mailer(
        settings(tmp_path, f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{port}"\n'), clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        for n in range(4):
            mailer.work((f"report {n}", "text\n"))
    assert caplog.text.count("trying again in 300 s") == 3
    assert (
        f"'report 3' via 127.0.0.1 port {port}: not tried again until fewer mails wait (it "
        "is in the store): 3 mails wait already"
    ) in caplog.text
    clock.now += 300
    mailer.work(None)
    controller.stop()
    assert (mailer.sent, mailer.failed) == (3, 1)
    assert subjects(inbox) == ["report 0", "report 1", "report 2"]


def test_retry_delay_and_report_interval_have_a_floor(tmp_path: Path) -> None:
    """SMTP_RETRY_DELAY="0.01" wrote a thousand warnings in ten seconds; SCAN_REPORT_INTERVAL
    below SCAN_END_QUIET mailed a scan still going at every probe."""
    conf = tmp_path / "portwarden.conf"
    for text, said in [
        ('SMTP_RETRY_DELAY="0.01"', 'SMTP_RETRY_DELAY="0.01": must be at least 10 seconds'),
        (
            'SCAN_REPORT_INTERVAL="0.01"',
            'SCAN_REPORT_INTERVAL="0.01": must be at least '
            "SCAN_END_QUIET (30 s): a scan still going is reported at most that often",
        ),
        (
            'OS_PROBE_QUIET="400"',
            'OS_PROBE_QUIET="400": must be at most SCAN_REPORT_INTERVAL (300 s): a run of OS '
            "probing still going is reported at most that often",
        ),
        (
            'SCAN_END_QUIET="600"',
            'SCAN_END_QUIET="600": must be at most SCAN_REPORT_INTERVAL '
            "(300 s): a scan still going is reported at most that often",
        ),
    ]:
        conf.write_text(f'STATE_DIR="{tmp_path}"\n{text}\n')
        shown = load_error(conf)
        assert shown == f"{conf}:2: {said}"
    conf.write_text(
        f'STATE_DIR="{tmp_path}"\nSCAN_END_QUIET="2"\nSCAN_REPORT_INTERVAL="2"\n'
        'SMTP_RETRY_DELAY="600"\nSMTP_GIVE_UP_AFTER="60"\n'
    )
    assert load_settings(conf).warnings == (
        f"{conf}:5: SMTP_GIVE_UP_AFTER (60 s) is shorter than SMTP_RETRY_DELAY (600 s): a mail "
        "turned away is tried again once, SMTP_RETRY_DELAY later, then given up",
    )


def test_subjects_in_log_lines_are_escaped_once_between_single_quotes() -> None:
    """A subject from the log's own text (non-ASCII, a quote) is escaped once by one_line and
    quoted with ', as the `mail '<subject>' ... failed` lines do: not repr()'s double escape
    (\\\\u2013) nor its switch to double quotes."""
    subjects = ["scan – from 198.18.0.11", "it's\nhere"]
    assert mail.named(subjects) == "'scan \\u2013 from 198.18.0.11', 'it's\\nhere'"
    assert mail.quoted(subjects[0]) == "'scan \\u2013 from 198.18.0.11'"


@pytest.mark.parametrize(("count", "said"), [(0, "0 reports"), (1, "1 report"), (2, "2 reports")])
def test_counts_are_said_in_the_right_number(count: int, said: str) -> None:
    assert counted(count, "report") == said
    assert counted(count, "summary", "summaries").split()[1] == (
        "summary" if count == 1 else "summaries"
    )
