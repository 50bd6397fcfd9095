"""KILL_ROUTE, KILL_RUN_CMD and KILL_HOSTS_DENY: checked at load, hosts.deny text literal."""

import ipaddress
import shlex
from pathlib import Path

import pytest

from portwarden.config import BlockMode, load_settings
from portwarden.config.kill import nft_element_command, route_undo
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest
from portwarden.store.db import Store
from portwarden.text import one_line
from tests.unit.blocking import block
from tests.unit.config_error import load_error


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.conf"
    path.write_text(f'STATE_DIR="state"\n{text}')
    return path


@pytest.mark.parametrize("key", ["KILL_ROUTE", "KILL_RUN_CMD"])
@pytest.mark.parametrize(
    "command", ["/bin/echo 'x $TARGET$", '/bin/echo "$TARGET$', "x $TARGET$ \\"]
)
def test_a_command_that_cannot_be_split_is_a_load_error(
    tmp_path: Path, key: str, command: str
) -> None:
    path = write(tmp_path, f"{key}={command}\n")
    shown = load_error(path)
    assert shown.startswith(f'{path}:2: {key}="{one_line(command)}": cannot be split')


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("KILL_ROUTE", "/sbin/route add -host 198.18.0.9 reject", "names no $TARGET$"),
        ("KILL_ROUTE", "''", "names no program"),
        ("KILL_HOSTS_DENY", "ALL: ALL", "names no $TARGET$"),
        ("KILL_HOSTS_DENY", "ALL: $TARGET$ \\", "ends with a backslash"),
    ],
)
def test_bad_kill_values_are_load_errors(tmp_path: Path, key: str, value: str, reason: str) -> None:
    path = write(tmp_path, f'{key}="{value}"\n')
    shown = load_error(path)
    assert shown.startswith(f'{path}:2: {key}="{one_line(value)}": {reason}')


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("/sbin/iptables -I INPUT -s $TARGET$ -j DROP && /sbin/iptables -L", "&&"),
        ("/bin/echo 'block in from $TARGET$/32 to any' | /sbin/ipf -f -", "|"),
        ("/usr/local/bin/page $TARGET$; logger done", ";"),
        ("/usr/local/bin/page $TARGET$ >/tmp/log", ">"),
        ("/usr/local/bin/page `hostname` $TARGET$", "`"),
        ("/usr/local/bin/page $(hostname) $TARGET$", "$("),
    ],
)
@pytest.mark.parametrize("key", ["KILL_ROUTE", "KILL_RUN_CMD"])
def test_shell_syntax_is_a_warning(tmp_path: Path, key: str, command: str, shown: str) -> None:
    s = load_settings(write(tmp_path, f'{key}="{command}"\n'))
    (warning,) = [w for w in s.warnings if key in w]
    assert warning.startswith(f"{tmp_path / 'p.conf'}:2: {key} has shell syntax ({shown}): ")
    assert "without a shell" in warning and "\n" not in warning


def test_quoted_operators_are_no_shell_syntax(tmp_path: Path) -> None:
    command = "/sbin/iptables -I INPUT -s $TARGET$ -j LOG --log-prefix 'a|b;c>d&&e'"
    s = load_settings(write(tmp_path, f'KILL_ROUTE="{command}"\n'))
    assert s.kill_route is not None and str(s.kill_route) == command
    assert s.kill_route.argv[-1] == "a|b;c>d&&e"
    assert not [w for w in s.warnings if "shell syntax" in w]


def test_hosts_deny_gets_the_literal_text(tmp_path: Path) -> None:
    """Debian's comment: escape '%' with a backslash (\\%h). PortSentry wrote the text as it
    was, the macros filled in; backslashes and quotes must stay."""
    text = 'ALL: $TARGET$ : spawn (/bin/echo \\%h "$PORT$ $MODE$" >> /tmp/x) & : DENY'
    deny = tmp_path / "hosts.deny"
    conf = write(
        tmp_path,
        f'BLOCK_TCP="1"\nBLOCK_NFTABLES="0"\nKILL_HOSTS_DENY={text}\nHOSTS_DENY_FILE="{deny}"\n',
    )
    settings = load_settings(conf)
    assert settings.kill_hosts_deny == text
    actions = Actions(settings, Store(tmp_path / "store.db"))
    address = ipaddress.ip_address("198.18.0.11")
    block(actions, BlockRequest(address, "tcp", 111, "stcp", "test", BlockMode.BLOCK))
    expected = 'ALL: 198.18.0.11 : spawn (/bin/echo \\%h "111 stcp" >> /tmp/x) & : DENY'
    assert deny.read_text() == expected + "\n"


def test_a_hash_in_a_command_is_no_comment(tmp_path: Path) -> None:
    """Found by the grammar property test: the operator scan took '#' for a comment, saw no
    tokens and raised. shlex.split, which makes the arguments, has no comments either."""
    s = load_settings(write(tmp_path, 'KILL_RUN_CMD="/usr/local/bin/page # $TARGET$"\n'))
    assert s.kill_run_cmd is not None
    assert s.kill_run_cmd.argv == ("/usr/local/bin/page", "#", "$TARGET$")
    assert s.kill_run_cmd.shell_syntax == ()
    s = load_settings(write(tmp_path, 'KILL_RUN_CMD="# page me"\n'))
    assert s.kill_run_cmd is not None and s.kill_run_cmd.shell_syntax == ()


@pytest.mark.parametrize(
    ("command", "undo"),
    [
        ("/sbin/ip route add blackhole A", "/sbin/ip route del blackhole A"),
        ("/sbin/route add -host A reject", "/sbin/route del -host A reject"),
        ("iptables -I INPUT 1 -s A -j DROP", "iptables -D INPUT -s A -j DROP"),
        # nft has no `del`: it answers a syntax error, so every undo failed
        ("/usr/sbin/nft add element inet t s { A }", "/usr/sbin/nft delete element inet t s { A }"),
        ("nft -e create element inet t s { A }", "nft -e delete element inet t s { A }"),
        ("nft 'add element inet t s { A }'", "nft 'delete element inet t s { A }'"),
        # a rule is removed by its handle, which the command does not give us
        ("nft add rule inet t input ip saddr A drop", None),
        ("nft insert rule inet t input ip saddr A drop", None),
        ("/usr/local/sbin/block A", None),
    ],
)
def test_route_undo(command: str, undo: str | None) -> None:
    found = route_undo(shlex.split(command))
    assert (None if found is None else shlex.join(found)) == (
        None if undo is None else shlex.join(shlex.split(undo))
    )


@pytest.mark.parametrize(
    ("command", "check"),
    [
        ("/usr/sbin/nft add element inet t s { A }", "/usr/sbin/nft get element inet t s { A }"),
        ("nft -e create element inet t s { A }", "nft -e get element inet t s { A }"),
        ("nft 'add element inet t s { A }'", "nft 'get element inet t s { A }'"),
        ("nft add rule inet t input ip saddr A drop", None),
        ("/sbin/ip route add blackhole A", None),  # not nft: no element to look for
        # Two commands: a `get` in place of the first `add` would still run the second.
        ("nft add element inet t s { A } ';' add element inet t s2 { A }", None),
        ("nft 'add element inet t s { A }; add element inet t s2 { A }'", None),
    ],
)
def test_nft_element_check(command: str, check: str | None) -> None:
    """How a KILL_ROUTE that adds an nftables element finds out whether it is there already
    (nft's `add element` says nothing of one that is)."""
    found = nft_element_command(shlex.split(command), "get")
    assert found == (None if check is None else shlex.split(check))
