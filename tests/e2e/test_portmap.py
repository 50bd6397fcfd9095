"""`portwarden portmap`: a real rpcbind, a client inside the allowed network, one outside.

Allowed: 198.18.0.16/255.255.255.240 and 2001:db8::10/124, which hold the client (.20, ::14)
but not the attackers (.11, ::b). The target's own 198.18.0.1 is outside as well, so `check
--from 198.18.0.1` probes as an outsider over the target's loopback interface.
"""

import json
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from portwarden.portmap.check import UNKNOWN_FIREWALL
from tests.lab.acl import mode_600_and_reader
from tests.lab.isolated import NEW_MOUNTS
from tests.lab.portmapper import HOSTS_ALLOW, HOSTS_DENY, PROGRAM, Portmapper, StandIn

ALLOW = ["--allow", "198.18.0.16/255.255.255.240", "--allow", "2001:db8::10/124"]


def rpcinfo_lists_program(host: Host, target: str) -> bool:
    """An independent client: Debian's rpcinfo -p (PMAPPROC_DUMP over TCP)."""
    result = host.run(["rpcinfo", "-p", target], check=False, timeout=30)
    return result.returncode == 0 and str(PROGRAM) in result.stdout


def outcomes(host: Host, source: str, target: str) -> dict[str, str]:
    """Our own probe, run on `host`: {'tcp': outcome, 'udp': outcome}."""
    result = host.run(
        [
            sys.executable,
            "-m",
            "portwarden",
            "portmap",
            "check",
            "--json",
            "--from",
            source,
            "--to",
            target,
            "--timeout",
            "1",
        ],
        check=False,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    return {p["proto"]: p["outcome"] for p in json.loads(result.stdout)["probes"]}


REACHABLE = {"tcp": "reachable", "udp": "reachable"}


def link_local(host: Host) -> str:
    """The host's link-local address on eth0 with its device (`fe80::...%eth0`), once it has
    passed duplicate address detection (a tentative address cannot be bound)."""
    deadline = time.monotonic() + 10
    while True:
        shown = host.run(["ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link"])
        found = [a for i in json.loads(shown.stdout) for a in i["addr_info"] if "local" in a]
        if found and not found[0].get("tentative"):
            return f"{found[0]['local']}%eth0"
        assert time.monotonic() < deadline, f"no usable link-local address: {shown.stdout}"
        time.sleep(0.1)


def reachability(lab: Lab, family: int) -> tuple[dict[str, str], dict[str, str]]:
    """(client's outcomes, attacker's outcomes) towards the target over IPv4 or IPv6."""
    attacker = lab.attackers[0]
    pick = (lambda h: h.ipv4) if family == 4 else (lambda h: h.ipv6)
    target = pick(lab.target)
    return outcomes(lab.client, pick(lab.client), target), outcomes(
        attacker, pick(attacker), target
    )


def files(portmapper: Portmapper) -> tuple[bytes | None, bytes | None]:
    return portmapper.read("hosts.allow"), portmapper.read("hosts.deny")


def run_ok(portmapper: Portmapper, *args: str) -> str:
    result = portmapper.portwarden("portmap", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_wrappers_alone_let_the_client_in_and_refuse_the_outsider(
    lab: Lab, portmapper: Portmapper
) -> None:
    attacker = lab.attackers[0]
    for family in (4, 6):
        assert reachability(lab, family) == (REACHABLE, REACHABLE)
    assert rpcinfo_lists_program(attacker, lab.target.ipv4)
    # Link-local, with the device bound to and connected on: outside the allowed networks.
    near, target_near = link_local(attacker), link_local(lab.target)
    assert outcomes(attacker, near, target_near) == REACHABLE
    before = files(portmapper)

    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    allow, deny = files(portmapper)
    assert allow is not None and deny is not None
    assert allow.endswith(HOSTS_ALLOW) and deny.endswith(HOSTS_DENY)
    refused = {"tcp": "refused", "udp": "refused"}
    for family in (4, 6):
        assert reachability(lab, family) == (REACHABLE, refused)
    assert outcomes(attacker, near, target_near) == refused
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)
    assert not rpcinfo_lists_program(attacker, lab.target.ipv4)
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")  # loopback is always allowed
    assert rpcinfo_lists_program(lab.target, "::1")
    check = portmapper.portwarden("portmap", "check", "--from", lab.target.ipv4)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "probe: tcp from 198.18.0.1 to 198.18.0.1 port 111: refused" in check.stdout
    assert "wrappers: protects the portmapper" in check.stdout
    mapped = (
        f"rpcbind uses TCP Wrappers: libwrap.so is mapped by pid {portmapper.proc.pid} (rpcbind)"
    )
    assert f"\n  {mapped}\n" in check.stdout
    here = portmapper.portwarden("portmap", "check", "--from", target_near)
    assert here.returncode == 0, here.stdout + here.stderr
    assert f"probe: udp from {target_near} to {target_near} port 111: refused" in here.stdout

    run_ok(portmapper, "unprotect", "--firewall", "none")
    assert files(portmapper) == before
    assert reachability(lab, 4) == (REACHABLE, REACHABLE)


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_firewall_alone_drops_the_outsider(lab: Lab, portmapper: Portmapper, backend: str) -> None:
    before = files(portmapper)
    run_ok(portmapper, "protect", *ALLOW, "--firewall", backend, "--no-wrappers")
    assert files(portmapper) == before
    silent = {"tcp": "silent", "udp": "silent"}
    for family in (4, 6):
        assert reachability(lab, family) == (REACHABLE, silent)
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")
    check = portmapper.portwarden("portmap", "check", "--from", lab.target.ipv4, "--timeout", "1")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "firewall: protects the portmapper" in check.stdout

    run_ok(portmapper, "unprotect", "--firewall", backend, "--no-wrappers")
    assert reachability(lab, 4) == (REACHABLE, REACHABLE)
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout
    assert "PORTWARDEN_PORTMAP" not in lab.target.run(["iptables", "-S"]).stdout


def test_check_reports_exposed_then_protected(lab: Lab, portmapper: Portmapper) -> None:
    exposed = portmapper.portwarden("portmap", "check", "--json", "--from", lab.target.ipv4)
    assert exposed.returncode == 1, exposed.stderr
    report = json.loads(exposed.stdout)
    assert report["verdict"] == "exposed" and report["listening"] == ["tcp", "udp"]
    assert {
        "prog": PROGRAM,
        "name": f"RPC_{PROGRAM}",
        "vers": 1,
        "proto": 6,
        "port": 4711,
    } in report["programs"]
    assert {"prog": 100000, "name": "portmapper", "vers": 2, "proto": 6, "port": 111} in report[
        "programs"
    ]
    assert portmapper.portwarden("portmap", "check").returncode == 1
    not_local = portmapper.portwarden("portmap", "check", "--from", "198.18.0.99")
    assert (not_local.returncode, not_local.stderr) == (
        2,
        'portwarden: error: --from: "198.18.0.99": not an address of this host\n',
    )

    run_ok(portmapper, "protect", *ALLOW)
    protected = portmapper.portwarden(
        "portmap", "check", "--json", "--from", lab.target.ipv6, "--timeout", "1"
    )
    report = json.loads(protected.stdout)
    assert protected.returncode == 0 and report["verdict"] == "protected", protected.stdout
    assert report["wrappers"]["protected"] and report["firewall"]["protected"]
    assert {p["outcome"] for p in report["probes"]} == {"silent"}
    assert portmapper.portwarden("portmap", "check").returncode == 0


def test_check_counts_fail2bans_lines_instead_of_listing_them(
    lab: Lab, portmapper: Portmapper
) -> None:
    """fail2ban's `ALL: <address>` lines in hosts.deny: counted in the text, all in --json; a
    line for the address probed from is shown."""
    run_ok(portmapper, "protect", *ALLOW)
    bans = [f"ALL: 203.0.113.{n}" for n in range(1, 251)]
    bans += [f"ALL: [2001:db8:99::{n:x}]" for n in range(1, 151)]
    lines = "".join(f"{line}\n" for line in [*bans, f"ALL: {lab.target.ipv4}"])
    portmapper.append("hosts.deny", lines)
    check = ["check", "--from", lab.target.ipv4, "--timeout", "1"]
    text = run_ok(portmapper, *check)
    assert "  and 400 other lines for single addresses (`ALL: <address>`" in text, text
    assert f": ALL: {lab.target.ipv4}\n" in text and "203.0.113." not in text
    assert text.endswith("verdict: protected\n") and len(text.splitlines()) < 40, text
    wrappers = json.loads(run_ok(portmapper, *check, "--json"))["wrappers"]
    assert [
        wrappers["lines"][n].split(": ", 1)[1] for n in wrappers["single_address_lines"]
    ] == bans


def test_dry_run_changes_nothing_and_protect_is_idempotent(
    lab: Lab, portmapper: Portmapper
) -> None:
    before = files(portmapper)
    shown = run_ok(portmapper, "protect", *ALLOW, "--dry-run")
    assert (
        "+rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128\n"
        "+rpcbind portmap: 198.18.0.16/255.255.255.240 [2001:db8::10]/124\n"
    ) in shown
    assert "add table inet portwarden_portmap" in shown
    assert files(portmapper) == before
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout

    assert "ran nft" in run_ok(portmapper, "protect", *ALLOW)
    after = files(portmapper)
    ruleset = lab.target.run(["nft", "list", "table", "inet", "portwarden_portmap"]).stdout
    assert run_ok(portmapper, "protect", *ALLOW) == "portmap protect: nothing to change\n"
    assert files(portmapper) == after
    assert lab.target.run(["nft", "list", "table", "inet", "portwarden_portmap"]).stdout == ruleset

    shown = run_ok(portmapper, "unprotect", "--dry-run")
    assert "-rpcbind portmap: ALL" in shown and "delete table inet portwarden_portmap" in shown
    run_ok(portmapper, "unprotect")
    assert files(portmapper) == before
    assert run_ok(portmapper, "unprotect") == "portmap unprotect: nothing to change\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allow", "portmap.example.org"], '--allow: "portmap.example.org": '),
        (["--allow", "198.18.0.16/33"], '--allow: "198.18.0.16/33": prefix /33'),
        (["--allow", "198.18.0.16/255.0.255.0"], "not contiguous"),
        (["--allow", "198.18.0.20", "--hosts-deny", "/nonexistent/hosts.deny"], "does not exist"),
        (["--allow", "198.18.0.20", "--hosts-deny", "/etc/linked.deny"], "symbolic link"),
        (
            ["--allow", "0.0.0.0/0", "--allow", "::/0"],
            '--allow: "0.0.0.0/0": allows every address: the portmapper would not be protected',
        ),
        (
            ["--allow", "0.0.0.0/1", "--allow", "128.0.0.0/1"],
            '--allow: "0.0.0.0/1, 128.0.0.0/1": together they allow every address (0.0.0.0/0)',
        ),
        (["--allow", "fe80::1%eth0"], '--allow: "fe80::1%eth0": a scope (%device) has no place'),
        (
            ["--allow", "198.18.0.20", "--hosts-allow", "/etc/fifo.allow"],
            "/etc/fifo.allow is not a regular file; refusing to read it",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    lab: Lab, portmapper: Portmapper, args: list[str], message: str
) -> None:
    subprocess.run(portmapper._inside(["ln", "-s", "hosts.deny", "/etc/linked.deny"]), check=True)
    subprocess.run(portmapper._inside(["mkfifo", "/etc/fifo.allow"]), check=True)
    before = files(portmapper)
    result = portmapper.portwarden("portmap", "protect", *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert files(portmapper) == before
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout


def test_a_long_allow_list_keeps_loopback_in(lab: Lab, portmapper: Portmapper) -> None:
    """200 hosts: on one line, 2 600 characters, which libwrap skips, and `ALL` in hosts.deny
    then refuses everyone, loopback included."""
    hosts = [f"198.18.{n // 100 + 1}.{n % 100 * 2 + 1}" for n in range(200)] + [lab.client.ipv4]
    before = files(portmapper)
    run_ok(portmapper, "protect", *(f"--allow={h}" for h in hosts), "--firewall", "none")
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")
    assert rpcinfo_lists_program(lab.target, "::1")
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)
    assert not rpcinfo_lists_program(lab.attackers[0], lab.target.ipv4)
    allow = (portmapper.read("hosts.allow") or b"").decode().splitlines()
    assert allow[1] == "rpcbind portmap: 127.0.0.0/255.0.0.0 [::1]/128"
    assert len(allow) > 5 and max(map(len, allow)) <= 1000
    run_ok(portmapper, "unprotect", "--firewall", "none")
    assert files(portmapper) == before


def iptables_rules(host: Host) -> tuple[str, str]:
    return host.run(["iptables", "-S"]).stdout, host.run(["ip6tables", "-S"]).stdout


def test_iptables_changes_both_families_or_neither(lab: Lab, portmapper: Portmapper) -> None:
    target = lab.target
    own_rule = ["INPUT", "-s", "198.18.0.99", "-j", "ACCEPT"]  # the administrator's
    target.run(["iptables", "-A", *own_rule])
    try:
        # ip6tables cannot make our chain: a base chain of that name is in its table already.
        target.run(
            [
                "nft",
                "add table ip6 filter; add chain ip6 filter PORTWARDEN_PORTMAP "
                "{ type filter hook output priority 0; }",
            ]
        )
        before = files(portmapper), iptables_rules(target)
        failed = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "iptables")
        assert (files(portmapper), iptables_rules(target)) == before
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
        assert failed.stderr.startswith(
            "portwarden: error: iptables was put back as it was; /etc/hosts.deny was put back as "
            "it was; /etc/hosts.allow was put back as it was, after ip6tables-restore: "
        )

        target.run(["nft", "delete", "table", "ip6", "filter"])
        run_ok(portmapper, "protect", *ALLOW, "--firewall", "iptables")
        # Someone's ip6tables chain jumps to ours, so ip6tables cannot delete it.
        target.run(["ip6tables", "-N", "HOLDER"])
        target.run(["ip6tables", "-A", "HOLDER", "-j", "PORTWARDEN_PORTMAP"])
        protected = files(portmapper), iptables_rules(target)
        assert protected[1][0].index("-A INPUT -j PORTWARDEN_PORTMAP") < protected[1][0].index(
            "-A INPUT -s 198.18.0.99/32 -j ACCEPT"
        )
        failed = portmapper.portwarden("portmap", "unprotect", "--firewall", "iptables")
        assert (files(portmapper), iptables_rules(target)) == protected
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
        assert failed.stderr.startswith(
            "portwarden: error: iptables was put back as it was; /etc/hosts.allow was put back as "
            "it was; /etc/hosts.deny was put back as it was, after ip6tables-restore: "
        )
        assert reachability(lab, 4) == (REACHABLE, {"tcp": "silent", "udp": "silent"})
    finally:
        target.run(["ip6tables", "-F", "HOLDER"], check=False)
        target.run(["ip6tables", "-X", "HOLDER"], check=False)
        target.run(["nft", "delete", "table", "ip6", "filter"], check=False)
        target.run(["iptables", "-D", *own_rule], check=False)


def portwarden_on(host: Host, *args: str) -> subprocess.CompletedProcess:
    """`portwarden ARGS` in `host` with a /run of its own: the lock protect takes there never
    touches the machine's."""
    private_run = 'mount -t tmpfs tmpfs /run && exec "$0" "$@"'
    command = [*NEW_MOUNTS, "sh", "-c", private_run]
    return host.run([*command, sys.executable, "-m", "portwarden", *args], check=False, timeout=60)


def test_check_counts_the_wrappers_only_if_the_portmapper_uses_them(
    lab: Lab, portmapper: Portmapper, tmp_path: Path
) -> None:
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    with_libwrap = portmapper.portwarden("portmap", "check", "--json")
    report = json.loads(with_libwrap.stdout)
    assert (with_libwrap.returncode, report["verdict"]) == (0, "protected"), with_libwrap.stdout

    # The same files, and on port 111 a process without libwrap: the files protect nothing.
    host = lab.attackers[1]
    paths = [
        "--hosts-allow",
        str(tmp_path / "hosts.allow"),
        "--hosts-deny",
        str(tmp_path / "hosts.deny"),
    ]
    assert (
        portwarden_on(host, "portmap", "protect", *ALLOW, "--firewall", "none", *paths).returncode
        == 0
    )
    stand_in = StandIn(host)
    try:
        without = portwarden_on(host, "portmap", "check", "--json", "--timeout", "0.2", *paths)
        text = portwarden_on(host, "portmap", "check", "--timeout", "0.2", *paths)
    finally:
        stand_in.stop()
    assert (without.returncode, json.loads(without.stdout)["verdict"]) == (1, "exposed")
    assert (text.returncode, text.stdout.splitlines()[-1]) == (1, "verdict: exposed")

    wrappers = report["wrappers"]
    owner = {"pid": portmapper.proc.pid, "name": "rpcbind", "libwrap": True}
    assert (wrappers["owners"], wrappers["uses_libwrap"], wrappers["note"]) == (
        [owner],
        True,
        f"rpcbind uses TCP Wrappers: libwrap.so is mapped by pid {owner['pid']} (rpcbind)",
    )
    wrappers = json.loads(without.stdout)["wrappers"]
    assert (wrappers["protected"], wrappers["in_files"], wrappers["uses_libwrap"]) == (
        False,
        True,
        False,
    )
    pid = stand_in.proc.pid
    assert [(o["pid"], o["libwrap"]) for o in wrappers["owners"]] == [(pid, False)]
    note = f"rpcbind does not use TCP Wrappers: no libwrap.so in the memory map of pid {pid} "
    assert wrappers["note"].startswith(note)
    assert f"wrappers: does not protect it alone\n  {note}" in text.stdout


def test_bad_timeout_is_refused_before_any_probe(lab: Lab, portmapper: Portmapper) -> None:
    """A timeout of 0 used to give up on both probes before sending them: "protected"."""
    for value in ("0", "-1", "nan", "inf", "61"):
        result = portmapper.portwarden(
            "portmap", "check", "--from", lab.target.ipv4, f"--timeout={value}"
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f'portwarden: error: --timeout: "{value}": must be a number of seconds from 0.1 to 60\n'
        )


def test_an_administrators_allow_line_that_defeats_ours_is_named(
    lab: Lab, portmapper: Portmapper
) -> None:
    """TCP Wrappers grant at the first hosts.allow line that matches: `rpcbind: ALL` below our
    block lets every caller in. protect warns about it with its file and line, check names it,
    and an outsider really gets in. A line for a client inside the allowed networks is fine."""
    subprocess.run(
        portmapper._inside(
            ["sh", "-c", "printf 'rpcbind: 198.18.0.20\\nrpcbind: ALL\\n' >> /etc/hosts.allow"]
        ),
        check=True,
    )
    result = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    assert result.returncode == 0, result.stderr
    line = 7  # 4 lines of our block, then the lab's 2 lines, then the 2 added
    leak = (
        f"/etc/hosts.allow:{line + 1} (rpcbind: ALL) lets callers outside the allowed "
        "networks reach the portmapper (TCP Wrappers follow the first line that matches)"
    )
    assert result.stderr == (
        f"portwarden: warning: {leak}; our lines do not protect it until "
        "that line is removed or narrowed\n"
    )
    assert rpcinfo_lists_program(lab.attackers[0], lab.target.ipv4)  # the premise
    check = portmapper.portwarden("portmap", "check", "--json", "--from", lab.target.ipv4)
    report = json.loads(check.stdout)
    assert (check.returncode, report["verdict"]) == (1, "exposed")
    wrappers = report["wrappers"]
    assert (wrappers["protected"], wrappers["leaks"]) == (False, [f"/etc/hosts.allow:{line + 1}"])
    assert wrappers["note"].endswith(f"; but {leak}")


def test_check_judges_what_our_rules_allow(lab: Lab, portmapper: Portmapper) -> None:
    """Our table, edited (or written by an older version) to let every IPv6 address in: not
    protected, and a probe over IPv6 gets through."""
    run_ok(portmapper, "protect", *ALLOW, "--no-wrappers")
    comment = 'comment "portwarden-portmap edited"'
    lab.target.run(
        [
            "nft",
            f"flush chain inet portwarden_portmap input; add rule inet "
            f"portwarden_portmap input ip saddr != {{ 127.0.0.0/8, 198.18.0.16/28 }} "
            f"th dport 111 drop {comment}; add rule inet portwarden_portmap input "
            f"ip6 saddr != ::/0 th dport 111 drop {comment}",
        ]
    )
    result = portmapper.portwarden("portmap", "check", "--from", lab.target.ipv6, "--timeout", "1")
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and lines[-1] == "verdict: exposed", result.stdout
    assert "firewall: does not protect it alone" in lines
    assert "  our rules let every address in (::/0)" in lines


ADMIN_TABLE = """table inet pwadmin {
    chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        ct state established,related accept
        ip saddr 198.18.0.0/24 icmp type echo-request accept
        ip6 nexthdr ipv6-icmp accept
    }
}
"""


def test_rules_that_are_not_ours_make_the_verdict_unknown(lab: Lab, portmapper: Portmapper) -> None:
    """The administrator's own table drops everything from outside but accepts loopback: a
    probe from the host's own address passes over lo, a real outsider is dropped. Neither
    `exposed` nor `protected` is true of what the check can see."""
    lab.target.run(["nft", "-f", "-"], input=ADMIN_TABLE)
    try:
        assert outcomes(lab.attackers[0], lab.attackers[0].ipv4, lab.target.ipv4) == {
            "tcp": "silent",
            "udp": "silent",
        }
        check = portmapper.portwarden(
            "portmap", "check", "--from", lab.target.ipv4, "--timeout", "1"
        )
        plain = portmapper.portwarden("portmap", "check", "--json")
    finally:
        lab.target.run(["nft", "delete", "table", "inet", "pwadmin"])
    lines = check.stdout.splitlines()
    assert (check.returncode, lines[-1]) == (3, "verdict: unknown"), check.stdout
    assert (
        "firewall: unknown (not ours; the probe from a local address stands for a remote "
        "caller only when rules match by address)"
    ) in lines
    assert "  nftables: table inet pwadmin chain input (hook input, policy drop)" in lines
    assert any("rpcinfo -p <this host>" in line for line in lines)
    assert "probe: tcp from 198.18.0.1 to 198.18.0.1 port 111: reachable" in check.stdout
    assert any(
        line.startswith("note: the probes from 198.18.0.1 went over the loopback") for line in lines
    )
    report = json.loads(plain.stdout)
    assert (plain.returncode, report["verdict"], report["firewall"]["state"]) == (
        3,
        "unknown",
        "unknown",
    )


def test_a_probe_from_inside_the_allowed_networks_decides_nothing(
    lab: Lab, portmapper: Portmapper
) -> None:
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    check = portmapper.portwarden("portmap", "check", "--from", "127.0.0.1")
    lines = check.stdout.splitlines()
    assert "probe: tcp from 127.0.0.1 to 127.0.0.1 port 111: reachable" in check.stdout
    assert (
        "note: --from 127.0.0.1 is inside the allowed networks (127.0.0.0/8): its probes say "
        "nothing about a caller outside them, so they do not decide the verdict; give a local "
        "address outside them"
    ) in lines
    assert (check.returncode, lines[-1]) == (0, "verdict: protected")  # by the wrappers


def test_probes_where_nothing_listens_say_not_running(lab: Lab) -> None:
    client = lab.client
    result = portwarden_on(client, "portmap", "check", "--from", client.ipv4, "--timeout", "0.2")
    assert "probe: tcp from 198.18.0.20 to 198.18.0.20 port 111: refused" in result.stdout
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "verdict: not running")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--to", "198.18.0.1"],
            '--to: "198.18.0.1": needs --from, the local address to probe from',
        ),
        (
            ["--from", "198.18.0.20", "--to", "example.org"],
            '--to: "example.org": not an IP address',
        ),
        (["--from", "portmap.example.org"], '--from: "portmap.example.org": not an IP address'),
        (
            ["--from", "198.18.0.20", "--to", "2001:db8::1"],
            '--to: "2001:db8::1": not of the same IP version as --from 198.18.0.20',
        ),
        (
            ["--from", "198.18.0.20", "--to", "198.18.7.7"],
            '--to: "198.18.7.7": Network is unreachable',
        ),
        (
            ["--from", "198.18.0.99", "--to", "198.18.0.1"],
            '--from: "198.18.0.99": not an address of this host',
        ),
    ],
)
def test_check_names_the_option_at_fault(lab: Lab, args: list[str], error: str) -> None:
    result = portwarden_on(lab.client, "portmap", "check", *args, "--timeout", "0.2")
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"portwarden: error: {error}\n",
    )


def test_an_unwritable_hosts_allow_is_refused_and_nothing_changes(
    lab: Lab, portmapper: Portmapper
) -> None:
    subprocess.run(
        portmapper._inside(["mount", "--bind", "-o", "ro", "/etc/hosts.allow", "/etc/hosts.allow"]),
        check=True,
    )
    before = files(portmapper)
    result = portmapper.portwarden("portmap", "protect", *ALLOW)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "portwarden: error: /etc/hosts.allow: not writable\n"
    assert files(portmapper) == before
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout


def test_host_bits_are_a_warning_and_created_files_are_said_to_be(
    lab: Lab, portmapper: Portmapper
) -> None:
    result = portmapper.portwarden(
        "portmap",
        "protect",
        "--allow",
        "198.18.0.17/28",
        "--firewall",
        "none",
        "--hosts-allow",
        "/etc/new.allow",
        "--hosts-deny",
        "/etc/new.deny",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        'portwarden: warning: --allow "198.18.0.17/28": host bits are set; '
        "the network allowed is 198.18.0.16/28\n"
    )
    assert result.stdout == "created /etc/new.allow\ncreated /etc/new.deny\n"
    assert b"198.18.0.16/255.255.255.240" in (portmapper.read("new.allow") or b"")


@pytest.mark.parametrize(
    ("protected_with", "unprotect_args"),
    [("iptables", []), ("nft", ["--firewall", "iptables"])],
)
def test_unprotect_removes_our_rules_whichever_firewall_it_is_given(
    lab: Lab, portmapper: Portmapper, protected_with: str, unprotect_args: list[str]
) -> None:
    """protect with one firewall, unprotect with the other (or the default): our rules go all
    the same, and --dry-run shows that they will."""
    run_ok(portmapper, "protect", *ALLOW, "--firewall", protected_with, "--no-wrappers")
    silent = {"tcp": "silent", "udp": "silent"}
    assert reachability(lab, 4) == (REACHABLE, silent)
    ours = lab.target.run(["nft", "list", "table", "inet", "portwarden_portmap"], check=False)
    rules = ours.stdout, iptables_rules(lab.target)

    shown = run_ok(portmapper, "unprotect", *unprotect_args, "--no-wrappers", "--dry-run")
    removal = {
        "nft": ["# nft", "delete table inet portwarden_portmap"],
        "iptables": [
            f"# {tool}-restore --noflush\n*filter\n-D INPUT -j PORTWARDEN_PORTMAP\n"
            "-F PORTWARDEN_PORTMAP\n-X PORTWARDEN_PORTMAP\nCOMMIT"
            for tool in ("iptables", "ip6tables")
        ],
    }[protected_with]
    assert shown.splitlines() == "\n".join(removal).splitlines() + [
        "# dry run: nothing was changed"
    ]
    after = lab.target.run(["nft", "list", "table", "inet", "portwarden_portmap"], check=False)
    assert (after.stdout, iptables_rules(lab.target)) == rules

    done = run_ok(portmapper, "unprotect", *unprotect_args, "--no-wrappers")
    assert done.startswith(f"ran {'nft' if protected_with == 'nft' else 'iptables-restore'}")
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout
    assert all("PORTWARDEN_PORTMAP" not in rules for rules in iptables_rules(lab.target))
    assert reachability(lab, 4) == (REACHABLE, REACHABLE)
    again = run_ok(portmapper, "unprotect", *unprotect_args, "--no-wrappers")
    assert again == "portmap unprotect: nothing to change\n"


def test_protect_warns_about_a_last_line_without_newline_and_never_glues_onto_it(
    lab: Lab, portmapper: Portmapper
) -> None:
    """libwrap counts a last line without newline as an error; in hosts.deny that denies every
    caller, the client inside included. protect warns as check does, its lines (at the top)
    work, and unprotect gives back the very bytes, the missing newline too."""
    for name in ("hosts.allow", "hosts.deny"):
        subprocess.run(portmapper._inside(["truncate", "-s", "-1", f"/etc/{name}"]), check=True)
    originals = HOSTS_ALLOW[:-1], HOSTS_DENY[:-1]
    assert files(portmapper) == originals
    assert not rpcinfo_lists_program(lab.client, lab.target.ipv4)  # the premise
    result = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    assert result.returncode == 0, result.stderr
    said = "the last line has no newline: libwrap counts that as an error and"
    assert result.stderr == (
        f"portwarden: warning: /etc/hosts.allow: {said} ignores that line\n"
        f"portwarden: warning: /etc/hosts.deny: {said} denies every caller\n"
    )
    for protected, original in zip(files(portmapper), originals, strict=True):
        assert protected is not None and protected.endswith(
            b"# portwarden-portmap end\n" + original
        )
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)
    assert not rpcinfo_lists_program(lab.attackers[0], lab.target.ipv4)
    check = portmapper.portwarden("portmap", "check")
    assert f"\n  /etc/hosts.deny: {said} denies every caller\n" in check.stdout

    run_ok(portmapper, "unprotect", "--firewall", "none")
    assert files(portmapper) == originals


def test_unprotect_that_fails_in_iptables_puts_nftables_back(
    lab: Lab, portmapper: Portmapper
) -> None:
    """Our rules in both firewalls (as an older portwarden's protect left them: protect now
    takes them out of the firewall not chosen); ip6tables cannot delete our chain (someone's
    chain jumps to it): the nftables table already deleted comes back as it was, with the
    files."""
    target = lab.target
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "nft")
    table = ["nft", "list", "table", "inet", "portwarden_portmap"]
    ours = target.run(table).stdout
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "iptables", "--no-wrappers")
    target.run(["nft", "-f", "-"], input=ours)
    target.run(["ip6tables", "-N", "HOLDER"])
    try:
        target.run(["ip6tables", "-A", "HOLDER", "-j", "PORTWARDEN_PORTMAP"])
        protected = files(portmapper), iptables_rules(target), target.run(table).stdout
        failed = portmapper.portwarden("portmap", "unprotect")
        assert (files(portmapper), iptables_rules(target), target.run(table).stdout) == protected
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
        assert failed.stderr.startswith(
            "portwarden: error: iptables was put back as it was; nftables was put back as it "
            "was; /etc/hosts.allow was put back as it was; /etc/hosts.deny was put back as it "
            "was, after ip6tables-restore: "
        )
        check = portmapper.portwarden("portmap", "check", "--json")
        assert json.loads(check.stdout)["firewall"]["protected"]
    finally:
        target.run(["ip6tables", "-F", "HOLDER"], check=False)
        target.run(["ip6tables", "-X", "HOLDER"], check=False)


def test_a_portmapper_that_accepts_and_never_answers_is_reachable(
    lab: Lab, portmapper: Portmapper
) -> None:
    """rpcbind stopped (SIGSTOP): the kernel still accepts TCP connections for it. An accepted
    connection is no firewall's silence: the portmapper is exposed, from this host's own
    address and from an outsider alike."""
    attacker = lab.attackers[0]
    portmapper.proc.send_signal(signal.SIGSTOP)
    try:
        here = portmapper.portwarden(
            "portmap", "check", "--from", lab.target.ipv4, "--timeout", "0.5"
        )
        there = portwarden_on(
            attacker,
            "portmap",
            "check",
            "--json",
            "--from",
            attacker.ipv4,
            "--to",
            lab.target.ipv4,
            "--timeout",
            "0.5",
        )
    finally:
        portmapper.proc.send_signal(signal.SIGCONT)
    lines = here.stdout.splitlines()
    assert (
        "probe: tcp from 198.18.0.1 to 198.18.0.1 port 111: reachable (connected, no RPC "
        "answer in 0.5 s)"
    ) in lines
    assert "probe: udp from 198.18.0.1 to 198.18.0.1 port 111: silent (no answer in 0.5 s)" in lines
    assert (here.returncode, lines[-1]) == (1, "verdict: exposed"), here.stdout
    report = json.loads(there.stdout)
    assert [(p["proto"], p["outcome"]) for p in report["probes"]] == [
        ("tcp", "reachable"),
        ("udp", "silent"),
    ]
    assert (there.returncode, report["verdict"]) == (1, "exposed")


ABOVE = ["INPUT", "1", "-p", "tcp", "--dport", "111", "-j", "ACCEPT"]  # as other tools insert


def test_an_accept_above_our_iptables_jump_is_seen_and_protect_moves_the_jump_back(
    lab: Lab, portmapper: Portmapper
) -> None:
    """Within INPUT the first rule that accepts decides: an accept inserted above our jump lets
    an outsider in. check must not say "protected", and protect must not say "nothing to
    change": it puts the jump first again."""
    target, attacker = lab.target, lab.attackers[0]
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "iptables", "--no-wrappers")
    target.run(["iptables", "-I", *ABOVE])
    try:
        assert outcomes(attacker, attacker.ipv4, target.ipv4) == {
            "tcp": "reachable",
            "udp": "silent",
        }
        check = portmapper.portwarden("portmap", "check")
        lines = check.stdout.splitlines()
        assert (check.returncode, lines[-1]) == (3, "verdict: unknown"), check.stdout
        assert (f"firewall: {UNKNOWN_FIREWALL}") in lines
        assert (
            "  iptables: chain PORTWARDEN_PORTMAP (jumped to from INPUT, but not first: a "
            "rule above may accept port 111):"
        ) in lines
        assert (
            "  iptables: above our jump in INPUT: -A INPUT -p tcp -m tcp --dport 111 -j ACCEPT"
        ) in lines

        moved = run_ok(portmapper, "protect", *ALLOW, "--firewall", "iptables", "--no-wrappers")
        assert moved == "ran iptables-restore --noflush\n"  # ip6tables: nothing to change
        rules = target.run(["iptables", "-S", "INPUT"]).stdout.splitlines()
        assert rules[1:] == [
            "-A INPUT -j PORTWARDEN_PORTMAP",
            "-A INPUT -p tcp -m tcp --dport 111 -j ACCEPT",
        ]
        assert outcomes(attacker, attacker.ipv4, target.ipv4) == {"tcp": "silent", "udp": "silent"}
        again = run_ok(portmapper, "protect", *ALLOW, "--firewall", "iptables", "--no-wrappers")
        assert again == "portmap protect: nothing to change\n"
        check = portmapper.portwarden("portmap", "check")
        assert (check.returncode, check.stdout.splitlines()[-1]) == (0, "verdict: protected")
    finally:
        target.run(["iptables", "-D", *ABOVE[:1], *ABOVE[2:]], check=False)


OTHER_TABLE = """
table inet pwother {
    chain input {
        type filter hook input priority filter - 20; policy accept;
        meta l4proto { tcp, udp } th dport 111 accept
    }
}
"""


def test_an_accept_in_an_earlier_nft_table_does_not_undo_our_drop(
    lab: Lab, portmapper: Portmapper
) -> None:
    """nftables: an accept ends only its own base chain; the packet still meets ours, whose drop
    is final. So another table that accepts port 111 before ours changes nothing."""
    target, attacker = lab.target, lab.attackers[0]
    run_ok(portmapper, "protect", *ALLOW, "--no-wrappers")
    target.run(["nft", "-f", "-"], input=OTHER_TABLE)
    try:
        assert outcomes(attacker, attacker.ipv4, target.ipv4) == {"tcp": "silent", "udp": "silent"}
        assert outcomes(lab.client, lab.client.ipv4, target.ipv4) == REACHABLE
        check = portmapper.portwarden("portmap", "check")
        assert (check.returncode, check.stdout.splitlines()[-1]) == (0, "verdict: protected")
    finally:
        target.run(["nft", "delete", "table", "inet", "pwother"])


_HOLD_LOCK = """
import fcntl, sys, time
with open("/run/portwarden-portmap.lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_protect_waits_for_a_run_in_progress(lab: Lab, portmapper: Portmapper) -> None:
    """Another protect or unprotect holds the lock (here for 1.5 s): this one waits for it,
    then plans from what that run left, so no edit is lost."""
    holder = subprocess.Popen(
        portmapper._inside([sys.executable, "-c", _HOLD_LOCK, "1.5"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
        took = time.monotonic() - started
    finally:
        holder.wait(timeout=10)
    assert took >= 1.0, took
    allow, _ = files(portmapper)
    assert allow is not None and b"rpcbind portmap: 198.18.0.16/255.255.255.240" in allow


def test_a_hosts_allow_rpcbind_cannot_read_is_refused_and_checked_as_locked_out(
    lab: Lab, portmapper: Portmapper
) -> None:
    """hosts.allow mode 600, as some hardening guides set it: rpcbind runs as _rpc, so libwrap
    cannot read our allow lines and our hosts.deny would refuse every caller. protect says so
    and changes nothing; on a host already in that state, check says the portmapper denies the
    callers it should allow, and the verdict is not "protected"."""
    chmod = portmapper._inside(["chmod", "600", "/etc/hosts.allow"])
    subprocess.run(chmod, check=True, timeout=20)
    before = files(portmapper)
    refused = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    assert (refused.returncode, refused.stdout, refused.stderr.count("\n")) == (2, "", 1)
    user = portmapper.status_user()
    why = (
        f"/etc/hosts.allow: rpcbind (pid {portmapper.proc.pid}, rpcbind) runs as {user}, which "
        "cannot read it (mode 600, owner root:root): TCP Wrappers would not read our lines "
        "there"
    )
    assert refused.stderr.startswith(f"portwarden: error: {why}"), refused.stderr
    assert files(portmapper) == before
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)

    # Protected while it could read, then made unreadable: everyone is locked out.
    subprocess.run(portmapper._inside(["chmod", "644", "/etc/hosts.allow"]), check=True)
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    subprocess.run(chmod, check=True, timeout=20)
    assert not rpcinfo_lists_program(lab.target, "127.0.0.1")
    assert not rpcinfo_lists_program(lab.client, lab.target.ipv4)
    check = portmapper.portwarden("portmap", "check", "--from", "127.0.0.1", "--timeout", "1")
    lines = check.stdout.splitlines()
    assert (check.returncode, lines[-1]) == (4, "verdict: locked out"), check.stdout
    assert (
        "wrappers: deny callers they should allow (see the notes): they lock the portmapper"
    ) in lines
    assert (
        f"  {portmapper.libwrap_note()}; but {why.rpartition(': TCP')[0]}: TCP Wrappers "
        "cannot read the lines there" in lines
    )
    [note] = [line for line in lines if line.startswith("note: the loopback query was denied")]
    assert "authentication error" in note
    assert (
        "the tcp probe from 127.0.0.1, inside the allowed networks, was denied (the "
        "portmapper denied it: authentication error"
    ) in note
    report = json.loads(portmapper.portwarden("portmap", "check", "--json").stdout)
    assert (report["verdict"], report["wrappers"]["protected"]) == ("locked out", False)
    assert report["denied_allowed"] and not report["wrappers"]["in_files"]


@pytest.fixture
def not_started(lab: Lab, tmp_path: Path) -> Iterator[Portmapper]:
    """The portmapper's host with its own /etc, where rpcbind has not started yet."""
    held = Portmapper(lab.target, tmp_path, HOSTS_ALLOW, HOSTS_DENY, start=False)
    yield held
    held.stop()


def test_a_hosts_allow_the_portmapper_will_not_read_is_refused_before_it_starts(
    lab: Lab, not_started: Portmapper
) -> None:
    """rpcbind not running: protect checks the files as the user Debian's rpcbind switches to
    when it starts (_rpc), not as nobody; a mode-600 hosts.allow would lock everyone out."""
    portmapper = not_started
    subprocess.run(portmapper._inside(["chmod", "600", "/etc/hosts.allow"]), check=True)
    before = files(portmapper)
    refused = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    user = pwd.getpwnam("_rpc")
    assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
    assert refused.stderr == (
        "portwarden: error: /etc/hosts.allow: rpcbind is not running; when it starts it "
        f"switches to _rpc (uid {user.pw_uid}), which cannot read it (mode 600, owner root:root): "
        "TCP Wrappers would not read our lines there, and the portmapper would refuse every "
        "caller, loopback and the allowed networks included; nothing was changed: make the file "
        "readable by that user, then run protect again\n"
    )
    assert files(portmapper) == before

    subprocess.run(portmapper._inside(["chmod", "644", "/etc/hosts.allow"]), check=True)
    done = portmapper.portwarden("portmap", "protect", *ALLOW, "--firewall", "none")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    portmapper.start()
    assert portmapper.status_user() == f"_rpc (uid {user.pw_uid})"  # as protect assumed
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)
    assert not rpcinfo_lists_program(lab.attackers[0], lab.target.ipv4)


_SET_ACL = (
    "import os, sys; os.chmod(sys.argv[1], 0o600); "
    "os.setxattr(sys.argv[1], 'system.posix_acl_access', bytes.fromhex(sys.argv[2]))"
)


def test_a_hosts_allow_of_mode_600_that_an_acl_lets_rpcbind_read_is_protected(
    lab: Lab, portmapper: Portmapper
) -> None:
    """`setfacl -m user:_rpc:r` on a mode-600 hosts.allow: rpcbind reads it, so protect goes
    ahead and check says protected (the kernel decides, not the mode bits)."""
    acl = mode_600_and_reader(pwd.getpwnam("_rpc").pw_uid).hex()
    subprocess.run(
        portmapper._inside([sys.executable, "-c", _SET_ACL, "/etc/hosts.allow", acl]),
        check=True,
        timeout=20,
    )
    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)  # protect kept the ACL
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")
    assert not rpcinfo_lists_program(lab.attackers[0], lab.target.ipv4)
    check = portmapper.portwarden("portmap", "check", "--from", lab.target.ipv4, "--timeout", "1")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "cannot read" not in check.stdout and "wrappers: protects the portmapper" in check.stdout


def test_check_by_a_user_other_than_root_is_one_line_and_no_verdict(
    lab: Lab, portmapper: Portmapper
) -> None:
    """nftables and iptables cannot be read without CAP_NET_ADMIN: no verdict from half the
    facts, and none of the tools' own complaints on stderr."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for json_flag in ([], ["--json"]):
        check = subprocess.run(
            portmapper._inside(
                [
                    *nobody,
                    sys.executable,
                    "-m",
                    "portwarden",
                    "portmap",
                    "check",
                    "--from",
                    lab.target.ipv4,
                    *json_flag,
                ]
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        why = (
            "reading the firewall (nftables, iptables) needs CAP_NET_ADMIN; nothing was "
            "checked (run 'portwarden portmap check' as root)"
        )
        assert (check.returncode, check.stderr) == (2, f"portwarden: error: {why}\n")
        assert check.stdout == (json.dumps({"error": why}, indent=2) + "\n" if json_flag else "")


# fail2ban's way of adding to hosts.deny: open with O_APPEND, one line, close; every 2 ms until
# stdin closes; then the number of lines written.
_APPENDER = """
import os, select, sys
count = 0
while not select.select([sys.stdin], [], [], 0.01)[0]:
    fd = os.open("/etc/hosts.deny", os.O_WRONLY | os.O_APPEND)
    os.write(fd, f"ALL: 198.18.99.{count % 250 + 1}\\n".encode())
    os.close(fd)
    count += 1
print(count, flush=True)
"""


def test_protect_and_unprotect_keep_the_lines_others_append_meanwhile(
    lab: Lab, portmapper: Portmapper
) -> None:
    """hosts.deny is read at plan time and replaced after the firewall was read: a line
    appended in between must not be lost (the edit is made again from the file as it is)."""
    appender = subprocess.Popen(
        portmapper._inside([sys.executable, "-c", _APPENDER]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(5):
            run_ok(portmapper, "protect", *ALLOW)
            run_ok(portmapper, "unprotect")
    finally:
        appended, _ = appender.communicate("", timeout=10)
    deny = portmapper.read("hosts.deny")
    assert deny is not None and deny.startswith(HOSTS_DENY)
    added = deny[len(HOSTS_DENY) :].splitlines()
    assert len(added) == int(appended) > 100
    assert all(line.startswith(b"ALL: 198.18.99.") for line in added)


def test_a_ban_in_hosts_deny_inside_the_allowed_networks_still_holds(
    lab: Lab, tmp_path: Path
) -> None:
    """fail2ban's, PortSentry's or KILL_HOSTS_DENY's `ALL: <address>` of a client inside
    --allow: our hosts.allow line, read before hosts.deny, would let it in; protect carries
    the ban over as EXCEPT, and rpcbind refuses that client and no other. A ban added after
    protect is overridden (check says so) until protect runs again."""
    client, attacker, target = lab.client, lab.attackers[0], lab.target
    bans = f"ALL: {client.ipv4}\nALL: [{client.ipv6}]\n".encode()
    portmapper = Portmapper(target, tmp_path, HOSTS_ALLOW, HOSTS_DENY + bans)
    try:
        before = files(portmapper)
        protect = [
            "protect",
            "--allow",
            "198.18.0.0/24",
            "--allow",
            "2001:db8::/64",
            "--firewall",
            "none",
        ]
        shown = run_ok(portmapper, *protect, "--dry-run")
        assert shown.startswith(
            f'portmap protect: /etc/hosts.deny:6: "ALL: {client.ipv4}" still refuses '
            f"{client.ipv4} (would be carried over to our /etc/hosts.allow line as EXCEPT)\n"
        )
        assert files(portmapper) == before
        said = run_ok(portmapper, *protect)
        assert said == (
            f'portmap protect: /etc/hosts.deny:6: "ALL: {client.ipv4}" still refuses '
            f"{client.ipv4} (carried over to our /etc/hosts.allow line as EXCEPT)\n"
            f'portmap protect: /etc/hosts.deny:7: "ALL: [{client.ipv6}]" still refuses '
            f"{client.ipv6} (carried over to our /etc/hosts.allow line as EXCEPT)\n"
            "changed /etc/hosts.allow\nchanged /etc/hosts.deny\n"
        )
        refused = {"tcp": "refused", "udp": "refused"}
        for family in (4, 6):
            assert reachability(lab, family) == (refused, REACHABLE)
        check = run_ok(portmapper, "check")
        assert (
            f'  ban /etc/hosts.deny:6: "ALL: {client.ipv4}": in effect for rpcbind (our '
            f"/etc/hosts.allow lines except {client.ipv4})\n"
        ) in check

        later = f"ALL: {attacker.ipv4}\n"  # fail2ban, after protect
        portmapper.append("hosts.deny", later)
        assert outcomes(attacker, attacker.ipv4, target.ipv4) == REACHABLE
        check = run_ok(portmapper, "check")
        assert (
            f'  ban /etc/hosts.deny:8: "ALL: {attacker.ipv4}": overridden for rpcbind: '
            f"/etc/hosts.allow:3 (ours), read first, lets {attacker.ipv4} reach it (run "
            "'portwarden portmap protect' again to carry the ban over)\n"
        ) in check
        run_ok(portmapper, *protect)
        assert outcomes(attacker, attacker.ipv4, target.ipv4) == refused
        assert outcomes(lab.attackers[1], lab.attackers[1].ipv4, target.ipv4) == REACHABLE

        run_ok(portmapper, "unprotect", "--firewall", "none")
        allow, deny = files(portmapper)
        assert (allow, deny) == (before[0], (before[1] or b"") + later.encode())
    finally:
        portmapper.stop()
