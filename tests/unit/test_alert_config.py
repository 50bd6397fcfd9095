"""Alert settings refused at load rather than failing later (issue 5 review): a facility a
program may not use, an SMTP user name AUTH cannot send, an EVENT_LOG the daemon could not
open; and the syslog timestamp's form."""

import os
import time
from pathlib import Path

import pytest

from portwarden import daemon
from portwarden.alert.syslog import timestamp
from portwarden.cli import main
from portwarden.config import load_settings
from portwarden.config.values import facility
from tests.unit.config_error import load_error


def error_of(tmp_path: Path, text: str) -> str:
    conf = tmp_path / "p.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\n{text}')
    return load_error(conf)


@pytest.mark.parametrize("value", ["kern", "LOG_KERN"])
def test_the_kernel_facility_is_refused(tmp_path: Path, value: str) -> None:
    """rsyslog files facility 0 as kernel messages; syslog(3) never lets a program use it."""
    assert error_of(tmp_path, f'SYSLOG_FACILITY="{value}"\n') == (
        f'{tmp_path}/p.conf:2: SYSLOG_FACILITY="{value}": kern is the kernel\'s own facility, '
        "which a program may not use (rsyslog files it as kernel messages): use daemon, auth, "
        "authpriv, local0 ... local7"
    )


@pytest.mark.parametrize(
    ("value", "name"), [("security", "auth"), ("LOG_AUTHPRIV", "authpriv"), ("Local7", "local7")]
)
def test_facility_names_of_syslog_conf_are_taken(value: str, name: str) -> None:
    """`security` is syslog.conf's deprecated synonym of auth."""
    assert facility(value) == name


def test_a_non_ascii_smtp_user_is_refused_at_load(tmp_path: Path) -> None:
    """smtplib sends AUTH as ASCII: every mail failed with an 'ascii' codec error."""
    password = tmp_path / "secret"
    password.write_text("pass\n")
    password.chmod(0o600)
    assert error_of(
        tmp_path,
        f'SMTP_RELAY="localhost"\nSMTP_USER="\u00fcber"\nSMTP_PASSWORD_FILE="{password}"\n',
    ) == (
        f'{tmp_path}/p.conf:3: SMTP_USER="\\xfcber": the user name has a non-ASCII character, '
        "which SMTP AUTH cannot send (smtplib sends it as ASCII)"
    )


def bad_event_logs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """EVENT_LOG values the daemon cannot use, with why."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "fifo")
    return {
        "directory": (tmp_path / "folder", f"{tmp_path}/folder: a directory, not a file"),
        "symlink": (tmp_path / "link", f"{tmp_path}/link: symbolic link refused"),
        "fifo": (tmp_path / "fifo", f"{tmp_path}/fifo: not a regular file"),
        "sysfs": (Path("/sys/events.jsonl"), "/sys is on sysfs, a kernel file system"),
    }


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo", "sysfs"])
def test_check_config_and_run_refuse_the_same_event_logs(
    tmp_path: Path,
    kind: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = []
    monkeypatch.setattr(daemon, "Daemon", lambda *args: started.append(args))
    path, why = bad_event_logs(tmp_path)[kind]
    conf = tmp_path / "p.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nEVENT_LOG="{path}"\n')
    expected = f'portwarden: error: {conf}:3: EVENT_LOG="{path}": {why}'
    assert main(["check-config", str(conf)]) == 2
    assert capsys.readouterr().err.strip() == expected
    assert main(["run", "-c", str(conf), "-stcp"]) == 2
    assert capsys.readouterr().err.strip() == expected
    assert started == []


def test_the_syslog_day_is_padded_with_a_space() -> None:
    """RFC 3164: `Nov  5`, not `Nov 05`."""
    fifth = time.mktime((2026, 11, 5, 9, 3, 7, 0, 0, -1))
    assert timestamp(fifth) == "Nov  5 09:03:07"
    assert timestamp(fifth + 10 * 86400) == "Nov 15 09:03:07"


def test_an_address_named_twice_in_mail_to_is_one_recipient_with_a_warning(
    tmp_path: Path,
) -> None:
    """`a@x.org, a@x.org` was two RCPTs, so two copies of every mail; a domain's case does not
    make another mailbox, a local part's may."""
    conf = tmp_path / "p.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nMAIL_TO="a@x.org, b@x.org,a@x.org, A@X.ORG, b@X.Org"\n'
    )
    settings = load_settings(conf)
    assert settings.mail_to == ("a@x.org", "b@x.org", "A@X.ORG")
    assert settings.warnings == (
        f"{conf}:2: MAIL_TO names a@x.org, b@x.org more than once: each gets the mail once",
    )
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nMAIL_TO="a@x.org, A@x.org"\n')
    assert load_settings(conf).warnings == ()
