"""The default gateway's other addresses are never blocked. On IPv6 the default route's next hop
is the router's link-local address (from its advertisements); a SYN forged from the same
router's global address must not get that one blocked (its ICMPv6 errors, Packet Too Big among
them, would be dropped, and so would its own connections). The router is a host of its own on
the lab's bridge, with forwarding on; the target's default route goes through its link-local
address, which the target has resolved (as a router's advertisements, or any traffic through
it, make it)."""

import re
import sys
import time
from collections.abc import Iterator

import pytest

from portwarden.lab.network import Host, Lab, run
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import CRAFT, nft_elements
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")

ROUTER6 = "2001:db8::fe"
WHY = "why=gateway (PROTECT_GATEWAYS=0 allows it)"
LINK_LOCAL_WAIT_S = 10.0  # duplicate address detection of the router's link-local address


def link_local(host: Host) -> str:
    """The host's eth0 link-local address, once duplicate address detection let it be used."""
    deadline = time.monotonic() + LINK_LOCAL_WAIT_S
    while True:
        shown = host.run(["ip", "-6", "-br", "addr", "show", "dev", "eth0", "scope", "link",
                          "-tentative"]).stdout.split()  # fmt: skip
        if len(shown) > 2:
            return shown[2].split("/")[0]
        assert time.monotonic() < deadline, "the router's link-local address stays tentative"
        time.sleep(0.1)


@pytest.fixture
def router(lab: Lab) -> Iterator[Host]:
    """The target's IPv6 default gateway: link-local next hop, global address ROUTER6."""
    host = Host(f"{lab.prefix}router", "", ROUTER6)
    run(["ip", "netns", "add", host.netns])
    try:
        run(["ip", "-n", lab.switch, "link", "add", "prouter", "type", "veth", "peer", "name",
             "eth0", "netns", host.netns])  # fmt: skip
        run(["ip", "-n", lab.switch, "link", "set", "prouter", "master", "br0", "up"])
        host.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])  # NAs: Router flag set
        for args in (["link", "set", "lo", "up"], ["link", "set", "eth0", "up"],
                     ["-6", "addr", "add", f"{ROUTER6}/64", "dev", "eth0", "nodad"]):  # fmt: skip
            host.run(["ip", *args])
        gateway = link_local(host)
        lab.target.run(["ip", "-6", "route", "replace", "default", "via", gateway, "dev", "eth0"])
        lab.target.run(["ping", "-c1", "-W2", f"{gateway}%eth0"])
        yield host
    finally:
        lab.target.run(["ip", "-6", "route", "del", "default"], check=False)
        lab.target.run(["ip", "-6", "neigh", "flush", "dev", "eth0"], check=False)
        host.stop_processes()
        run(["ip", "netns", "del", host.netns], check=False)


def unblocked_as_gateway(daemon: RunningDaemon, timeout: float) -> None:
    """ROUTER6's block ended because it is a gateway's address, and the log says so."""
    daemon.wait_for(rf"unblock address={re.escape(ROUTER6)} by=protected", timeout=timeout)
    said = f"protected address={ROUTER6} {WHY}: it became protected after its block, which ends"
    assert said in daemon.log()


def test_a_scan_forged_from_the_routers_global_address_leaves_it_unblocked(
    lab: Lab, start_daemon: StartDaemon, router: Host
) -> None:
    """The forged SYNs are answered; the target asks who has ROUTER6 and the router answers
    (Neighbour Advertisement, Router flag, the link-layer address of the gateway). The block
    may come before the next refresh of the protected addresses sees that (every 2 s): then it
    ends there."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    lab.attackers[0].run([sys.executable, str(CRAFT), "--spoofed", ROUTER6, "1",
                          lab.target.ipv6, "1,11,15"])  # fmt: skip
    found = daemon.wait_for(rf"(not-blocking|block) address={re.escape(ROUTER6)} ")
    if found.group(1) == "block":
        unblocked_as_gateway(daemon, timeout=5)
    else:
        assert f"not-blocking address={ROUTER6} {WHY}" in daemon.log()
    assert nft_elements(lab.target) == set()
    assert can_connect(router, lab.target.ipv6, SERVICE)


def test_nmaps_forgery_which_claims_the_address_in_neighbour_discovery_is_found_out_within_seconds(  # noqa: E501
    lab: Lab, start_daemon: StartDaemon, router: Host
) -> None:
    """nmap -6 -S first asks for the target's link-layer address in a Neighbour Solicitation
    from the forged address with its own: the target then takes ROUTER6 for the scanner's, the
    block holds, and the router, which has the target cached (as one that forwards traffic to
    it has), never solicits from ROUTER6 to put it right. The daemon has the target ask the
    link again who has ROUTER6 (once per block, at the next refresh); the router's answer
    gets through the block and the block ends at the refresh after."""
    target_mac = lab.target.run(["ip", "-br", "link", "show", "eth0"]).stdout.split()[2]
    router.run(["ip", "-6", "neigh", "replace", lab.target.ipv6, "lladdr", target_mac, "dev",
                "eth0", "nud", "stale"])  # fmt: skip
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    nmap(lab.attackers[0].run, "-6", "-S", ROUTER6, "-e", "eth0", "-sS", "-p", "1,11,15",
         lab.target.ipv6)  # fmt: skip
    daemon.wait_for(rf"block address={re.escape(ROUTER6)} actions=nft:done ")
    unblocked_as_gateway(daemon, timeout=8)
    assert nft_elements(lab.target) == set()
    assert can_connect(router, lab.target.ipv6, SERVICE)
