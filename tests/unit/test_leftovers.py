"""What an unblock left in force (a leftover) is cleared once it is gone, and not before."""

import sys
import time
from pathlib import Path

import pytest

from portwarden import admin_output
from portwarden.respond.actions import Actions
from portwarden.store.db import Action, Store, boot_id
from tests.unit.blocking import blocking_settings

ADDRESS = "198.18.0.11"


def undo_saying(tmp_path: Path, text: str, status: int) -> tuple[str, ...]:
    """A KILL_ROUTE undo that prints `text` and exits with `status`, counting its runs."""
    script = tmp_path / "undo.py"
    script.write_text(
        f"import sys\nopen({str(tmp_path / 'runs')!r}, 'a').write('x')\n"
        f"print({text!r})\nsys.exit({status})\n"
    )
    return (sys.executable, str(script))


def leftover(tmp_path: Path, undo: tuple[str, ...], boot: str) -> Actions:
    settings = blocking_settings(tmp_path, 'KILL_ROUTE="ip route add blackhole $TARGET$"\n')
    actions = Actions(settings, Store(settings.state_dir / "portwarden.db"))
    route = Action("route", undo, "undo failed: it failed", ("ip", "route", "add", ADDRESS))
    record = actions.store.add_block(
        ADDRESS, "tcp", 11, "stcp", "x", ADDRESS, time.time(), None, (route,), boot
    )
    assert record is not None
    actions.store.end_block(record.id, time.time(), "command", (route,))
    assert len(actions.store.leftovers()) == 1
    return actions


@pytest.mark.parametrize(
    "text",
    [
        "RTNETLINK answers: No such process",
        "iptables: Bad rule (does a matching rule exist in that chain?).",
    ],
)
def test_a_route_removed_by_hand_clears_its_leftover(tmp_path: Path, text: str) -> None:
    actions = leftover(tmp_path, undo_saying(tmp_path, text, 2), boot_id())
    assert admin_output.unblock(actions.settings, ADDRESS) == 0
    assert actions.store.leftovers() == []


def test_a_route_undo_that_fails_otherwise_stays_left(tmp_path: Path) -> None:
    actions = leftover(
        tmp_path, undo_saying(tmp_path, "RTNETLINK answers: Operation not permitted", 2), boot_id()
    )
    assert admin_output.unblock(actions.settings, ADDRESS) == 1
    assert len(actions.store.leftovers()) == 1


def test_a_route_left_before_a_reboot_is_gone_with_it(tmp_path: Path) -> None:
    actions = leftover(tmp_path, undo_saying(tmp_path, "no", 1), "an earlier boot")
    cleared, still = actions.unblocks.retry_left(None)
    assert [r.address for r in cleared] == [ADDRESS] and still == []
    assert actions.store.leftovers() == [] and not (tmp_path / "runs").exists()
