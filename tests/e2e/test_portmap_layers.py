"""`portwarden portmap` against a real rpcbind: what libwrap really does with daemon patterns,
with a ban in hosts.deny that an allow line lets in, and with the NULL call; and our rules in
two layers (firewalls, hosts.allow) that allow different networks.

The lab as in test_portmap.py: ALLOW holds the client (.20, ::14), not the attackers (.11-.13,
::b-::d), nor the target's own 198.18.0.1.
"""

from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.test_portmap import (
    ALLOW,
    REACHABLE,
    outcomes,
    reachability,
    rpcinfo_lists_program,
    run_ok,
)
from tests.lab.portmapper import PROGRAM, Portmapper

SILENT = {"tcp": "silent", "udp": "silent"}
ATTACKERS = ["--allow", "198.18.0.8/29"]  # .8-.15: the attackers' IPv4 addresses
_NOT_IN_FORCE = "the administrator's line, read before hosts.deny, lets"


def checked(portmapper: Portmapper, *args: str) -> tuple[int, list[str]]:
    result = portmapper.portwarden("portmap", "check", "--timeout", "1", *args)
    return result.returncode, result.stdout.splitlines()


def test_daemon_patterns_count_as_libwrap_matches_them(lab: Lab, portmapper: Portmapper) -> None:
    """`RPCBIN?` in hosts.deny bans the client for rpcbind (carried over as EXCEPT); `rpc*: ALL`
    in hosts.allow then lets every caller in, the banned client too: libwrap matches daemon
    names with wildcards, case ignored. protect and check said "protected" and "in effect"."""
    client, attacker, target = lab.client, lab.attackers[0], lab.target
    portmapper.append("hosts.deny", f"RPCBIN?: {client.ipv4}\n")
    said = run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    ban = f'/etc/hosts.deny:6: "RPCBIN?: {client.ipv4}"'
    assert f"portmap protect: {ban} still refuses {client.ipv4} (carried over" in said
    assert not rpcinfo_lists_program(client, target.ipv4)
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")
    status, lines = checked(portmapper)
    assert (status, lines[-1]) == (0, "verdict: protected")
    assert f"  ban {ban}: in effect for rpcbind (our /etc/hosts.allow lines except " in "\n".join(
        lines
    )

    portmapper.append("hosts.allow", "rpc*: ALL\n")
    assert rpcinfo_lists_program(attacker, target.ipv4)  # the premise: what libwrap does
    assert rpcinfo_lists_program(client, target.ipv4)
    status, lines = checked(portmapper, "--from", target.ipv4)
    assert (status, lines[-1]) == (1, "verdict: exposed"), lines
    leak = "/etc/hosts.allow:7 (rpc*: ALL) lets callers outside the allowed networks reach"
    assert "wrappers: does not protect it alone" in lines and leak in "\n".join(lines)
    assert (
        f"  ban {ban}: overridden for rpcbind: /etc/hosts.allow:7 (rpc*: ALL), {_NOT_IN_FORCE} "
        f"{client.ipv4} reach rpcbind (add EXCEPT {client.ipv4} to that line, or narrow it)"
    ) in lines
    again = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    assert again.returncode == 0 and leak in again.stderr, again.stderr
    assert f"{ban} does not refuse {client.ipv4} to rpcbind" in again.stderr


def test_a_ban_the_administrators_allow_line_lets_in_is_not_said_to_hold(
    lab: Lab, tmp_path: Path
) -> None:
    """hosts.allow `rpcbind: 198.18.0.0/255.255.255.0` (theirs), hosts.deny `ALL: <attacker>`:
    our line excepts the attacker, and libwrap grants it at their line below ours."""
    attacker, target = lab.attackers[0], lab.target
    theirs = "rpcbind: 198.18.0.0/255.255.255.0"
    deny = f"ALL: {attacker.ipv4}\n"
    portmapper = Portmapper(target, tmp_path, f"{theirs}\n".encode(), deny.encode())
    try:
        result = portmapper.portwarden(
            "portmap", "protect", "--allow", "198.18.0.0/24", "--firewall", "none"
        )
        assert result.returncode == 0, result.stderr
        assert "still refuses" not in result.stdout
        assert rpcinfo_lists_program(attacker, target.ipv4)  # the premise: not in force
        where = (
            f"/etc/hosts.allow:5 ({theirs}), {_NOT_IN_FORCE} {attacker.ipv4} reach rpcbind (add "
            f"EXCEPT {attacker.ipv4} to that line, or narrow it)"
        )
        ban = f'/etc/hosts.deny:4: "ALL: {attacker.ipv4}"'
        assert result.stderr == (
            f"portwarden: warning: {ban} does not refuse {attacker.ipv4} to rpcbind, though our "
            f"/etc/hosts.allow line excepts it: {where}\n"
        )
        _, lines = checked(portmapper)
        assert f"  ban {ban}: overridden for rpcbind: {where}" in lines
    finally:
        portmapper.stop()


def test_an_allow_line_for_portmap_alone_does_not_let_a_banned_caller_in(
    lab: Lab, tmp_path: Path
) -> None:
    """hosts.allow `portmap: 198.18.0.0/255.255.255.0` (theirs), hosts.deny `ALL: <attacker>`:
    rpcbind asks libwrap under its own name only, so that line lets no one in, and the ban
    holds (protect warned that it did not, and check said it was overridden)."""
    attacker, target = lab.attackers[0], lab.target
    deny = f"ALL: {attacker.ipv4}\n"
    portmapper = Portmapper(target, tmp_path, b"portmap: 198.18.0.0/255.255.255.0\n", deny.encode())
    try:
        result = portmapper.portwarden(
            "portmap", "protect", "--allow", "198.18.0.0/24", "--firewall", "none"
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr
        ban = f'/etc/hosts.deny:4: "ALL: {attacker.ipv4}"'
        assert f"{ban} still refuses {attacker.ipv4} (carried over" in result.stdout
        assert not rpcinfo_lists_program(attacker, target.ipv4)  # the premise: in force
        _, lines = checked(portmapper)
        assert f"  ban {ban}: in effect for rpcbind (our /etc/hosts.allow lines except " in (
            "\n".join(lines)
        )
    finally:
        portmapper.stop()


def test_protect_with_another_firewall_takes_our_rules_out_of_the_first(
    lab: Lab, portmapper: Portmapper
) -> None:
    """protect (nftables), then protect --firewall iptables that also allows the attackers'
    network: the nftables table stayed and went on dropping them, without a word. Then
    --firewall none: no firewall rules of ours are left."""
    run_ok(portmapper, "protect", *ALLOW, "--no-wrappers")
    assert reachability(lab, 4) == (REACHABLE, SILENT)
    moved = ["protect", *ATTACKERS, *ALLOW, "--firewall", "iptables", "--no-wrappers"]
    where = "where an earlier protect put them (--firewall iptables now)"
    shown = run_ok(portmapper, *moved, "--dry-run")
    assert shown.startswith(f"portmap protect: would remove our rules from nftables, {where}\n")
    assert "# nft\ndelete table inet portwarden_portmap\n" in shown
    tables = ["nft", "list", "tables"]
    assert "portwarden_portmap" in lab.target.run(tables).stdout

    assert run_ok(portmapper, *moved) == (
        f"portmap protect: removed our rules from nftables, {where}\n"
        "ran iptables-restore --noflush\nran ip6tables-restore --noflush\nran nft\n"
    )
    assert "portwarden_portmap" not in lab.target.run(tables).stdout
    assert reachability(lab, 4) == (REACHABLE, REACHABLE)
    assert reachability(lab, 6) == (REACHABLE, SILENT)  # iptables' rules hold
    status, lines = checked(portmapper)
    assert (status, lines[-1]) == (0, "verdict: protected"), lines

    none = run_ok(portmapper, "protect", *ATTACKERS, *ALLOW, "--firewall", "none", "--no-wrappers")
    assert none.startswith(
        "portmap protect: removed our rules from iptables, where an earlier protect put them "
        "(--firewall none now)\n"
    )
    assert reachability(lab, 6) == (REACHABLE, REACHABLE)
    assert "PORTWARDEN_PORTMAP" not in lab.target.run(["iptables", "-S"]).stdout


def _older_iptables_chain(lab: Lab) -> None:
    """Our iptables chain as an older portwarden's protect --firewall iptables left it beside
    our nftables table: allowing the attackers' networks and loopback only."""
    for tool, sources in (("iptables", "127.0.0.0/8 198.18.0.8/29"), ("ip6tables", "::1/128")):
        returns = [f"-A PORTWARDEN_PORTMAP -s {s} -j RETURN" for s in sources.split()]
        drops = [f"-A PORTWARDEN_PORTMAP -p {p} -m {p} --dport 111 -j DROP" for p in ("tcp", "udp")]
        script = ["*filter", ":PORTWARDEN_PORTMAP - [0:0]", *returns, *drops]
        script += ["-I INPUT 1 -j PORTWARDEN_PORTMAP", "COMMIT", ""]
        lab.target.run([f"{tool}-restore", "--noflush"], input="\n".join(script))


def test_check_says_where_our_rules_disagree_and_the_callers_are_locked_out(
    lab: Lab, portmapper: Portmapper
) -> None:
    """protect, then protect --no-wrappers with other networks: hosts.allow lets the client in,
    our nftables rules drop it (and the reverse for the attackers); then our rules in both
    firewalls with different networks. check said "protected"."""
    client, attacker = lab.client, lab.attackers[0]
    run_ok(portmapper, "protect", *ALLOW)
    run_ok(portmapper, "protect", *ATTACKERS, "--allow", "2001:db8::10/124", "--no-wrappers")
    assert outcomes(client, client.ipv4, lab.target.ipv4) == SILENT  # locked out, for real
    refused = {"tcp": "refused", "udp": "refused"}
    assert outcomes(attacker, attacker.ipv4, lab.target.ipv4) == refused
    status, lines = checked(portmapper)
    assert (status, lines[-1]) == (4, "verdict: locked out"), lines
    assert (
        "note: our rules disagree on the networks allowed, and a caller must pass all of them: "
        "our nftables rules refuse 198.18.0.16/28, which our /etc/hosts.allow lines allow; our "
        "/etc/hosts.allow lines refuse 198.18.0.8/29, which our nftables rules allow (run "
        "'portwarden portmap protect' again with the --allow and --firewall meant)"
    ) in lines

    run_ok(portmapper, "protect", *ALLOW)
    _older_iptables_chain(lab)
    assert outcomes(client, client.ipv4, lab.target.ipv4) == SILENT
    status, lines = checked(portmapper)
    assert (status, lines[-1]) == (4, "verdict: locked out"), lines
    [note] = [line for line in lines if line.startswith("note: our rules disagree")]
    assert (
        "our nftables rules refuse 198.18.0.8/29, which our iptables rules allow; our iptables "
        "rules refuse 198.18.0.16/28 2001:db8::10/124, which our nftables rules allow"
    ) in note
    run_ok(portmapper, "protect", *ALLOW)  # takes our rules out of iptables
    assert outcomes(client, client.ipv4, lab.target.ipv4) == REACHABLE
    status, lines = checked(portmapper)
    assert (status, lines[-1]) == (0, "verdict: protected"), lines


def test_wrappers_alone_answer_the_null_call_and_refuse_every_other(
    lab: Lab, portmapper: Portmapper
) -> None:
    """What README says of Debian's rpcbind with TCP Wrappers, measured: to a denied caller it
    answers NULL (procedure 0) in every version over TCP and UDP, and refuses DUMP (versions 2,
    3, 4), GETPORT, GETADDR, GETADDRLIST and GETSTAT with an authentication error."""
    attacker, target = lab.attackers[0], lab.target
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    for netid, address in (
        ("tcp", target.ipv4),
        ("udp", target.ipv4),
        ("tcp6", target.ipv6),
        ("udp6", target.ipv6),
    ):
        for version in ("2", "3", "4"):
            null = ["rpcinfo", "-a", f"{address}.0.111", "-T", netid, "100000", version]
            result = attacker.run(null, check=False, timeout=30)
            assert result.stdout == f"program 100000 version {version} ready and waiting\n"
    host = target.ipv4
    for args in (
        ["-p", host],  # DUMP, version 2
        [host],  # DUMP, version 4 then 3
        ["-u", host, "100000", "2"],  # GETPORT, then NULL
        ["-T", "tcp", host, str(PROGRAM), "1"],  # GETADDR
        ["-l", host, str(PROGRAM), "1"],  # GETADDRLIST
        ["-m", host],  # GETSTAT
    ):
        result = attacker.run(["rpcinfo", *args], check=False, timeout=30)
        assert result.returncode == 1 and "Authentication error" in result.stderr, args
    assert rpcinfo_lists_program(lab.client, host)
