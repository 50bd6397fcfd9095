"""What the blocking side says: counts in the right number, no dangling separator, the form an
argument was read as, and KILL_HOSTS_DENY lines tcpd would not match as meant."""

import ipaddress
import logging
import sys
import time
from pathlib import Path

import pytest

from portwarden import admin_output
from portwarden.config import BlockMode
from portwarden.respond import actions as actions_module
from portwarden.respond import commands
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest
from portwarden.store.db import Action, Store, store_path
from tests.unit.blocking import blocking_settings


def _actions(tmp_path: Path, extra: str) -> Actions:
    settings = blocking_settings(tmp_path, extra)
    return Actions(settings, Store(settings.state_dir / "portwarden.db"))


def test_the_start_says_one_interrupted_command_in_the_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    actions = _actions(tmp_path, 'KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="true"\n')
    deny = str(actions.settings.hosts_deny_file)
    plan = (
        Action("hosts.deny", (deny, "ALL: 198.18.0.11"), "done", (deny, "ALL: 198.18.0.11")),
        Action("command", (), "running", ("true",)),
    )
    actions.store.add_block(
        "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", time.time(), None, plan, "boot-1"
    )
    monkeypatch.setattr(actions_module, "boot_id", lambda: "boot-1")
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        Actions(actions.settings, actions.store).restorer.restore()
    said = [r.getMessage() for r in caplog.records if "KILL_RUN_CMD" in r.getMessage()]
    assert said == [
        "KILL_RUN_CMD not run again at start: 1 block was interrupted while its "
        "command ran (it may have run, and cannot be undone)"
    ]


def test_a_command_killed_by_a_signal_without_output_has_no_dangling_separator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    argv = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    with caplog.at_level(logging.ERROR, logger="portwarden"):
        assert commands.run(argv, 10, "KILL_RUN_CMD") == "signal 9"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("KILL_RUN_CMD failed with signal 9: ")
    assert line.endswith("SIGKILL)'")  # the command, and nothing after it


def test_no_match_names_the_form_the_argument_was_read_as(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = blocking_settings(tmp_path)
    settings.state_dir.mkdir()
    Store(store_path(settings.state_dir)).close()
    assert admin_output.unblock(settings, "::ffff:198.18.0.11") == 1
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == "portwarden: error: no active block matches 198.18.0.11/32"
    )


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("$TARGET$", 'has no ":" between the services and the clients'),
        ("$TARGET$: ALL", "has $TARGET$ only before the first"),
        ("ALL: [$TARGET$]", "[$TARGET$] is written as $TARGET$"),
        ("ALL: $TARGET$ : DENY", None),
        ("ALL: $TARGET$", None),
    ],
)
def test_kill_hosts_deny_that_tcpd_would_not_match_is_a_load_warning(
    tmp_path: Path, line: str, said: str | None
) -> None:
    settings = blocking_settings(tmp_path, f'KILL_HOSTS_DENY="{line}"\n')
    found = [w for w in settings.warnings if "KILL_HOSTS_DENY" in w]
    assert (found == []) if said is None else ([said in w for w in found] == [True])


@pytest.mark.parametrize(
    ("address", "written"),
    [("2001:db8::c", "ALL: [2001:db8::c]"), ("198.18.0.11", "ALL: 198.18.0.11")],
)
@pytest.mark.parametrize("template", ["ALL: $TARGET$", "ALL: [$TARGET$]"])
def test_the_written_hosts_deny_line_is_one_tcpd_matches(
    tmp_path: Path, template: str, address: str, written: str
) -> None:
    actions = _actions(tmp_path, f'KILL_HOSTS_DENY="{template}"\n')
    request = BlockRequest(ipaddress.ip_address(address), "tcp", 11, "stcp", "x", BlockMode.BLOCK)
    assert actions.blocks.hosts_deny_line(request) == written
