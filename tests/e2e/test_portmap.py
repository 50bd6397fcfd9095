"""`portwarden portmap`: a real rpcbind, a client inside the allowed network, one outside.

Allowed: 198.18.0.16/255.255.255.240 and 2001:db8::10/124, which hold the client (.20, ::14)
but not the attackers (.11, ::b). The target's own 198.18.0.1 is outside as well, so `check
--from 198.18.0.1` probes as an outsider over the target's loopback interface.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.lab.portmapper import PROGRAM, Portmapper

ALLOW = ["--allow", "198.18.0.16/255.255.255.240", "--allow", "2001:db8::10/124"]
HOSTS_ALLOW = b"# lab hosts.allow\nsshd: 198.18.0.0/255.255.255.0\n"
HOSTS_DENY = b"# lab hosts.deny\nin.fingerd: ALL\n"


@pytest.fixture
def portmapper(lab: Lab, tmp_path: Path) -> Iterator[Portmapper]:
    started = Portmapper(lab.target, tmp_path, HOSTS_ALLOW, HOSTS_DENY)
    yield started
    started.stop()
    lab.target.run(["nft", "delete", "table", "inet", "portwarden_portmap"], check=False)
    for tool in ("iptables", "ip6tables"):
        lab.target.run([tool, "-D", "INPUT", "-j", "PORTWARDEN_PORTMAP"], check=False)
        lab.target.run([tool, "-F", "PORTWARDEN_PORTMAP"], check=False)
        lab.target.run([tool, "-X", "PORTWARDEN_PORTMAP"], check=False)


def rpcinfo_lists_program(host: Host, target: str) -> bool:
    """An independent client: Debian's rpcinfo -p (PMAPPROC_DUMP over TCP)."""
    result = host.run(["rpcinfo", "-p", target], check=False, timeout=30)
    return result.returncode == 0 and str(PROGRAM) in result.stdout


def outcomes(host: Host, source: str, target: str) -> dict[str, str]:
    """Our own probe, run on `host`: {'tcp': outcome, 'udp': outcome}."""
    result = host.run([sys.executable, "-m", "portwarden", "portmap", "check", "--json",
                       "--from", source, "--to", target, "--timeout", "1"],
                      check=False, timeout=60)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return {p["proto"]: p["outcome"] for p in json.loads(result.stdout)["probes"]}


REACHABLE = {"tcp": "reachable", "udp": "reachable"}


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
    before = files(portmapper)

    run_ok(portmapper, "protect", *ALLOW, "--firewall", "none")
    allow, deny = files(portmapper)
    assert allow is not None and deny is not None
    assert allow.endswith(HOSTS_ALLOW) and deny.endswith(HOSTS_DENY)
    refused = {"tcp": "refused", "udp": "refused"}
    for family in (4, 6):
        assert reachability(lab, family) == (REACHABLE, refused)
    assert rpcinfo_lists_program(lab.client, lab.target.ipv4)
    assert not rpcinfo_lists_program(attacker, lab.target.ipv4)
    assert rpcinfo_lists_program(lab.target, "127.0.0.1")  # loopback is always allowed
    assert rpcinfo_lists_program(lab.target, "::1")
    check = portmapper.portwarden("portmap", "check", "--from", lab.target.ipv4)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "probe: tcp from 198.18.0.1 to 198.18.0.1 port 111: refused" in check.stdout
    assert "wrappers: protects the portmapper" in check.stdout

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
    assert {"prog": PROGRAM, "name": f"RPC_{PROGRAM}", "vers": 1, "proto": 6,
            "port": 4711} in report["programs"]  # fmt: skip
    assert {"prog": 100000, "name": "portmapper", "vers": 2, "proto": 6,
            "port": 111} in report["programs"]  # fmt: skip
    assert portmapper.portwarden("portmap", "check").returncode == 1
    not_local = portmapper.portwarden("portmap", "check", "--from", "198.18.0.99")
    assert (not_local.returncode, not_local.stderr) == (
        2, "portwarden: error: --from 198.18.0.99: Cannot assign requested address\n")  # fmt: skip

    run_ok(portmapper, "protect", *ALLOW)
    protected = portmapper.portwarden("portmap", "check", "--json", "--from", lab.target.ipv6,
                                      "--timeout", "1")  # fmt: skip
    report = json.loads(protected.stdout)
    assert protected.returncode == 0 and report["verdict"] == "protected", protected.stdout
    assert report["wrappers"]["protected"] and report["firewall"]["protected"]
    assert {p["outcome"] for p in report["probes"]} == {"silent"}
    assert portmapper.portwarden("portmap", "check").returncode == 0


def test_dry_run_changes_nothing_and_protect_is_idempotent(
    lab: Lab, portmapper: Portmapper
) -> None:
    before = files(portmapper)
    shown = run_ok(portmapper, "protect", *ALLOW, "--dry-run")
    assert "+rpcbind portmap: 127.0.0.0/255.0.0.0 198.18.0.16/255.255.255.240" in shown
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
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    lab: Lab, portmapper: Portmapper, args: list[str], message: str
) -> None:
    subprocess.run(portmapper._inside(["ln", "-s", "hosts.deny", "/etc/linked.deny"]), check=True)
    before = files(portmapper)
    result = portmapper.portwarden("portmap", "protect", *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert files(portmapper) == before
    assert "portwarden_portmap" not in lab.target.run(["nft", "list", "tables"]).stdout
