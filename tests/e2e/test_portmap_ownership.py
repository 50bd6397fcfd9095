"""`portwarden portmap`: our nftables table and iptables chain are ours alone. What an
administrator adds there by hand is named in one warning line before protect replaces the
chain's rules or unprotect deletes the table; and `--allow` takes hosts.allow's own IPv6 form,
`[2001:db8::10]/124`."""

import re

from portwarden.lab.network import Lab
from tests.lab.portmapper import Portmapper

ALLOW = ["--allow", "198.18.0.16/255.255.255.240", "--allow", "[2001:db8::10]/124"]
TABLE = "portwarden_portmap"
CHAIN = "PORTWARDEN_PORTMAP"


def warnings(portmapper: Portmapper, *args: str) -> list[str]:
    result = portmapper.portwarden("portmap", *args, "--no-wrappers")
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("portwarden: warning:")]


def test_what_was_added_to_our_nftables_table_is_named_before_it_goes(
    lab: Lab, portmapper: Portmapper
) -> None:
    target = lab.target
    assert warnings(portmapper, "protect", *ALLOW, "--firewall", "nft") == []
    listing = target.run(["nft", "list", "table", "inet", TABLE]).stdout
    assert "ip6 saddr != { ::1, 2001:db8::10/124 }" in listing  # the bracketed form, taken
    target.run(["nft", "add", "rule", "inet", TABLE, "input", "tcp", "dport", "22", "accept"])
    target.run(["nft", "add", "chain", "inet", TABLE, "mine"])
    [warning] = warnings(portmapper, "protect", *ALLOW, "--firewall", "nft")
    assert re.fullmatch(
        rf"portwarden: warning: nftables table inet {TABLE} holds what portwarden did not put "
        r"there \(chain mine; rule handle \d+ in chain input\): the table is portwarden's "
        "alone, protect replaces its chain's rules and unprotect deletes it; keep your own "
        "rules in a table of your own",
        warning,
    )
    assert "dport 22" not in target.run(["nft", "list", "table", "inet", TABLE]).stdout
    [warning] = warnings(portmapper, "unprotect", "--firewall", "nft")
    assert "(chain mine)" in warning
    assert TABLE not in target.run(["nft", "list", "tables"]).stdout
    assert warnings(portmapper, "protect", *ALLOW, "--firewall", "nft") == []  # ours alone


def test_a_rule_added_to_our_iptables_chain_is_named_before_it_goes(
    lab: Lab, portmapper: Portmapper
) -> None:
    target = lab.target
    assert warnings(portmapper, "protect", *ALLOW, "--firewall", "iptables") == []
    target.run(["iptables", "-A", CHAIN, "-p", "tcp", "--dport", "22", "-j", "ACCEPT"])
    [warning] = warnings(portmapper, "unprotect", "--firewall", "iptables")
    assert (
        f"chain {CHAIN} holds what portwarden did not put there (iptables: -A {CHAIN} -p "
        "tcp -m tcp --dport 22 -j ACCEPT): the chain is portwarden's alone, protect replaces "
        "its rules and unprotect deletes it; keep your own rules in a chain of your own"
    ) in warning


def test_a_protect_that_deletes_our_iptables_chain_says_it_goes_with_a_rule_added_there(
    lab: Lab, portmapper: Portmapper
) -> None:
    """`protect --firewall nft` after `--firewall iptables` takes our chain out, with a rule
    added there by hand: the warning says so (it said that protect replaces the chain's rules,
    as if the rule stayed)."""
    target = lab.target
    assert warnings(portmapper, "protect", *ALLOW, "--firewall", "iptables") == []
    target.run(["iptables", "-A", CHAIN, "-p", "tcp", "--dport", "22", "-j", "ACCEPT"])
    [warning] = warnings(portmapper, "protect", *ALLOW, "--firewall", "nft")
    assert warning.endswith(
        f"(iptables: -A {CHAIN} -p tcp -m tcp --dport 22 -j ACCEPT): the chain is portwarden's "
        "alone, and protect --firewall nft deletes it, with all it holds; keep your own rules "
        "in a chain of your own"
    )
    assert target.run(["iptables", "-S", CHAIN], check=False).returncode != 0
    assert warnings(portmapper, "unprotect", "--firewall", "nft") == []
