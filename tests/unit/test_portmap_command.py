"""`portwarden portmap` arguments and tool failures: one-line errors, exit 2, nothing done."""

import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.cli import main
from portwarden.config.errors import ConfigError
from portwarden.portmap import command
from portwarden.portmap.command import TIMEOUT_S_MAX, TIMEOUT_S_MIN, parse_timeout

TIMEOUT_REASON = "must be a number of seconds from 0.1 to 60"


@pytest.mark.parametrize(
    "value",
    ["0", "-0", "-1", "1e-9", "0.09", "nan", "inf", "-inf", "60.001", "1e9", "two", "", "2\nx"],
)
def test_bad_timeout_is_one_line_error_before_anything_is_probed(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_check(*_: object) -> None:
        raise AssertionError("checked with a bad --timeout")

    monkeypatch.setattr(command, "build_report", no_check)
    assert main(["portmap", "check", "--from", "198.18.0.1", f"--timeout={value}"]) == 2
    shown = value.replace("\n", "\\n")
    assert capsys.readouterr().err == f'portwarden: error: --timeout: "{shown}": {TIMEOUT_REASON}\n'


@pytest.mark.parametrize(("text", "seconds"), [("2", 2.0), ("0.25", 0.25), ("60", 60.0)])
def test_good_timeout(text: str, seconds: float) -> None:
    assert parse_timeout(text) == seconds


@given(st.one_of(st.text(), st.floats().map(str)))
def test_timeout_is_in_range_or_a_one_line_error(text: str) -> None:
    try:
        value = parse_timeout(text)
    except ConfigError as error:
        assert "\n" not in str(error)
    else:
        assert TIMEOUT_S_MIN <= value <= TIMEOUT_S_MAX


def test_iptables_that_never_answers_is_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`iptables -w` waits for the xtables lock; past the time limit that is an error, not a
    traceback."""
    calls = []

    def hang(argv: list[str], **kwargs: Any) -> None:
        calls.append(argv)
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", hang)
    args = ["--firewall", "iptables", "--no-wrappers"]
    assert main(["portmap", "protect", "--allow", "198.18.0.20", *args]) == 2
    assert main(["portmap", "unprotect", *args]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == (
            "portwarden: error: iptables: no answer in 30 s "
            "(is another program holding the xtables lock?)\n"
        )
        * 2
    )
    assert [argv[0] for argv in calls] == ["iptables", "iptables"]


def test_unprotect_help_says_both_firewalls_are_cleaned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """unprotect removes our rules from nft and iptables whatever --firewall names: its help
    must not say it changes one firewall."""
    with pytest.raises(SystemExit):
        main(["portmap", "unprotect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "our rules are removed from both nft and iptables" in text
    assert "which firewall to change" not in text
    with pytest.raises(SystemExit):
        main(["portmap", "protect", "--help"])
    assert "which firewall to add the rules to" in " ".join(capsys.readouterr().out.split())
