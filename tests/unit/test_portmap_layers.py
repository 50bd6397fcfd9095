"""Portmap: what one layer of rules does to another. A ban in hosts.deny against the
administrator's hosts.allow lines (measured with libwrap itself), our firewall rules left by an
earlier protect with another `--firewall`, layers that allow different networks."""

import dataclasses
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden.cli import main
from portwarden.portmap import check, command, firewall, wrappers
from portwarden.portmap.check import FirewallView, Report, disagreements, read_wrappers
from portwarden.portmap.owner import Owner
from portwarden.portmap.protect import Plan, plan_protect

pytestmark = pytest.mark.usefixtures("no_rpcbind_user")

RPCBIND = (Owner(812, "rpcbind", libwrap=True),)
THEIRS = "rpcbind: 198.18.41.0/255.255.255.0"  # the administrator's own allow line


def _files(tmp_path: Path, allow: str, deny: str) -> tuple[Path, Path]:
    paths = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    for path, text in zip(paths, (allow, deny), strict=True):
        path.write_text(text)
    return paths


@pytest.mark.parametrize(
    "theirs",
    [
        THEIRS,
        # libwrap never matches a /255.255.255.255 mask (inet_addr's error value): no EXCEPT
        "rpcbind: ALL EXCEPT 198.18.41.77/255.255.255.255",
    ],
)
def test_a_ban_the_administrators_allow_line_overrides_is_said_to_be_overridden(
    tmp_path: Path, libwrap_allows: Callable[[str], bool], theirs: str
) -> None:
    """Our EXCEPT keeps the banned address off our line, but libwrap reads on and grants it at
    the administrator's line below: protect must not say the ban still refuses it, and check
    must not say it is in effect."""
    allow, deny = _files(tmp_path, f"{theirs}\n", "ALL: 198.18.41.77\n")
    plan = plan_protect(["198.18.41.0/24"], allow, deny, None)
    plan.apply()
    assert "EXCEPT 198.18.41.77" in allow.read_text()
    assert libwrap_allows("198.18.41.77")  # the premise: the ban is not in effect
    assert plan.notes == ()
    lets = (
        f"{allow}:5 ({theirs}), the administrator's line, read before hosts.deny, lets "
        "198.18.41.77 reach rpcbind (add EXCEPT 198.18.41.77 to that line, or narrow it)"
    )
    assert [w for w in plan.warnings if "does not refuse" in w] == [  # ALL: a leak too
        f'{deny}:4: "ALL: 198.18.41.77" does not refuse 198.18.41.77 to rpcbind, though our '
        f"{allow} line excepts it: {lets}",
    ]
    assert read_wrappers(allow, deny, RPCBIND).bans == (
        f'{deny}:4: "ALL: 198.18.41.77": overridden for rpcbind: {lets}',
    )


@pytest.mark.parametrize(
    "theirs",
    [
        f"{THEIRS} EXCEPT 198.18.41.64/255.255.255.192",
        "rpcbind: 198.18.41.77 : deny\nrpcbind: ALL",  # refused by the first line that matches
        "sshd: 198.18.41.0/255.255.255.0",
        "rpcbind?: ALL",
        "rpcbind: 198.18.41.78",
        THEIRS.replace("rpcbind", "portmap"),  # libwrap asks for rpcbind by that name only
        # libwrap compares a pattern in brackets with IPv6 callers only
        "rpcbind: [::ffff:198.18.41.77]",
        "rpcbind: [::ffff:198.18.41.0]/120",
        "rpcbind: [198.18.41.77]",
    ],
)
def test_a_ban_no_allow_line_overrides_is_in_effect(
    tmp_path: Path, libwrap_allows: Callable[[str], bool], theirs: str
) -> None:
    allow, deny = _files(tmp_path, f"{theirs}\n", "ALL: 198.18.41.77\n")
    plan = plan_protect(["198.18.41.0/24"], allow, deny, None)
    plan.apply()
    assert not libwrap_allows("198.18.41.77")  # the premise
    assert [note.done for note in plan.notes] == [
        f'{deny}:4: "ALL: 198.18.41.77" still refuses 198.18.41.77 (carried over to our '
        f"{allow} line as EXCEPT)"
    ]
    assert read_wrappers(allow, deny, RPCBIND).bans == (
        f'{deny}:4: "ALL: 198.18.41.77": in effect for rpcbind (our {allow} lines except '
        "198.18.41.77)",
    )


def test_an_allow_line_that_twists_the_banned_caller_does_not_override_its_ban(
    tmp_path: Path,
) -> None:
    """`twist` hands the caller to its command instead of the daemon: rpcbind never answers it,
    as with `deny`. (Not asked of libwrap here: its hosts_ctl, at a twist, ends the calling
    process.)"""
    theirs = "rpcbind: 198.18.41.77 : twist /bin/echo no\nrpcbind: ALL\n"
    allow, deny = _files(tmp_path, theirs, "ALL: 198.18.41.77\n")
    plan_protect(["198.18.41.0/24"], allow, deny, None).apply()
    assert read_wrappers(allow, deny, RPCBIND).bans == (
        f'{deny}:4: "ALL: 198.18.41.77": in effect for rpcbind (our {allow} lines except '
        "198.18.41.77)",
    )


def test_an_allow_line_by_name_may_override_a_ban(tmp_path: Path) -> None:
    allow, deny = _files(tmp_path, "RPC*: .example.org\n", "ALL: 198.18.41.77\n")
    plan_protect(["198.18.41.0/24"], allow, deny, None).apply()
    [ban] = read_wrappers(allow, deny, RPCBIND).bans
    assert ban.endswith(
        f"overridden for rpcbind: {allow}:5 (RPC*: .example.org), the administrator's line, "
        "read before hosts.deny, may let (by the caller's name) 198.18.41.77 reach rpcbind "
        "(add EXCEPT 198.18.41.77 to that line, or narrow it)"
    )


def test_a_ban_for_a_daemon_pattern_that_matches_rpcbind_is_carried_over(
    tmp_path: Path, libwrap_allows: Callable[[str], bool]
) -> None:
    allow, deny = _files(tmp_path, "", "RPCBIN?: 198.18.41.77\nrpcbind?: 198.18.41.78\n")
    plan = plan_protect(["198.18.41.0/24"], allow, deny, None)
    plan.apply()
    assert [note.done.split(" still")[0] for note in plan.notes] == [
        f'{deny}:4: "RPCBIN?: 198.18.41.77"'
    ]
    assert not libwrap_allows("198.18.41.77")
    assert libwrap_allows("198.18.41.78") and libwrap_allows("198.18.41.79")


@pytest.mark.parametrize(
    ("field", "applies"),
    [
        ("rpcbind", True),
        ("portmap", True),  # the old portmapper's name, which our lines carry too
        ("ALL EXCEPT rpcbind", False),
        ("in.fingerd, rpc*", True),
        ("rpc*@198.18.0.1", True),  # may apply: it depends on the address called
        ("Portmap EXCEPT sshd", True),
        ("sshd EXCEPT rpcbind", False),
    ],
)
def test_which_daemon_lists_apply_to_the_portmapper(field: str, applies: bool) -> None:
    assert wrappers.applies_to_portmapper(f"{field}: ALL") is applies


@pytest.mark.parametrize(
    ("line", "single"),
    [("ALL: 203.0.113.7", True), ("rpc*: 203.0.113.7", False), ("KNOWN: 203.0.113.7", False)],
)
def test_only_a_line_for_all_daemons_counts_as_one_for_single_addresses(
    line: str, single: bool
) -> None:
    assert bool(wrappers.single_addresses(line)) is single


@dataclasses.dataclass
class _Wall:
    """A stand-in firewall that holds our rules (or not) and records what it runs."""

    name: str
    log: list[str]
    ours: bool

    def protect(self, networks: tuple[firewall.Network, ...]) -> list[firewall.Step]:
        return [firewall.Step(self.name, f"add ours to {self.name}\n")]

    def unprotect(self) -> list[firewall.Step]:
        return [firewall.Step(self.name, f"remove ours from {self.name}\n")] if self.ours else []

    def foreign(self, deleted_by: str | None = None) -> str | None:
        return None

    def run(self, step: firewall.Step) -> firewall.Undo:
        self.log.append(step.script.strip())
        return lambda: "put back"


def _walls(monkeypatch: pytest.MonkeyPatch, ours: set[str], missing: str = "") -> list[str]:
    log: list[str] = []

    def make(backend: str) -> _Wall:
        if backend == missing:
            raise firewall.ToolMissing(f"{backend} not found")
        return _Wall(backend, log, backend in ours)

    monkeypatch.setattr(firewall, "firewall", make)
    return log


@pytest.mark.parametrize(
    ("choice", "removed"), [("iptables", ["nft"]), ("nft", ["iptables"]), ("none", ["nft"])]
)
def test_protect_takes_our_rules_out_of_the_firewalls_not_chosen(
    monkeypatch: pytest.MonkeyPatch, choice: firewall.Choice, removed: list[str]
) -> None:
    """protect --firewall nft, then --firewall iptables (or none) with other networks: the
    nftables table would go on dropping what the new --allow lets in."""
    log = _walls(monkeypatch, ours={"nft", "iptables"} if choice == "nft" else {"nft"})
    plan = plan_protect(["198.18.0.20"], None, None, choice)
    added = [] if choice == "none" else [f"add ours to {choice}"]
    assert [step.script.strip() for _, step in plan.steps] == [
        *added,
        *(f"remove ours from {backend}" for backend in removed),
    ]
    where = f"where an earlier protect put them (--firewall {choice} now)"
    assert plan.notes == tuple(
        (
            f"removed our rules from {backend}, {where}",
            f"would remove our rules from {backend}, {where}",
        )
        for backend in removed
    )
    assert "remove ours from" in plan.show()  # --dry-run shows it
    plan.apply()
    assert log == [step.script.strip() for _, step in plan.steps]


def test_protect_passes_over_a_firewall_whose_tool_is_missing_unless_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _walls(monkeypatch, ours=set(), missing="iptables")
    assert [s.script for _, s in plan_protect(["198.18.0.20"], None, None, "nft").steps] == [
        "add ours to nft\n"
    ]
    assert plan_protect(["198.18.0.20"], None, None, "none").steps == ()
    with pytest.raises(firewall.ToolMissing):
        plan_protect(["198.18.0.20"], None, None, "iptables")


def _networks(*texts: str) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(text)) for text in ("127.0.0.0/8", "::1", *texts))


NFT = ("nftables", _networks("198.18.0.16/28"))


@pytest.mark.parametrize(
    ("allowed_by", "in_hosts_allow", "refused", "said"),
    [
        ((NFT,), _networks("198.18.0.16/28"), (), None),
        ((NFT,), _networks("198.18.0.16/28"), ("203.0.113.7/32",), None),  # fail2ban's, outside
        ((NFT, ("iptables", NFT[1])), (), (), None),
        (
            (NFT, ("iptables", _networks("198.18.5.0/24"))),
            (),
            (),
            "our nftables rules refuse 198.18.5.0/24, which our iptables rules allow; our "
            "iptables rules refuse 198.18.0.16/28, which our nftables rules allow",
        ),
        (
            (NFT,),
            _networks("198.18.0.16/28", "198.18.5.0/24"),
            (),
            "our nftables rules refuse 198.18.5.0/24, which our {allow} lines allow",
        ),
        # Our hosts.allow lines leave out what hosts.deny bans (an allowed network's half that
        # is all banned): that is no disagreement, until the ban ends.
        (
            (NFT,),
            _networks("198.18.0.16/29", "198.18.0.24/30", "198.18.0.30/31"),
            ("198.18.0.28/31",),
            None,
        ),
        (
            (NFT,),
            _networks("198.18.0.16/29", "198.18.0.24/30", "198.18.0.30/31"),
            (),
            "our {allow} lines refuse 198.18.0.28/31, which our nftables rules allow",
        ),
    ],
)
def test_check_says_where_our_rules_disagree_and_that_callers_are_locked_out(
    allowed_by: tuple[tuple[str, tuple[str, ...]], ...],
    in_hosts_allow: tuple[str, ...],
    refused: tuple[str, ...],
    said: str | None,
) -> None:
    allow = Path("/etc/hosts.allow")
    view = read_wrappers(Path("/nonexistent/a"), Path("/nonexistent/d"), RPCBIND)
    view = dataclasses.replace(view, allowed=in_hosts_allow, refused=refused)
    wall = FirewallView(True, (), "protects", allowed_by=allowed_by)
    found = disagreements(allow, view, wall)
    report = Report(("tcp",), (), None, view, wall, (), disagreements=found)
    if said is None:
        assert (found, report.verdict) == ((), "protected")
        return
    assert found == (
        "our rules disagree on the networks allowed, and a caller must pass all of them: "
        f"{said.format(allow=allow)} (run 'portwarden portmap protect' again with the --allow "
        "and --firewall meant)",
    )
    assert report.verdict == "locked out"
    assert f"note: {found[0]}" in report.text()
    assert report.as_json()["disagreements"] == found
    unwrapped = dataclasses.replace(view, uses_libwrap=False)  # hosts.allow does not count
    assert bool(disagreements(allow, unwrapped, wall)) is (len(allowed_by) > 1)


def test_the_notes_come_after_the_change_and_a_dry_run_says_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A note says what was done: only once it was; a dry run says what would be."""
    allow, deny = _files(tmp_path, "", "ALL: 198.18.0.20\n")
    monkeypatch.setattr(command, "may_read", lambda: False)  # no firewall is looked at
    args = ["portmap", "protect", "--allow", "198.18.0.16/28", "--firewall", "none"]
    args += ["--hosts-allow", str(allow), "--hosts-deny", str(deny)]
    not_looked_at = f"portwarden: warning: {command.NOT_LOOKED_AT}\n"
    note = f'portmap protect: {deny}:4: "ALL: 198.18.0.20" still refuses 198.18.0.20 ('
    assert main([*args, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{note}would be carried over to our {allow} line as EXCEPT)\n")
    assert err == not_looked_at

    def fail(_: Plan) -> None:
        raise wrappers.WrappersError(f"{allow}: not writable")

    apply = Plan.apply
    monkeypatch.setattr(Plan, "apply", fail)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{not_looked_at}portwarden: error: {allow}: not writable\n")

    monkeypatch.setattr(Plan, "apply", apply)
    assert main(args) == 0
    out, _ = capsys.readouterr()
    assert out == (
        f"{note}carried over to our {allow} line as EXCEPT)\nchanged {allow}\nchanged {deny}\n"
    )


def test_check_text_and_json_carry_the_disagreements(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_report hands the disagreements on, with or without probes."""
    wall = FirewallView(True, (), "protects", allowed_by=(NFT, ("iptables", _networks())))
    monkeypatch.setattr(check, "read_firewall", lambda: wall)
    monkeypatch.setattr(check, "bound_ports", lambda _: {111})
    monkeypatch.setattr(check, "_local_programs", lambda _: ((), None, False))
    monkeypatch.setattr(check, "port_owners", lambda _: RPCBIND)
    report = check.build_report(Path("/nonexistent/a"), Path("/nonexistent/d"), None, None, 1)
    assert report.verdict == "locked out"
    assert report.disagreements[0].startswith(
        "our rules disagree on the networks allowed, and a caller must pass all of them: our "
        "iptables rules refuse 198.18.0.16/28, which our nftables rules allow"
    )
