"""Mail through a real SMTP server (aiosmtpd on loopback): STARTTLS with the relay's
certificate checked, AUTH with the password file's first line; and the SMTP keys that must go
together, checked when the configuration is loaded."""

import email
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.alert.mail import Mailer
from portwarden.config import ConfigError, Settings, load_settings
from tests.lab.smtp import relay
from tests.lab.tls import RelayCertificate, make_relay_certificate

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def settings(tmp_path: Path, text: str) -> Settings:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\nMAIL_TO="admin@example.org"\n'
                    f"{text}")  # fmt: skip
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
    controller = relay(LOOPBACK, port, inbox, (certificate.cert, certificate.key),
                       ("portwarden", "pass word"))  # fmt: skip
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
    mailer = mail_once(settings(tmp_path, (
        f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{tls_relay}"\nSMTP_STARTTLS="1"\n'
        f'SMTP_USER="portwarden"\nSMTP_PASSWORD_FILE="{password}"\n'
        f'SMTP_CA_FILE="{certificate.ca}"\n')))  # fmt: skip
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
        mailer = mail_once(settings(tmp_path, (
            f'SMTP_RELAY="{LOOPBACK}"\nSMTP_PORT="{tls_relay}"\nSMTP_STARTTLS="1"\n'
            f'SMTP_USER="portwarden"\nSMTP_PASSWORD_FILE="{password}"\n')))  # fmt: skip
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
    with pytest.raises(ConfigError, match="is not a regular file"):
        settings(tmp_path, relay_lines + f'SMTP_USER="pw"\nSMTP_PASSWORD_FILE="{tmp_path}"\n')
    # The password must not cross the network in clear text; loopback is fine.
    password = secret(tmp_path, "pass word\n")
    login = f'SMTP_USER="pw"\nSMTP_PASSWORD_FILE="{password}"\n'
    with pytest.raises(ConfigError, match='clear text to 198.18.0.20: set SMTP_STARTTLS="1"'):
        settings(tmp_path, 'SMTP_RELAY="198.18.0.20"\n' + login)
    for local in ("localhost", "127.0.0.1", "::1"):
        assert settings(tmp_path, f'SMTP_RELAY="{local}"\n' + login).warnings == ()
    assert settings(tmp_path, relay_lines + login).warnings == ()


def test_a_password_file_others_can_read_is_a_warning(tmp_path: Path) -> None:
    password = secret(tmp_path, "pass word\n", 0o644)
    found = settings(tmp_path, f'SMTP_RELAY="localhost"\nSMTP_USER="pw"\n'
                               f'SMTP_PASSWORD_FILE="{password}"\n')  # fmt: skip
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
