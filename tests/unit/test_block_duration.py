"""How long a block lasts: BLOCK_DURATION, BLOCK_ESCALATION for repeat offenders, the caps."""

import dataclasses
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.config import load_settings
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
)  # fmt: skip
def test_escalation_is_capped(
    tmp_path: Path, duration: float, escalation: float, maximum: float, offence: int,
    seconds: float | None,
) -> None:  # fmt: skip
    settings = dataclasses.replace(
        load_settings(None), block_duration=duration, block_escalation=escalation,
        block_duration_max=maximum,
    )  # fmt: skip
    actions = Actions(settings, Store(tmp_path / "store.db"))
    assert actions.duration(offence) == seconds
