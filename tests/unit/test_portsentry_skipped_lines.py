"""Lines PortSentry 1.2 skipped (a blank before the key, a tab after it, no quotes) are applied
by portwarden, with a warning at load: a migrated file may mean more than it meant before,
e.g. turn blocking on."""

from pathlib import Path

import pytest

from portwarden.config import BlockMode, load_settings
from portwarden.config.conffile import parse_conf


@pytest.mark.parametrize(("line", "why"), [
    ('  BLOCK_TCP="1"', "a blank before the key"),
    ('\tBLOCK_TCP="1"', "a blank before the key"),
    ('BLOCK_TCP\t= "1"', "a tab after the key"),
    ('BLOCK_TCP\t"1"', "a tab after the key"),
    ("BLOCK_TCP=1", "no quotes around the value"),
    ("BLOCK_TCP = 1  # on", "no quotes around the value"),
    (" BLOCK_TCP=1", "a blank before the key"),
])  # fmt: skip
def test_a_line_portsentry_skipped_is_applied_with_a_warning(
    tmp_path: Path, line: str, why: str
) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(f'# migrated\n{line}\nKILL_RUN_CMD="/bin/true"\n')
    settings = load_settings(conf)
    assert settings.block_tcp == BlockMode.BLOCK
    assert (
        f'{conf}:2: PortSentry skipped this line ({why}); portwarden applies it: BLOCK_TCP="1"'
        in settings.warnings
    )


@pytest.mark.parametrize("line", [
    'BLOCK_TCP="1"', 'BLOCK_TCP = "1"', 'BLOCK_TCP "1"', 'BLOCK_TCP="1" # on',
    "TCP_MODE=stcp", '  TCP_MODE="stcp"',  # our keys: PortSentry never read them
])  # fmt: skip
def test_a_line_portsentry_took_is_not_warned_about(line: str) -> None:
    _, warnings = parse_conf(f"{line}\n", "p.conf")
    assert warnings == []


def test_portsentry_looked_past_a_skipped_line_for_a_later_one() -> None:
    """Its search went on after a line it skipped for its shape (and found the later one), but
    ended at a line without quotes (the key kept its default)."""
    entries, warnings = parse_conf(' BLOCK_UDP="1"\nBLOCK_UDP="0"\nBLOCK_TCP=1\nBLOCK_TCP="0"\n',
                                   "p.conf")  # fmt: skip
    assert (entries["BLOCK_UDP"].value, entries["BLOCK_TCP"].value) == ("1", "1")
    assert warnings[1] == ("p.conf:2: BLOCK_UDP is set again; line 1 wins (PortSentry skipped "
                           "line 1 and used this one)")  # fmt: skip
    assert warnings[3] == ("p.conf:4: BLOCK_TCP is set again; line 3 wins (PortSentry skipped "
                           "line 3 and kept the default)")  # fmt: skip
    _, warnings = parse_conf('BLOCK_TCP="1"\nBLOCK_TCP="0"\n', "p.conf")
    assert warnings == ["p.conf:2: BLOCK_TCP is set again; line 1 wins, as in PortSentry"]
