"""How long a block lasts: BLOCK_DURATION, BLOCK_ESCALATION for repeat offenders, the caps."""

import dataclasses
import re
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.config import ConfigError, load_settings
from portwarden.respond.actions import Actions
from portwarden.store.db import Store


@pytest.mark.parametrize(
    ("duration", "escalation", "maximum", "offence", "seconds"),
    [
        (0.0, 2.0, 0.0, 3, None),  # forever, as PortSentry
        (3600.0, 1.0, 0.0, 9, 3600.0),
        (3600.0, 2.0, 0.0, 3, 14_400.0),
        (3600.0, 2.0, 10_000.0, 3, 10_000.0),
        (86_400.0, 1000.0, 0.0, 5, limits.BLOCK_SECONDS_MAX),  # 8.6e16 s without the cap
        (86_400.0, 1000.0, 0.0, 500, limits.BLOCK_SECONDS_MAX),  # a float overflow
    ],
)
def test_escalation_is_capped(
    tmp_path: Path,
    duration: float,
    escalation: float,
    maximum: float,
    offence: int,
    seconds: float | None,
) -> None:
    settings = dataclasses.replace(
        load_settings(None),
        block_duration=duration,
        block_escalation=escalation,
        block_duration_max=maximum,
    )
    actions = Actions(settings, Store(tmp_path / "store.db"))
    assert actions.blocks.duration(offence) == seconds


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            'BLOCK_DURATION="315360001"',
            "must be 0, or more than 0 and at most 315360000 (ten years), in seconds",
        ),
        ('BLOCK_DURATION_MAX="315360001"', "must be 0, or more than 0 and at most 315360000"),
        ('BLOCK_DURATION="x"', "must be 0 or a number of seconds"),
        ('BLOCK_DURATION="-1"', "must be 0 or a number of seconds in ASCII digits"),
        ('AUDIT_INTERVAL="31622401"', "must be 0, or more than 0 and at most 31622400 (a year)"),
        (
            'AUDIT_INTERVAL="0.2"',
            'p.conf:1: AUDIT_INTERVAL="0.2": must be 0 (no periodic check) or at least 10 seconds',
        ),
        ('SCAN_INTERVAL="0"', "must be more than 0 and at most 31622400 (a year), in seconds"),
    ],
)
def test_a_bad_duration_says_what_is_allowed(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "p.conf"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_settings(path)


def test_block_durations_go_up_to_ten_years(tmp_path: Path) -> None:
    """README gives ten years as BLOCK_DURATION_MAX's value when unset: it can be set so."""
    path = tmp_path / "p.conf"
    path.write_text('BLOCK_DURATION="315360000"\nBLOCK_DURATION_MAX="315360000"\n')
    settings = load_settings(path)
    assert settings.block_duration == settings.block_duration_max == limits.BLOCK_SECONDS_MAX
    assert settings.warnings == ()


@pytest.mark.parametrize(
    ("lines", "warning"),
    [
        (
            'BLOCK_DURATION="0"\nBLOCK_DURATION_MAX="3600"\n',
            'p.conf:2: BLOCK_DURATION_MAX does nothing: BLOCK_DURATION="0" makes every block last '
            "forever",
        ),
        (
            'BLOCK_DURATION="7200"\nBLOCK_DURATION_MAX="3600"\n',
            "p.conf:2: BLOCK_DURATION_MAX (3600 s) is shorter than BLOCK_DURATION (7200 s): every "
            "block lasts 3600 s",
        ),
    ],
)
def test_durations_that_contradict_each_other_are_a_warning(
    tmp_path: Path, lines: str, warning: str
) -> None:
    path = tmp_path / "p.conf"
    path.write_text(lines)
    (found,) = load_settings(path).warnings
    assert found == f"{tmp_path}/{warning}"
