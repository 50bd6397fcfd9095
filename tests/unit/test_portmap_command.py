"""`portwarden portmap` arguments and tool failures: one-line errors, exit 2, nothing done."""

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.cli import main
from portwarden.config.errors import ConfigError
from portwarden.net.local import InterfaceAddress
from portwarden.net.portmapper import PortmapperError, SourceAddressError
from portwarden.portmap import check, command
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "0.0.0.0"], '--from: "0.0.0.0": the unspecified address names no host'),
        (["--from", "::"], '--from: "::": the unspecified address names no host'),
        (["--from", "::ffff:0.0.0.0"], '--from: "::ffff:0.0.0.0": the unspecified address'),
        (
            ["--from", "198.18.0.1", "--to", "0.0.0.0"],
            '--to: "0.0.0.0": the unspecified address names no host',
        ),
        (["--from", "2001:db8::1", "--to", "::"], '--to: "::": the unspecified address'),
        (["--from", "224.0.0.1"], '--from: "224.0.0.1": a multicast address names no one host'),
        (["--from", "198.18.0.1", "--to", "ff02::1"], '--to: "ff02::1": a multicast address'),
        (
            ["--from", "255.255.255.255"],
            '--from: "255.255.255.255": the broadcast address names no one host',
        ),
        (["--from", "198.18.0.1", "--to", "255.255.255.255"], '--to: "255.255.255.255": the '),
        (
            ["--from", "fe80::1"],
            '--from: "fe80::1": a link-local address needs its device: fe80::1%eth0, for one',
        ),
        (["--from", "2001:db8::1", "--to", "fe80::2"], '--to: "fe80::2": a link-local address '),
        (
            ["--from", "fe80::1%h4-no-such"],
            '--from: "fe80::1%h4-no-such": this host has no device h4-no-such',
        ),
        (
            ["--from", "2001:db8::1%lo"],
            '--from: "2001:db8::1%lo": a scope (%device) goes only with a link-local address',
        ),
    ],
)
def test_an_address_that_is_no_one_host_is_refused_before_anything_is_probed(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0.0.0.0 would be taken for this host, and probed over loopback (always allowed): a
    false `exposed`; a link-local address means nothing without its device."""

    def no_check(*_: object) -> None:
        raise AssertionError("checked with an address that is no one host")

    monkeypatch.setattr(command, "build_report", no_check)
    assert main(["portmap", "check", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"portwarden: error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("source", "target"),
    [("fe80::1%lo", None), ("fe80::1%1", "fe80::2%lo"), ("198.18.0.1", "198.18.0.2")],
)
def test_a_link_local_address_with_its_device_is_taken(source: str, target: str | None) -> None:
    command.check_addresses(source, target)


def test_a_scoped_address_is_here_on_its_own_device_only(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = [
        InterfaceAddress("eth0", 2, ipaddress.ip_address("fe80::1")),
        InterfaceAddress("eth0", 2, ipaddress.ip_address("198.18.0.1")),
    ]
    monkeypatch.setattr(check, "interface_addresses", lambda: mine)
    assert check._is_here("fe80::1%eth0") and check._is_here("fe80::1%2")
    assert not check._is_here("fe80::1%eth1") and not check._is_here("fe80::2%eth0")
    assert check._is_here("198.18.0.1") and not check._is_here("198.18.0.2")
    assert check._is_here("0.0.0.0") and check._is_here("::")  # the kernel's own


@pytest.mark.parametrize("option", ["--hosts-allow", "--hosts-deny"])
@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "symlink"])
def test_check_refuses_anything_but_a_regular_file_as_protect_does(
    option: str,
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`check --hosts-allow /dev/null` gave a wrappers note and a verdict: an error, before
    anything is asked (the loopback query may start a socket-activated rpcbind)."""
    path = {"device": Path("/dev/null"), "folder": tmp_path}.get(kind, tmp_path / kind)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (tmp_path / "real").write_text("rpcbind: ALL\n")
        path.symlink_to(tmp_path / "real")

    def no_check(*_: object) -> None:
        raise AssertionError("checked with a file that is not a regular one")

    monkeypatch.setattr(command, "build_report", no_check)
    monkeypatch.setattr(command, "may_read", lambda: True)
    assert main(["portmap", "check", option, str(path)]) == 2
    why = (
        "is a symbolic link; refusing to follow it"
        if kind == "symlink"
        else ("is not a regular file; refusing to read it")
    )
    assert capsys.readouterr().err == f"portwarden: error: {path} {why}\n"


def test_check_takes_a_missing_wrappers_file_as_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hosts.allow is no error (libwrap reads none as empty): the report goes on."""

    class Reached(Exception):
        pass

    def reached(*_: object) -> None:
        raise Reached

    monkeypatch.setattr(command, "build_report", reached)
    monkeypatch.setattr(command, "may_read", lambda: True)
    with pytest.raises(Reached):
        main(["portmap", "check", "--hosts-allow", str(tmp_path / "none")])


@pytest.mark.parametrize(
    ("args", "error", "said"),
    [
        (
            ["--from", "198.18.99.1"],
            SourceAddressError("not an address of this host"),
            '--from: "198.18.99.1": not an address of this host',
        ),
        (
            ["--from", "198.18.0.1", "--to", "198.18.7.7"],
            PortmapperError("failed", "Network is unreachable"),
            '--to: "198.18.7.7": Network is unreachable',
        ),
        (
            ["--from", "198.18.0.1", "--to", "198.18.7.7"],
            SourceAddressError("not an address of this host"),
            '--from: "198.18.0.1": not an address of this host',
        ),
    ],
)
def test_a_probe_that_cannot_be_made_is_an_option_error_like_any_other(
    args: list[str],
    error: PortmapperError,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def cannot(*_: object) -> None:
        raise error

    monkeypatch.setattr(command, "build_report", cannot)
    monkeypatch.setattr(command, "may_read", lambda: True)
    assert main(["portmap", "check", *args]) == 2
    assert capsys.readouterr() == ("", f"portwarden: error: {said}\n")
    assert main(["portmap", "check", *args, "--json"]) == 2
    out, err = capsys.readouterr()
    assert (json.loads(out), err) == ({"error": said}, f"portwarden: error: {said}\n")
