"""Keys that take a whole number from 1: one message for every wrong value, and EVENT_LOG_KEEP
has a ceiling (a rotation renames every generation while the alerts wait)."""

from pathlib import Path

import pytest

from portwarden.config import load_settings
from tests.unit.config_error import load_error


def _conf(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "p.conf"
    path.write_text(line + "\n")
    return path


@pytest.mark.parametrize("value", ["-1", "0", "1001", "1000000", "x", "1.5", ""])
def test_event_log_keep_outside_1_to_1000_is_one_error(tmp_path: Path, value: str) -> None:
    shown = load_error(_conf(tmp_path, f'EVENT_LOG_KEEP="{value}"'))
    assert shown.endswith(f':1: EVENT_LOG_KEEP="{value}": must be a whole number from 1 to 1000')


@pytest.mark.parametrize(("value", "kept"), [("1", 1), ("1000", 1000), (" 7 ", 7)])
def test_event_log_keep_from_1_to_1000(tmp_path: Path, value: str, kept: int) -> None:
    assert load_settings(_conf(tmp_path, f'EVENT_LOG_KEEP="{value}"')).event_log_keep == kept


@pytest.mark.parametrize("key", ["BLOCKS_PER_MINUTE", "MAIL_PER_HOUR"])
@pytest.mark.parametrize("value", ["-1", "0", "x"])
def test_counts_from_1_say_the_same_for_every_wrong_value(
    tmp_path: Path, key: str, value: str
) -> None:
    shown = load_error(_conf(tmp_path, f'{key}="{value}"'))
    assert shown.endswith(f':1: {key}="{value}": must be a whole number >= 1')


def test_a_count_too_long_to_be_a_number_says_so(tmp_path: Path) -> None:
    shown = load_error(_conf(tmp_path, f'MAIL_PER_HOUR="{"9" * 30}"'))
    assert shown.endswith("is too large (at most 18 digits)")
