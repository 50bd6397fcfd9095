"""Portmap hardening without privileges: allowed networks, wrappers blocks, the check's view."""

import dataclasses
import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.cli import main
from portwarden.config.errors import ConfigError
from portwarden.config.ignore import parse_network
from portwarden.net.addresses import Proto
from portwarden.net.portmapper import Mapping, PortmapperError, Reason
from portwarden.portmap import check, firewall, wrappers
from portwarden.portmap.check import FirewallState, FirewallView, Probe, Report, read_wrappers
from portwarden.portmap.command import check_addresses
from portwarden.portmap.networks import allowed_networks, host_bits_warnings
from portwarden.portmap.owner import Owner
from portwarden.portmap.protect import plan_protect, plan_unprotect
from portwarden.textfile import lines_with_ends

NETS = allowed_networks(["198.18.0.16/28", "2001:db8::10/124", "127.0.0.1"])


pytestmark = pytest.mark.usefixtures("no_rpcbind_user")


def test_allowed_networks_add_loopback_and_merge() -> None:
    assert [str(n) for n in NETS] == [
        "127.0.0.0/8",
        "198.18.0.16/28",
        "::1/128",
        "2001:db8::10/124",
    ]
    assert allowed_networks(["198.18.0.16/255.255.255.240"]) == allowed_networks(["198.18.0.16/28"])


@pytest.mark.parametrize(
    "text",
    [
        "rpc.example.org",
        "198.18.0.0/33",
        "198.18.0.0/255.0.255.0",
        "2001:db8::/ffff::",
        "",
        "198.18.0.1\n# x",
    ],
)
def test_bad_allowed_network_is_one_line_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        allowed_networks(["198.18.0.0/24", text])
    message = str(caught.value)
    assert message.startswith("--allow: ") and "\n" not in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "'-1' is not an IP address or network"),  # no label starts with a hyphen
        ("rpc-.example.org", "'rpc-.example.org' is not an IP address or network"),
        ("rpc.example.org", "'rpc.example.org' is a host name: only addresses and networks"),
        ("198.18.0.256/24", "'198.18.0.256' is not an IP address"),
    ],
)
def test_what_is_neither_a_name_nor_an_address_is_not_called_a_name(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        allowed_networks([text])
    assert str(caught.value).startswith(f'--allow: "{text}": {reason}')


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "198.18.050.1",
            "'198.18.050.1' is not four decimal numbers: libwrap (TCP Wrappers) "
            "reads a leading 0 as octal (0x as hex), so it reads 198.18.40.1; write the address "
            "meant in decimal, without leading zeros",
        ),
        (
            "198.18.0x32.0/24",
            "'198.18.0x32.0' is not four decimal numbers: libwrap (TCP "
            "Wrappers) reads a leading 0 as octal (0x as hex), so it reads 198.18.50.0; write",
        ),
        (
            "198.18.5",
            "'198.18.5' has 3 parts, not 4: libwrap (TCP Wrappers) takes it for no "
            "address and it would match no caller; write the four parts of the address meant",
        ),
    ],
)
def test_an_inet_addr_form_is_said_as_libwrap_reads_it(text: str, reason: str) -> None:
    """The addresses are for libwrap here, not PortSentry (whose ignore file the wording
    came from)."""
    with pytest.raises(ConfigError) as caught:
        allowed_networks([text])
    assert str(caught.value).startswith(f'--allow: "{text}": {reason}')
    assert "PortSentry" not in str(caught.value) and "..." not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "plain"), [("[2001:db8::]/64", "2001:db8::/64"), ("[2001:db8::14]", "2001:db8::14")]
)
def test_the_hosts_allow_form_of_ipv6_is_the_same_network(text: str, plain: str) -> None:
    assert allowed_networks([text]) == allowed_networks([plain])
    assert host_bits_warnings([text]) == []
    assert host_bits_warnings(["[2001:db8::1]/64"]) == [
        '--allow "[2001:db8::1]/64": host bits are set; the network allowed is 2001:db8::/64'
    ]


@pytest.mark.parametrize("text", ["[198.18.0.1]", "[2001:db8::]/129", "[]", "[2001:db8::"])
def test_brackets_hold_only_a_valid_ipv6_address(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        allowed_networks([text])
    assert str(caught.value).startswith(f'--allow: "{text}"')


def test_rules_use_only_forms_tcp_wrappers_accepts_loopback_first() -> None:
    assert wrappers.allow_rules(allowed_networks(["198.18.0.20", "2001:db8::/64"])) == (
        "rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128",
        "rpcbind portmap: 198.18.0.20 [2001:db8::]/64",
    )
    assert wrappers.allow_rules(allowed_networks(["127.0.0.1"])) == (
        "rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128",
    )
    assert wrappers.deny_rules() == ("rpcbind portmap: ALL",)


def _protect(path: Path, rules: tuple[str, ...]) -> wrappers.FileChange:
    change = wrappers.protect_change(path, rules)
    change.apply()
    return change


@pytest.mark.parametrize(
    "original",
    [None, b"", b"ALL: 198.18.0.5\n", b"# no newline at end", b"crlf: ALL\r\n", b"latin-1 \xe9\n"],
)
def test_protect_twice_then_unprotect_restores_bytes(
    tmp_path: Path, original: bytes | None
) -> None:
    path = tmp_path / "hosts.allow"
    if original is not None:
        path.write_bytes(original)
    rules = wrappers.allow_rules(NETS)
    assert _protect(path, rules).changed
    data = path.read_bytes()
    assert data.splitlines()[1:3] == [r.encode() for r in rules] and data.endswith(original or b"")
    assert not _protect(path, rules).changed  # idempotent
    wrappers.unprotect_change(path).apply()
    assert (path.read_bytes() if path.exists() else None) == original
    assert not wrappers.unprotect_change(path).changed


def test_protect_with_other_networks_updates_the_block_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts.allow"
    path.write_text("sshd: ALL\n")
    _protect(path, wrappers.allow_rules(NETS))
    path.write_text(path.read_text() + "in.fingerd: 198.18.0.9\n")
    for others in (MANY_HOSTS, ["198.18.0.0/24"]):  # more lines, then fewer
        rules = wrappers.allow_rules(allowed_networks(others))
        _protect(path, rules)
        assert path.read_text().splitlines()[1:] == [
            *rules,
            wrappers.END,
            "sshd: ALL",
            "in.fingerd: 198.18.0.9",
        ]
    wrappers.unprotect_change(path).apply()
    assert path.read_text() == "sshd: ALL\nin.fingerd: 198.18.0.9\n"


def test_created_file_kept_when_the_administrator_added_to_it(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    _protect(path, wrappers.deny_rules())
    path.write_text(path.read_text() + "sshd: 198.18.0.66\n")
    wrappers.unprotect_change(path).apply()
    assert path.read_text() == "sshd: 198.18.0.66\n"


def test_lines_appended_after_the_plan_are_kept_by_apply_and_undo(tmp_path: Path) -> None:
    """The file is read at plan time and replaced later: what another program appended in
    between stays, when the change is made and when it is taken back."""
    path = tmp_path / "hosts.deny"
    path.write_text("sshd: ALL\n")
    change = wrappers.protect_change(path, wrappers.deny_rules())
    with path.open("a") as file:
        file.write("ALL: 198.18.99.1\n")
    made = change.apply()
    assert made.before == "sshd: ALL\nALL: 198.18.99.1\n"
    assert path.read_text().endswith(wrappers.END + "\nsshd: ALL\nALL: 198.18.99.1\n")
    with path.open("a") as file:
        file.write("ALL: 198.18.99.2\n")
    made.undo()
    assert path.read_text() == "sshd: ALL\nALL: 198.18.99.1\nALL: 198.18.99.2\n"


def test_a_file_that_keeps_changing_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("sshd: ALL\n")

    def edit_while_someone_appends(text: str | None) -> str:
        with path.open("a") as file:  # after the read, before the write: every time
            file.write("ALL: 198.18.99.1\n")
        return f"ours\n{text}"

    with pytest.raises(wrappers.WrappersError, match=r"hosts.deny: kept changing .*left as it was"):
        wrappers.planned(path, edit_while_someone_appends).apply()
    assert not path.read_text().startswith("ours")


@pytest.mark.parametrize(
    "edit",
    [
        lambda lines: [*lines[:2], "ALL: ALL", *lines[2:]],  # a line of someone else's inside
        lambda lines: lines[:3],  # no end line
        lambda lines: [lines[0], lines[-1]],  # no rule line
        lambda lines: [*lines, *lines],  # two blocks
    ],
)
def test_edited_block_is_refused(tmp_path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    path = tmp_path / "hosts.allow"
    _protect(path, wrappers.allow_rules(NETS))
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(wrappers.WrappersError, match=r"hosts.allow:1: .* edited by hand"):
        wrappers.unprotect_change(path)


def test_diff_shows_exact_change(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("ALL: 198.18.0.66\n")
    diff = wrappers.protect_change(path, wrappers.deny_rules()).diff()
    assert f"+{wrappers.deny_rules()[0]}\n" in diff and " ALL: 198.18.0.66\n" in diff
    assert path.read_text() == "ALL: 198.18.0.66\n"


def test_symlink_and_missing_folder_are_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("")
    link = tmp_path / "hosts.allow"
    link.symlink_to(tmp_path / "real")
    with pytest.raises(wrappers.WrappersError, match="symbolic link"):
        wrappers.check_writable(wrappers.protect_change(link, ("x: ALL",)))
    missing = tmp_path / "nowhere" / "hosts.deny"
    with pytest.raises(wrappers.WrappersError, match="does not exist"):
        wrappers.check_writable(wrappers.protect_change(missing, ("x: ALL",)))


RPCBIND = (Owner(812, "rpcbind", libwrap=True),)


def test_check_lists_lines_for_the_portmapper_and_flags_a_later_allow(tmp_path: Path) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("sshd: ALL\nALL EXCEPT rpcbind: 198.18.0.9\n")
    deny.write_text("in.fingerd: ALL\nportmap,rpcbind : ALL\n# no newline")
    _protect(allow, wrappers.allow_rules(NETS))
    _protect(deny, wrappers.deny_rules())
    view = read_wrappers(allow, deny, RPCBIND)
    assert view.protected and view.uses_libwrap
    assert view.note == "rpcbind uses TCP Wrappers: libwrap.so is mapped by pid 812 (rpcbind)"
    assert [line.split(" ", 1)[0] for line in view.lines] == [
        f"{allow}:2:",
        f"{allow}:3:",
        f"{deny}:",  # the last line has no newline
        f"{deny}:2:",
        f"{deny}:5:",
    ]
    assert all(line.endswith("(portwarden-portmap)") for line in view.lines[:2])
    assert "no newline" in view.lines[2] and view.lines[4].endswith("portmap,rpcbind : ALL")
    # Socket activation: the service manager holds port 111 as well and hands it to rpcbind.
    activated = read_wrappers(allow, deny, (Owner(1, "systemd", libwrap=False), *RPCBIND))
    assert activated.protected and activated.note == view.note
    allow.write_text(allow.read_text() + "ALL: 198.18.0.0/255.255.255.0\n")
    assert not read_wrappers(allow, deny, RPCBIND).protected


def test_check_lists_the_rules_libwrap_reads(tmp_path: Path) -> None:
    """Split at '\\n' only: \\r and \\f end no rule, and a `#` after a blank starts none; a
    rule continued at the end of the file is no rule but the error libwrap finds there."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_bytes(b"rpcbind\r: ALL\nsshd: ALL\x0crpcbind: ALL\n #\trpcbind: 198.18.0.9\n")
    deny.write_bytes(b"rpcbind: ALL \\\n")
    view = read_wrappers(allow, deny, RPCBIND)
    assert view.lines == (
        f"{allow}:1: rpcbind\\r: ALL",
        f"{allow}:3:  #\\trpcbind: 198.18.0.9",
        f"{deny}: the last line ends in a backslash but no line follows: libwrap counts that as "
        "an error and denies every caller",
    )


def test_check_counts_the_lines_for_single_addresses_and_json_lists_them(tmp_path: Path) -> None:
    """fail2ban's `ALL: <address>` bans would bury the lines that matter under hundreds; those
    for an address in question (allowed, probed from, let in) are shown all the same."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("ALL: 203.0.113.250\n")  # lets an outsider in: a leak, shown
    bans = [f"ALL: 203.0.113.{n}" for n in range(10, 210)] + ["ALL: [2001:db8:9::1] 192.0.2.1"]
    deny.write_text(
        "\n".join(
            [
                *bans,
                "ALL: 198.18.0.20",
                "ALL: 203.0.113.7",
                "ALL: 192.0.2.0/255.255.255.0",
                "ALL: 192.0.2.9 EXCEPT 192.0.2.10",
                "rpcbind: 192.0.2.8",
                "sshd: 192.0.2.7",
                "",
            ]
        )
    )
    _protect(allow, wrappers.allow_rules(NETS))
    _protect(deny, wrappers.deny_rules())
    view = read_wrappers(allow, deny, RPCBIND, source="203.0.113.7")
    report = Report(("tcp",), (), None, view, FirewallView(False, ()), ())
    text = report.text()
    shown = text[
        text.index(f"  {view.note}") + 1 : text.index("firewall: does not protect it alone") - 1
    ]
    assert text[text.index("firewall: does not protect it alone") - 1] == (
        f'  ban {deny}:205: "ALL: 198.18.0.20": overridden for rpcbind: {allow}:3 (ours), read '
        "first, lets 198.18.0.20 reach it (run 'portwarden portmap protect' again to carry the "
        "ban over)"
    )
    assert [line.split(": ", 1)[1] for line in shown[:-1]] == [
        f"{rule} (portwarden-portmap)" for rule in wrappers.allow_rules(NETS)
    ] + [
        "ALL: 203.0.113.250",  # a leak
        "rpcbind portmap: ALL (portwarden-portmap)",
        "ALL: 198.18.0.20",  # an allowed address
        "ALL: 203.0.113.7",  # the probes' source
        "ALL: 192.0.2.0/255.255.255.0",
        "ALL: 192.0.2.9 EXCEPT 192.0.2.10",
        "rpcbind: 192.0.2.8",
    ]
    assert (
        shown[-1]
        == "  and 201 other lines for single addresses (`ALL: <address>`; --json lists them)"
    )
    listed = json.loads(json.dumps(report.as_json()))["wrappers"]
    assert len(listed["lines"]) == len(shown) - 1 + 201
    assert [listed["lines"][n].split(": ", 1)[1] for n in listed["single_address_lines"]] == bans
    allow.write_text("")
    deny.write_text("ALL: 203.0.113.1\n")
    alone = Report((), (), None, read_wrappers(allow, deny, RPCBIND), FirewallView(False, ()), ())
    assert "  1 line for single addresses (`ALL: <address>`; --json lists them)" in alone.text()


@pytest.mark.parametrize(
    ("owners", "uses", "note"),
    [
        (
            (Owner(77, "rpcbind", libwrap=False),),
            False,
            "rpcbind does not use TCP Wrappers: no libwrap.so in the memory map of pid 77 "
            "(rpcbind)",
        ),
        (
            (*RPCBIND, Owner(78, "x\ny", libwrap=False)),
            False,
            "rpcbind does not use TCP Wrappers: no libwrap.so in the memory map of pid 78 (x\\ny)",
        ),
        (
            (),
            None,
            "cannot tell whether rpcbind uses TCP Wrappers: no process found with a "
            "socket on port 111",
        ),
        (
            (Owner(1, "systemd", libwrap=False),),
            None,  # socket activation, rpcbind not started
            "rpcbind is not started: only the service manager (pid 1) holds port 111, for socket "
            "activation",
        ),
    ],
)
def test_wrappers_count_only_when_the_portmapper_maps_libwrap(
    tmp_path: Path,
    owners: tuple[Owner, ...],
    uses: bool | None,
    note: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check.os, "geteuid", lambda: 0)  # root: it sees every process
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    _protect(allow, wrappers.allow_rules(NETS))
    _protect(deny, wrappers.deny_rules())
    view = read_wrappers(allow, deny, owners)
    assert (view.protected, view.in_files, view.uses_libwrap, view.note) == (
        False,
        True,
        uses,
        note,
    )
    report = Report(("tcp", "udp"), (), None, view, FirewallView(False, ()), ())
    assert report.verdict == "exposed"
    assert report.text()[1:3] == ["wrappers: does not protect it alone", f"  {note}"]
    shown = json.loads(json.dumps(report.as_json()))["wrappers"]
    assert (shown["protected"], shown["uses_libwrap"], shown["note"]) == (False, uses, note)
    assert shown["owners"] == [dataclasses.asdict(o) for o in owners]


def test_only_a_user_is_told_that_root_sees_other_users_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check.os, "geteuid", lambda: 1000)
    note = read_wrappers(tmp_path / "hosts.allow", tmp_path / "hosts.deny", ()).note
    assert note.endswith("on port 111 (only root sees other users' processes)")


def test_our_hosts_deny_block_without_our_hosts_allow_block_is_pointed_out(tmp_path: Path) -> None:
    """Left so by hand (or by an unprotect of hosts.allow alone): it denies loopback too."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    _protect(deny, wrappers.deny_rules())
    view = read_wrappers(allow, deny, RPCBIND)
    assert not view.protected
    assert view.note.endswith(
        f"; but our {deny} block stands without our {allow} block: it denies every caller, "
        "loopback included (run `portwarden portmap protect` again, or `unprotect`)"
    )
    _protect(allow, wrappers.allow_rules(NETS))
    assert "stands without" not in read_wrappers(allow, deny, RPCBIND).note


def test_when_both_loopback_queries_fail_both_errors_are_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(address: str, proto: object, timeout: float) -> None:
        reason: Reason = "refused" if address == "::1" else "unanswered"
        raise PortmapperError(reason, f"it failed at {address}")

    monkeypatch.setattr(check, "dump", failing)
    assert check._local_programs(0.5) == (
        (),
        "127.0.0.1: it failed at 127.0.0.1; ::1: it failed at ::1",
        False,
    )


# 200 hosts (none next to another, so none merge): one allow line would be 2 600 characters.
MANY_HOSTS = [f"198.18.{n // 100 + 1}.{n % 100 * 2 + 1}" for n in range(200)]
MANY_NETWORKS = [f"198.19.{n * 2}.0/24" for n in range(90)] + [
    f"2001:db8:{n * 2:x}::/48" for n in range(90)
]


def test_many_networks_are_split_over_short_lines_after_loopback() -> None:
    for allow in (MANY_HOSTS, MANY_NETWORKS):
        rules = wrappers.allow_rules(allowed_networks(allow))
        assert rules[0] == "rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128"
        assert len(rules) > 2 and max(map(len, rules)) <= limits.HOSTS_ALLOW_RULE_LINE_CHARS_MAX
        assert all(rule.startswith("rpcbind portmap: ") for rule in rules)
        patterns = [p for rule in rules[1:] for p in rule.split(": ", 1)[1].split(" ")]
        assert patterns == [wrappers.pattern(parse_network(text)) for text in allow]


def test_libwrap_skips_a_line_longer_than_its_buffer(
    tmp_path: Path, libwrap_allows: Callable[[str], bool]
) -> None:
    """What the rule lines guard against: one long allow line locks out loopback."""
    (tmp_path / "hosts.allow").write_text(f"rpcbind: 127.0.0.1 {' '.join(MANY_HOSTS)}\n")
    (tmp_path / "hosts.deny").write_text("rpcbind: ALL\n")
    assert not libwrap_allows("127.0.0.1")


@pytest.mark.parametrize(
    ("allow", "first", "last"),
    [(MANY_HOSTS, "198.18.1.1", "198.18.2.199"), (MANY_NETWORKS, "198.19.0.1", "2001:db8:b2::1")],
)
def test_libwrap_reads_every_line_of_a_long_allow_list(
    tmp_path: Path, libwrap_allows: Callable[[str], bool], allow: list[str], first: str, last: str
) -> None:
    _protect(tmp_path / "hosts.allow", wrappers.allow_rules(allowed_networks(allow)))
    _protect(tmp_path / "hosts.deny", wrappers.deny_rules())
    for address in ("127.0.0.1", "127.8.9.10", "::1", first, last):
        assert libwrap_allows(address), address
    for address in ("198.18.0.1", "198.18.1.2", "198.19.1.1", "2001:db8:1::1", "::2"):
        assert not libwrap_allows(address), address


ALLOWED = allowed_networks(["198.18.0.16/28", "2001:db8::10/124"])


@pytest.mark.parametrize(
    ("line", "leaks"),
    [
        ("rpcbind: ALL", True),
        ("portmap rpcbind: 198.18.0.20, [2001:db8::11]", False),  # inside the allowed networks
        ("rpcbind: 198.18.0.20 198.18.0.99", True),
        ("rpcbind: [2001:db8::]/64", True),
        ("rpcbind: [2001:db8::10]/126 : severity auth.info", False),
        ("rpcbind: 198.18.0.", True),  # libwrap's prefix form: 198.18.0.0/24
        ("rpcbind: 198.18.0.16/255.255.255.248", False),
        ("rpcbind: LOCAL", True),
        ("rpcbind: .example.org", True),
        ("rpcbind: ALL EXCEPT 198.18.0.99", True),
        ("rpcbind: 198.18.0.20 EXCEPT 198.18.0.21", False),
        ("rpcbind: ALL : DENY", False),  # an option that refuses
        ("ALL: ALL", True),
        ("ALL EXCEPT rpcbind: ALL", False),
        ("sshd: ALL", False),
        ("# rpcbind: ALL", False),
        ("rpcbind", False),  # no client list: libwrap skips it
    ],
)
def test_an_allow_line_lets_outsiders_in_unless_every_client_is_inside(
    tmp_path: Path, line: str, leaks: bool
) -> None:
    allow = ["# admin\n", f"{line}\n"]
    _protect(tmp_path / "hosts.allow", wrappers.allow_rules(ALLOWED))
    lines = (tmp_path / "hosts.allow").read_text().splitlines(keepends=True) + allow
    deny = [f"{wrappers.BEGIN}\n", "rpcbind portmap: ALL\n", f"{wrappers.END}\n"]
    found = wrappers.leaks(tmp_path / "hosts.allow", lines, tmp_path / "hosts.deny", deny, ALLOWED)
    assert [leak.number for leak in found] == ([len(lines)] if leaks else [])


def test_a_deny_line_above_ours_with_an_allow_option_lets_outsiders_in(tmp_path: Path) -> None:
    allow = [
        f"{wrappers.BEGIN}\n",
        *(r + "\n" for r in wrappers.allow_rules(ALLOWED)),
        f"{wrappers.END}\n",
    ]
    ours = [f"{wrappers.BEGIN}\n", "rpcbind portmap: ALL\n", f"{wrappers.END}\n"]
    deny = [
        "rpcbind: ALL : allow\n",
        "rpcbind: 198.18.0.99 : spawn /bin/true\n",
        *ours,
        "rpcbind: ALL : allow\n",
    ]
    found = wrappers.leaks(Path("a"), allow, Path("d"), deny, ALLOWED)
    assert [str(leak) for leak in found] == [
        "d:1 (rpcbind: ALL : allow) lets callers outside the allowed networks reach the "
        "portmapper (TCP Wrappers follow the first line that matches)"
    ]


def test_our_block_that_allows_everyone_does_not_protect(tmp_path: Path) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    _protect(allow, (*wrappers.allow_rules(NETS), "rpcbind portmap: 0.0.0.0/0.0.0.0"))
    _protect(deny, wrappers.deny_rules())
    view = read_wrappers(allow, deny, RPCBIND)
    assert (view.protected, view.in_files) == (False, False)
    assert view.note.endswith(f"; but our {allow} lines allow every address (0.0.0.0/0)")
    _protect(allow, (*wrappers.allow_rules(NETS), "rpcbind portmap: ALL"))
    assert not read_wrappers(allow, deny, RPCBIND).protected


def test_host_bits_are_warned_about() -> None:
    found = host_bits_warnings(["198.18.0.16/28", "198.18.0.17/28", "198.18.0.17", "::1/128"])
    assert found == [
        '--allow "198.18.0.17/28": host bits are set; the network allowed is 198.18.0.16/28'
    ]


def test_a_mapped_network_is_said_to_be_taken_as_ipv4_and_host_bits_only_when_set() -> None:
    """::ffff:198.18.1.0/120 is 198.18.1.0/24 with no host bit set; /119 has one."""
    found = host_bits_warnings(
        ["::ffff:198.18.1.0/120", "::ffff:198.18.1.0/119", "::ffff:198.18.1.7"]
    )
    taken = "an IPv4-mapped address is taken as its IPv4 form; the network allowed is"
    assert found == [
        f'--allow "::ffff:198.18.1.0/120": {taken} 198.18.1.0/24',
        f'--allow "::ffff:198.18.1.0/119": host bits are set; {taken} 198.18.0.0/23',
        f'--allow "::ffff:198.18.1.7": {taken} 198.18.1.7/32',
    ]


def test_unprotect_changes_hosts_deny_first_and_protect_says_what_it_created(
    tmp_path: Path,
) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    deny.write_text("in.fingerd: ALL\n")
    plan = plan_protect(["198.18.0.20"], allow, deny, None)
    assert [c.path for c in plan.files] == [allow, deny]  # allow lines before our ALL
    assert plan.summary() == [f"created {allow}", f"changed {deny}"]
    plan.apply()
    undo = plan_unprotect(allow, deny, None)
    assert [c.path for c in undo.files] == [deny, allow]  # our ALL goes before our allow lines
    assert undo.summary() == [f"changed {deny}", f"removed {allow}"]


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        ("198.18.0.1", ["198.18.0.1/32"]),
        ({"prefix": {"addr": "::", "len": 0}}, ["::/0"]),
        (
            {"set": ["127.0.0.1", {"prefix": {"addr": "198.18.0.16", "len": 28}}]},
            ["127.0.0.1/32", "198.18.0.16/28"],
        ),
        ({"range": ["198.18.0.0", "198.18.0.3"]}, ["198.18.0.0/30"]),
        ({"set": [{"prefix": {"addr": "bogus", "len": 8}}, ["x"], None]}, []),
    ],
)
def test_the_networks_in_our_nft_rules(value: object, networks: list[str]) -> None:
    assert [str(n) for n in firewall._networks(value)] == networks


def _report(
    probes: tuple[Probe, ...],
    here: bool = True,
    notes: tuple[str, ...] = (),
    listening: tuple[str, ...] = ("tcp",),
    wrapped: bool = False,
    state: FirewallState = "does not protect",
) -> Report:
    view = read_wrappers(Path("/nonexistent/a"), Path("/nonexistent/d"), RPCBIND)
    view = dataclasses.replace(view, protected=wrapped)
    wall = FirewallView(state == "protects", (), state)
    return Report(listening, (), None, view, wall, probes, here, notes)


REACHED = (Probe("198.18.0.1", "198.18.0.1", "tcp", "reachable", ""),)
DROPPED = (Probe("198.18.0.1", "198.18.0.1", "tcp", "silent", ""),)


@pytest.mark.parametrize(
    ("report", "verdict"),
    [
        (_report(DROPPED, listening=()), "not running"),
        (_report(REACHED, here=False, listening=()), "exposed"),  # another host's portmapper
        (_report(REACHED), "exposed"),
        (_report(DROPPED), "protected"),
        (_report(REACHED, notes=("inside",), wrapped=True), "protected"),
        (_report(REACHED, notes=("over lo",), state="unknown"), "unknown"),
        (_report(()), "exposed"),
        (_report((), state="unknown"), "unknown"),
        (_report((), state="protects"), "protected"),
    ],
)
def test_verdict(report: Report, verdict: str) -> None:
    assert report.verdict == verdict


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (None, "198.18.0.1", '--to: "198.18.0.1": needs --from'),
        ("198.18.0.1", "example.org", '--to: "example.org": not an IP address'),
        ("host", None, '--from: "host": not an IP address'),
        ("::1", "127.0.0.1", '--to: "127.0.0.1": not of the same IP version as --from ::1'),
    ],
)
def test_from_and_to_are_addresses_of_one_family(
    source: str | None, target: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_addresses(source, target)
    check_addresses("198.18.0.1", "198.18.0.2")
    check_addresses(None, None)


def test_an_ipv4_mapped_allow_is_taken_as_the_ipv4_address() -> None:
    allowed = allowed_networks(["::ffff:198.18.0.20", "2001:db8::/64"])
    assert parse_network("198.18.0.20") in allowed and parse_network("2001:db8::/64") in allowed
    assert not any(n.version == 6 and n.network_address.ipv4_mapped for n in allowed)


def test_protect_warns_about_a_last_line_without_newline_and_unprotect_keeps_it(
    tmp_path: Path,
) -> None:
    """libwrap counts an unterminated last line as an error (hosts.deny: every caller denied).
    protect says so as check does, puts its lines at the top, clear of that line, and
    unprotect gives the bytes back, the missing newline included."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    originals = {allow: b"# allow\nsshd: ALL", deny: b"# deny\nin.fingerd: ALL"}
    for path, data in originals.items():
        path.write_bytes(data)
    plan = plan_protect(["198.18.0.20"], allow, deny, None)
    newline = "the last line has no newline: libwrap counts that as an error and"
    assert plan.warnings == (
        f"{allow}: {newline} ignores that line",
        f"{deny}: {newline} denies every caller",
    )
    view = read_wrappers(allow, deny, RPCBIND)
    assert [line for line in view.lines if "no newline" in line] == list(plan.warnings)
    plan.apply()
    for path, data in originals.items():
        lines = path.read_bytes().splitlines(keepends=True)
        assert lines[-2:] == data.splitlines(keepends=True)  # not glued onto our end line
        assert lines[-3] == wrappers.END.encode() + b"\n"
    assert plan_protect(["198.18.0.20"], allow, deny, None).warnings == plan.warnings
    plan_unprotect(allow, deny, None).apply()
    assert {path: path.read_bytes() for path in originals} == originals
    deny.write_bytes(b"in.fingerd: ALL\n")
    assert len(plan_protect(["198.18.0.20"], allow, deny, None).warnings) == 1


def test_a_continued_admin_line_is_shown_joined_and_escaped_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """libwrap joins a line ending in a backslash with the next: the warning quotes the rule
    it reads, in protect (whose output is escaped once) and in check alike."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("sshd: ALL\nrpcbind: 198.18.0.20 \\\n  203.0.113.0/255.255.255.0\n")
    deny.write_text("")
    said = (
        f"{allow}:6 (rpcbind: 198.18.0.20   203.0.113.0/255.255.255.0) lets callers "
        "outside the allowed networks reach the portmapper"
    )
    (warning,) = plan_protect(["198.18.0.20"], allow, deny, None).warnings
    assert warning.startswith(said)
    assert (
        main(
            [
                "portmap",
                "protect",
                "--allow",
                "198.18.0.20",
                "--firewall",
                "none",
                "--dry-run",
                "--hosts-allow",
                str(allow),
                "--hosts-deny",
                str(deny),
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.startswith(f"portwarden: warning: {said}")
    plan_protect(["198.18.0.20"], allow, deny, None).apply()
    view = read_wrappers(allow, deny, RPCBIND)
    assert f"{allow}:6: rpcbind: 198.18.0.20   203.0.113.0/255.255.255.0" in view.lines
    assert f"but {said}" in view.note


@pytest.mark.parametrize("line", ["rpcbind: ALL", "ALL: ALL", "portmap,sshd : all"])
def test_protect_says_when_hosts_deny_already_kept_everyone_out(tmp_path: Path, line: str) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("")
    deny.write_text(f"# deny\n{line}\n")
    plan = plan_protect(["198.18.0.20"], allow, deny, None)
    said = (
        f"{deny}:2 ({line}) already refuses every caller of the portmapper: protect lets "
        "the allowed networks in, which it kept out"
    )
    assert plan.warnings == (said,)
    plan.apply()  # said again, at its new place below our block
    again = plan_protect(["198.18.0.20"], allow, deny, None).warnings
    assert again == (said.replace(":2 (", ":5 ("),)
    deny.write_text("ALL: ALL EXCEPT 198.18.0.20\nsshd: ALL\n")
    assert plan_protect(["198.18.0.20"], allow, deny, None).warnings == ()


@dataclasses.dataclass
class _Wall:
    """A stand-in firewall for Plan: records what it runs; `fails` makes its run fail."""

    name: str
    log: list[str]
    fails: bool = False

    def protect(self, networks: tuple[firewall.Network, ...]) -> list[firewall.Step]:
        return [firewall.Step(self.name, f"add ours to {self.name}\n")]

    def unprotect(self) -> list[firewall.Step]:
        return [firewall.Step(self.name, f"remove ours from {self.name}\n")]

    def foreign(self, deleted_by: str | None = None) -> str | None:
        return None

    def run(self, step: firewall.Step) -> firewall.Undo:
        if self.fails:
            raise firewall.FirewallError(f"{self.name}: refused")
        self.log.append(f"ran {step.tool}")

        def put_back() -> str:
            self.log.append(f"put back {self.name}")
            return f"{self.name} was put back"

        return put_back


def _stand_ins(monkeypatch: pytest.MonkeyPatch, missing: str = "", failing: str = "") -> list[str]:
    log: list[str] = []

    def make(backend: str) -> _Wall:
        if backend == missing:
            raise firewall.ToolMissing(f"{backend} not found")
        return _Wall(backend, log, backend == failing)

    monkeypatch.setattr(firewall, "firewall", make)
    return log


@pytest.mark.parametrize(("named", "other"), [("nft", "iptables"), ("iptables", "nft")])
def test_unprotect_removes_our_rules_from_both_firewalls(
    monkeypatch: pytest.MonkeyPatch, named: firewall.Backend, other: str
) -> None:
    """protect --firewall X, unprotect with the other one: our rules go all the same."""
    log = _stand_ins(monkeypatch)
    plan = plan_unprotect(None, None, named)
    assert [step.tool for _, step in plan.steps] == [named, other]
    assert f"remove ours from {other}" in plan.show()  # --dry-run shows it
    plan.apply()
    assert log == [f"ran {named}", f"ran {other}"]


def test_unprotect_skips_the_other_firewall_only_when_its_tool_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stand_ins(monkeypatch, missing="iptables")
    assert [step.tool for _, step in plan_unprotect(None, None, "nft").steps] == ["nft"]
    with pytest.raises(firewall.ToolMissing):
        plan_unprotect(None, None, "iptables")


def test_a_failing_firewall_puts_back_the_one_changed_before_it_and_the_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    plan_protect(["198.18.0.20"], allow, deny, None).apply()
    protected = allow.read_bytes(), deny.read_bytes()
    log = _stand_ins(monkeypatch, failing="iptables")
    with pytest.raises(firewall.FirewallError) as caught:
        plan_unprotect(allow, deny, "nft").apply()
    assert str(caught.value) == (
        f"nft was put back; {allow} was put back as it was; {deny} was "
        "put back as it was, after iptables: refused"
    )
    assert log == ["ran nft", "put back nft"]
    assert (allow.read_bytes(), deny.read_bytes()) == protected


def test_libwrap_counts_an_unterminated_last_line_as_the_warnings_say(
    tmp_path: Path, libwrap_allows: Callable[[str], bool]
) -> None:
    """hosts.deny: every caller denied; hosts.allow: that line grants no one. After protect,
    our lines at the top still decide for the portmapper."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("rpcbind: 198.18.0.5")
    deny.write_text("in.fingerd: ALL")
    assert not libwrap_allows("198.18.0.5") and not libwrap_allows("127.0.0.1")
    deny.write_text("rpcbind: ALL\n")
    assert not libwrap_allows("198.18.0.5")  # the allow line grants no one
    allow.write_text("rpcbind: 198.18.0.5\n")
    assert libwrap_allows("198.18.0.5")  # but it does with its newline
    allow.write_text("rpcbind: 198.18.0.5")
    deny.write_text("in.fingerd: ALL")
    plan_protect(["198.18.0.20"], allow, deny, None).apply()
    assert libwrap_allows("198.18.0.20") and libwrap_allows("127.0.0.1")
    assert not libwrap_allows("198.18.0.5")


def test_an_answer_over_loopback_with_our_deny_line_in_force_proves_the_files_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the readability test says (a security module it cannot see, say): Debian's
    libwrap denies every caller when it cannot open a file, so an answer is proof."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    _protect(allow, wrappers.allow_rules(NETS))
    _protect(deny, wrappers.deny_rules())
    blind = f"{allow}: rpcbind (pid 77, rpcbind) runs as _rpc (uid 103), which cannot read it"
    monkeypatch.setattr(check, "unread_files", lambda paths, serving: ([blind], []))
    doubted = read_wrappers(allow, deny, RPCBIND)
    assert (doubted.protected, doubted.unreadable) == (False, (blind,))
    assert doubted.note.endswith(f"; but {blind}: TCP Wrappers cannot read the lines there")
    proven = read_wrappers(allow, deny, RPCBIND, answered=True)
    assert (proven.protected, proven.unreadable) == (True, ())
    assert "cannot read" not in proven.note


@pytest.mark.parametrize(
    ("unreadable", "cause"),
    [
        (
            (
                "/etc/hosts.allow: rpcbind (pid 77, rpcbind) runs as _rpc (uid 103), which cannot "
                "read it (mode 600, owner root:root)",
            ),
            "TCP Wrappers cannot read /etc/hosts.allow (see above)",
        ),
        (
            (),
            "a line of hosts.allow or hosts.deny denies them (one of the administrator's, or "
            "ours in hosts.deny without our hosts.allow lines), or TCP Wrappers cannot read "
            "one of the files",
        ),
    ],
)
def test_the_locked_out_note_names_what_is_known_of_the_cause(
    unreadable: tuple[str, ...], cause: str
) -> None:
    report = _report(())
    report = dataclasses.replace(
        report, wrappers=dataclasses.replace(report.wrappers, unreadable=unreadable)
    )
    locked = check._locked(report, ["the loopback query was denied (authentication error)"])
    assert locked.verdict == "locked out"
    assert locked.denied_allowed == (
        "the loopback query was denied (authentication error): the portmapper refuses callers "
        f"the rules allow: {cause}",
    )


# An administrator's hosts.allow after our block, as libwrap splits and reads it: at '\n' only,
# items apart at ", \t\r\n" only, a comment only with `#` first; the outsider 198.18.0.5 is let
# in exactly when protect warns of a leak.
_ALLOW_LINES = [
    (b"rpcbind\r: ALL\n", True),  # \r is a blank to libwrap, no line end
    (b"sshd: ALL\x0crpcbind: ALL\n", False),  # \f: the daemon is sshd, ALL\f.. a client
    (b"rpcbind: 198.18.0.20\x1c\nrpcbind: ALL\n", True),
    (b" # rpcbind: ALL\n", True),  # `#` after a blank: daemons `#` and rpcbind
    (b"# rpcbind: ALL\n", False),
    (b"rpcbind: 198.18.0.20 \\\n198.18.0.5\n", True),  # continued
    (b"rpcbind: 198.18.0.5 \\\r\n", True),  # a backslash before \r\n continues nothing
    (b"rpcbind: 198.18.0.5 \\\n", False),  # continued at the end: an error, no rule
    (b"rpcbind: 198.18.0.5 \\\n\\\n", False),
    (b"rpcbind: 198.18.0.5", False),  # no newline: an error, no rule
    # Daemon patterns, as libwrap matches them against "rpcbind": wildcards and case ignored.
    (b"rpc*: ALL\n", True),
    (b"rpcbin?: ALL\n", True),
    (b"RPC*: ALL\n", True),
    (b"RpcBind: ALL\n", True),
    (b"*: ALL\n", True),
    (b"r*d, sshd: ALL\n", True),
    (b"KNOWN: ALL\n", True),  # any daemon name but `unknown`
    (b"rpcbind@ALL: ALL\n", True),
    (b"ALL EXCEPT sshd EXCEPT rpcbind: ALL\n", True),  # the exception's exception
    (b"ALL EXCEPT rpc*: ALL\n", False),
    (b"ALL EXCEPT RPCBIND: ALL\n", False),
    (b"rpcbind?: ALL\n", False),
    (b"rpc*x: ALL\n", False),
    (b"?: ALL\n", False),
    (b"[rpcbind]: ALL\n", False),
    (b"@rpcbind: ALL\n", False),  # `@` first: no daemon@host
]


@pytest.mark.parametrize(("admin", "leaks"), _ALLOW_LINES)
def test_protect_warns_of_a_leak_exactly_when_libwrap_lets_an_outsider_in(
    tmp_path: Path, libwrap_allows: Callable[[str], bool], admin: bytes, leaks: bool
) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_bytes(admin)
    deny.write_bytes(b"")
    plan = plan_protect(["198.18.0.16/28"], allow, deny, None)
    plan.apply()
    assert libwrap_allows("198.18.0.5") is leaks  # the premise: what libwrap does
    assert libwrap_allows("198.18.0.20") and libwrap_allows("127.0.0.1")
    assert any("lets callers outside" in warning for warning in plan.warnings) is leaks
    plan_unprotect(allow, deny, None).apply()
    assert allow.read_bytes() == admin


# hosts.deny alone (hosts.allow empty): protect warns that every caller is refused already
# (by a rule, or by an unterminated last line, an error) exactly when libwrap refuses both an
# outsider and a caller of the allowed networks; the rule it names is the one libwrap reads.
_DENY_LINES = [
    (b"rpcbind: ALL\n", "already refuses", ":1 (rpcbind: ALL)"),
    (b"sshd: ALL\x0crpcbind: ALL\n", None, ""),  # one line, for sshd
    (b"rpcbind:\x1cALL\n", None, ""),  # the client is \x1cALL, no ALL
    (b"rpcbind: ALL\x0c\n", None, ""),
    (b"\t#\trpcbind: ALL\n", "already refuses", ":1 (\\t#\\trpcbind: ALL)"),
    (b"rpcbind: 198.18.0.6\n", None, ""),
    (b"rpcbind: 198.18.0.6 \\\n", "no line follows", "denies every caller"),
    (b"# deny\nrpcbind: 198.18.0.6", "no newline", "denies every caller"),
    (b"rpcbind: ALL \\\r\n", "already refuses", ":1 (rpcbind: ALL \\\\)"),
    (b"rpcbind: 198.18.0.6, ALL\n", "already refuses", ":1 (rpcbind: 198.18.0.6, ALL)"),
    (b"rpcbind: ALL EXCEPT 198.18.0.20\n", None, ""),
    (b"rpc*: ALL\n", "already refuses", ":1 (rpc*: ALL)"),
    (b"RPCBIN?: ALL\n", "already refuses", ":1 (RPCBIN?: ALL)"),
    (b"ALL EXCEPT Rpc*: ALL\n", None, ""),
    (b"rpcbind?: ALL\n", None, ""),
]


@pytest.mark.parametrize(("admin", "warned", "said"), _DENY_LINES)
def test_protect_says_every_caller_is_refused_exactly_when_libwrap_refuses_them(
    tmp_path: Path,
    libwrap_allows: Callable[[str], bool],
    admin: bytes,
    warned: str | None,
    said: str,
) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_bytes(b"")
    deny.write_bytes(admin)
    refused = not libwrap_allows("198.18.0.5") and not libwrap_allows("198.18.0.20")
    assert refused is (warned is not None)  # the premise: what libwrap does
    warnings = plan_protect(["198.18.0.16/28"], allow, deny, None).warnings
    if warned is None:
        assert warnings == ()
    else:
        (warning,) = warnings
        assert warned in warning and said in warning, warning


@given(st.text(alphabet="ab\\\r\n\x0b\x0c\x1c\x85\u2028", max_size=30))
def test_lines_are_split_at_newlines_only_and_join_back_byte_for_byte(text: str) -> None:
    lines = lines_with_ends(text)
    assert "".join(lines) == text
    assert all(line.count("\n") == 1 and line.endswith("\n") for line in lines[:-1])
    assert not lines or lines[-1].count("\n") == int(text.endswith("\n"))
    assert len(lines) == text.count("\n") + (not text.endswith("\n") and text != "")


@pytest.mark.parametrize(
    ("count", "said"), [(1, "listed 1 registration"), (2, "listed 2 registrations")]
)
def test_a_probe_that_got_the_list_counts_it_in_the_right_number(
    monkeypatch: pytest.MonkeyPatch, count: int, said: str
) -> None:
    mappings = tuple(Mapping(100000, v, Proto.TCP, 111) for v in range(count))
    monkeypatch.setattr(check, "dump", lambda *args, **kwargs: mappings)
    found = check.probe("198.18.0.20", "198.18.0.1", Proto.TCP, 1.0)
    assert (found.outcome, found.detail) == ("reachable", said)


def test_both_firewalls_name_what_is_not_ours_in_one_wording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What an administrator added to our nft table or our iptables chain is said the same
    way for both (the message was built twice, and worded two ways)."""
    listing = {
        "nftables": [
            {"table": {"name": firewall.TABLE}},
            {"chain": {"name": "input"}},
            {"chain": {"name": "mine"}},
            {"rule": {"chain": "input", "handle": 7, "comment": "x"}},
        ]
    }
    nft = object.__new__(firewall.NftFirewall)
    monkeypatch.setattr(nft, "_nft_run", lambda *_, **__: json.dumps(listing))
    chain = firewall.CHAIN
    iptables = firewall.IptablesFirewall()
    monkeypatch.setattr(
        iptables,
        "_list",
        lambda tool, _: [f"-N {chain}", f"-A {chain} -p tcp -m multiport --dports 22,80 -j ACCEPT"],
    )
    shape = (
        "{} holds what portwarden did not put there ({}): the {} is portwarden's alone, "
        "protect replaces {} and unprotect deletes it; keep your own rules in a {} of "
        "your own"
    )
    assert nft.foreign() == shape.format(
        f"nftables table inet {firewall.TABLE}",
        "chain mine; rule handle 7 in chain input",
        "table",
        "its chain's rules",
        "table",
    )
    rule = f"-A {chain} -p tcp -m multiport --dports 22,80 -j ACCEPT"
    assert iptables.foreign() == shape.format(
        f"chain {chain}", f"iptables: {rule}; ip6tables: {rule}", "chain", "its rules", "chain"
    )


def test_a_protect_that_deletes_our_chain_in_the_other_firewall_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`protect --firewall nft` takes our iptables chain out, a rule added there by hand with
    it: the warning says that this protect deletes it (it said that protect replaces the
    chain's rules, which this one does not)."""
    chain = firewall.CHAIN
    rule = f"-A {chain} -p tcp -m tcp --dport 22 -j ACCEPT"
    iptables = firewall.IptablesFirewall()
    monkeypatch.setattr(iptables, "_list", lambda tool, _: [f"-N {chain}", rule])
    monkeypatch.setattr(iptables, "_jumps", lambda tool: [1])
    nft = _Wall("nft", [])
    monkeypatch.setattr(firewall, "firewall", lambda b: iptables if b == "iptables" else nft)
    plan = plan_protect(["198.18.0.20"], None, None, "nft")
    assert plan.warnings == (
        f"chain {chain} holds what portwarden did not put there (iptables: {rule}; ip6tables: "
        f"{rule}): the chain is portwarden's alone, and protect --firewall nft deletes it, "
        "with all it holds; keep your own rules in a chain of your own",
    )
    assert "protect replaces" in (plan_protect(["198.18.0.20"], None, None, "iptables")).warnings[0]


BANS = "\n".join(
    [
        "ALL: 198.18.0.20",  # fail2ban's, PortSentry's, KILL_HOSTS_DENY's: carried over
        "rpcbind : 198.18.0.24/255.255.255.252, [2001:db8::12]",  # carried over
        "sshd: 198.18.0.21",  # not the portmapper's
        "ALL: 198.18.0.22 EXCEPT 198.18.0.23",  # an EXCEPT of its own: a warning
        "ALL: 198.18.0.0/255.255.0.0",  # all of the allowed network and more: a warning
        "ALL: 203.0.113.7",  # outside: hosts.deny's own business
        "",
    ]
)


def test_protect_carries_the_bans_inside_the_allowed_networks_over_as_except(
    tmp_path: Path, libwrap_allows: Callable[[str], bool]
) -> None:
    """Our hosts.allow lines are read before hosts.deny: without EXCEPT they would let in the
    addresses hosts.deny bans inside the allowed networks (measured with libwrap itself)."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    deny.write_text(BANS)
    plan = plan_protect(["198.18.0.16/28", "2001:db8::10/124"], allow, deny, None)
    plan.apply()
    assert allow.read_text().splitlines()[2] == (
        "rpcbind portmap: 198.18.0.16/255.255.255.240 [2001:db8::10]/124 "
        "EXCEPT 198.18.0.20 198.18.0.24/255.255.255.252 [2001:db8::12]/128"
    )
    assert tuple(note.done for note in plan.notes) == (
        f'{deny}:4: "ALL: 198.18.0.20" still refuses 198.18.0.20 (carried over to our {allow} '
        "line as EXCEPT)",
        f'{deny}:5: "rpcbind : 198.18.0.24/255.255.255.252, [2001:db8::12]" still refuses '
        f"198.18.0.24/30 (carried over to our {allow} line as EXCEPT)",
        f'{deny}:5: "rpcbind : 198.18.0.24/255.255.255.252, [2001:db8::12]" still refuses '
        f"2001:db8::12 (carried over to our {allow} line as EXCEPT)",
    )
    assert list(plan.warnings) == [
        f'{deny}:7: "ALL: 198.18.0.22 EXCEPT 198.18.0.23" refuses 198.18.0.22, inside the '
        "allowed network 198.18.0.16/28, with an EXCEPT that protect does not carry over: our "
        f"{allow} line, read first, lets it reach rpcbind; write the ban without EXCEPT and run "
        "protect again",
        f'{deny}:8: "ALL: 198.18.0.0/255.255.0.0" refuses all of the allowed network '
        f"198.18.0.16/28, but our {allow} line, read first, lets it reach rpcbind, as --allow "
        "asks: narrow --allow, or remove the ban",
    ]
    for refused in ("198.18.0.20", "198.18.0.25", "2001:db8::12", "203.0.113.7"):
        assert not libwrap_allows(refused), refused
    # 198.18.0.21: the /16 ban is not carried over (as warned), and sshd's is not rpcbind's
    for allowed in ("198.18.0.17", "198.18.0.21", "198.18.0.22", "2001:db8::13", "127.0.0.1"):
        assert libwrap_allows(allowed), allowed
    assert not plan_protect(["198.18.0.16/28", "2001:db8::10/124"], allow, deny, None).changed


def test_check_says_whether_each_ban_holds_for_rpcbind(tmp_path: Path) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    deny.write_text("ALL: 198.18.0.20\n")
    plan_protect(["198.18.0.16/28"], allow, deny, None).apply()
    with deny.open("a") as later:
        later.write("ALL: 198.18.0.19\n")  # fail2ban, after protect
    view = read_wrappers(allow, deny, RPCBIND)
    assert view.bans == (
        f'{deny}:4: "ALL: 198.18.0.20": in effect for rpcbind (our {allow} lines except '
        "198.18.0.20)",
        f'{deny}:5: "ALL: 198.18.0.19": overridden for rpcbind: {allow}:3 (ours), read first, '
        "lets 198.18.0.19 reach it (run 'portwarden portmap protect' again to carry the ban "
        "over)",
    )
    text = Report(("tcp",), (), None, view, FirewallView(False, ()), ()).text()
    assert [line for line in text if line.startswith("  ban ")] == [f"  ban {b}" for b in view.bans]
    plan_protect(["198.18.0.16/28"], allow, deny, None).apply()
    assert all(": in effect for rpcbind" in b for b in read_wrappers(allow, deny, RPCBIND).bans)


def test_check_names_each_except_whose_ban_has_ended(tmp_path: Path) -> None:
    """A ban carried over as EXCEPT that ends later (fail2ban's unban, `portwarden unblock`)
    leaves our EXCEPT behind: rpcbind goes on refusing that address until protect runs again."""
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    deny.write_text("ALL: 198.18.0.20\nALL: 198.18.0.21\nALL: 198.18.0.24\nALL: [2001:db8::12]\n")
    plan_protect(["198.18.0.16/28", "2001:db8::10/124"], allow, deny, None).apply()
    assert "EXCEPT 198.18.0.20/255.255.255.254 198.18.0.24 [2001:db8::12]/128" in allow.read_text()
    assert read_wrappers(allow, deny, RPCBIND).stale_excepts == ()
    deny.write_text(deny.read_text().replace("ALL: 198.18.0.21\n", "").replace("ALL: [2001", "#"))
    view = read_wrappers(allow, deny, RPCBIND)
    assert view.stale_excepts == (
        f"{allow}:3: EXCEPT 198.18.0.20/255.255.255.254: 198.18.0.21 of it no longer banned in "
        f"{deny}, but "
        "our line still refuses it rpcbind (run 'portwarden portmap protect' again to drop it)",
        f"{allow}:3: EXCEPT [2001:db8::12]/128: no longer banned in {deny}, but our line still "
        "refuses it rpcbind (run 'portwarden portmap protect' again to drop it)",
    )
    report = Report(("tcp",), (), None, view, FirewallView(False, ()), ())
    text = report.text()
    assert [line for line in text if line.startswith("  stale ")] == [
        f"  stale {s}" for s in view.stale_excepts
    ]
    assert report.as_json()["wrappers"]["stale_excepts"] == view.stale_excepts
    assert report.verdict == "protected"
    plan_protect(["198.18.0.16/28", "2001:db8::10/124"], allow, deny, None).apply()
    assert read_wrappers(allow, deny, RPCBIND).stale_excepts == ()


def _v4_network(word: str) -> ipaddress.IPv4Network:
    """The network a client pattern of our IPv4 rules stands for."""
    network = wrappers.client_network(word)
    assert isinstance(network, ipaddress.IPv4Network), word
    return network


def test_a_network_with_more_bans_than_a_line_holds_is_cut_in_halves() -> None:
    bans = [ipaddress.IPv4Network(f"198.18.{n // 256}.{n % 256}") for n in range(0, 1024, 3)]
    rules = wrappers.allow_rules(allowed_networks(["198.18.0.0/22"]), [*bans, bans[0]])
    assert max(map(len, rules)) <= limits.HOSTS_ALLOW_RULE_LINE_CHARS_MAX and len(rules) > 3
    named = [
        _v4_network(w) for r in rules[1:] for w in r.split(": ", 1)[1].split(" EXCEPT ")[0].split()
    ]
    excepted = [_v4_network(w) for r in rules[1:] for w in r.split(" EXCEPT ")[1].split()]
    assert sorted(excepted) == sorted(bans)  # each once, on the line of the half it is in
    assert list(ipaddress.collapse_addresses(named)) == [ipaddress.ip_network("198.18.0.0/22")]
