"""A path key without an "off" (STATE_DIR, HISTORY_FILE, BLOCKED_FILE, HOSTS_DENY_FILE) set to
"" is an error at its line, not a quiet default: STATE_DIR="" was the system instance's
/var/lib/portwarden. Those whose "" has a documented meaning keep it (EVENT_LOG and
SYSLOG_SOCKET off; IGNORE_FILE, SMTP_CA_FILE, SMTP_PASSWORD_FILE unset)."""

from pathlib import Path

import pytest

from portwarden.cli import main
from portwarden.config.errors import ConfigError
from portwarden.config.load import load_settings


@pytest.mark.parametrize("key", ["STATE_DIR", "HISTORY_FILE", "BLOCKED_FILE", "HOSTS_DENY_FILE"])
def test_an_empty_path_without_an_off_is_an_error(tmp_path: Path, key: str) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\n{key} = ""\n' if key != "STATE_DIR" else f'{key} = ""\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(conf)
    line = 1 if key == "STATE_DIR" else 2
    assert str(refused.value).startswith(
        f'{conf}:{line}: {key}="": must name a path (leave the line out for the default, '
    )


def test_status_does_not_take_an_empty_state_dir_for_the_systems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text('STATE_DIR=""\n')
    assert main(["status", "-c", str(conf)]) == 2
    assert f'{conf}:1: STATE_DIR="": must name a path' in capsys.readouterr().err


def test_an_empty_value_with_a_meaning_keeps_it(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nEVENT_LOG=""\nSYSLOG_SOCKET=""\nIGNORE_FILE=""\n'
    )
    settings = load_settings(conf)
    assert (settings.event_log, settings.syslog_socket, settings.ignore_file) == (None, None, None)


@pytest.mark.parametrize("blanks", [" ", "   "])  # a tab is refused as a control character
@pytest.mark.parametrize("key", ["STATE_DIR", "HISTORY_FILE", "BLOCKED_FILE", "HOSTS_DENY_FILE"])
def test_a_path_of_blanks_alone_is_empty(tmp_path: Path, key: str, blanks: str) -> None:
    """Not a file named by blanks next to the configuration file."""
    conf = tmp_path / "p.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\n{key} = "{blanks}"\n'
        if key != "STATE_DIR"
        else f'{key} = "{blanks}"\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(conf)
    assert ": must name a path (leave the line out for the default, " in str(refused.value)
    assert str(refused.value).startswith(f"{conf}:{1 if key == 'STATE_DIR' else 2}: {key}=")
