"""`unblock` without a daemon: an argument read otherwise than written (host bits dropped, an
IPv4-mapped address) is said in one line on stderr, and unblocks what it was read as."""

import time
from pathlib import Path

import pytest

from portwarden import admin_output
from portwarden.store.db import Store, boot_id, store_path
from tests.unit.blocking import blocking_settings


@pytest.mark.parametrize(
    ("argument", "said"),
    [
        ("198.18.0.5/24", "host bits are set; unblocking 198.18.0.0/24"),
        (
            "::ffff:198.18.0.152",
            "an IPv4-mapped address is taken as its IPv4 form; unblocking 198.18.0.152/32",
        ),
        (
            "[::ffff:198.18.0.0]/120",
            "an IPv4-mapped address is taken as its IPv4 form; unblocking 198.18.0.0/24",
        ),
    ],
)
def test_an_argument_read_otherwise_is_said_and_unblocks_what_it_was_read_as(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: str, said: str
) -> None:
    settings = blocking_settings(tmp_path)
    settings.state_dir.mkdir()
    store = Store(store_path(settings.state_dir))
    store.add_block(
        "198.18.0.152", "tcp", 11, "stcp", "scan", "198.18.0.152", time.time(), None, (), boot_id()
    )
    store.close()
    assert admin_output.unblock(settings, argument) == 0
    out, err = capsys.readouterr()
    assert out == "unblocked 198.18.0.152\n"
    assert err == f'portwarden: warning: unblock "{argument}": {said}\n'


def test_an_argument_read_as_written_says_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = blocking_settings(tmp_path)
    assert admin_output.unblock(settings, "198.18.0.0/24") == 1
    assert capsys.readouterr().err == "portwarden: error: no active block matches 198.18.0.0/24\n"
