"""gateway_addresses against real routes of every shape the kernel dumps: one next hop, several
(multipath, `nexthop via A nexthop via B`), an IPv6 next hop for IPv4 (RTA_VIA) and next-hop
objects (`nhid`), single or a group, also with net.ipv4.nexthop_compat_mode=0 (the route then
carries only the object's id); and against a real neighbour table, for a gateway's other
addresses. In a network namespace of its own (`unshare -n`: it vanishes with the process)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_lab

COMPAT_MODE = Path("/proc/sys/net/ipv4/nexthop_compat_mode")

ROUTES = [
    "link add d0 type veth peer name d1",
    "link set d0 up",
    "link set d1 up",
    "addr add 198.18.0.1/24 dev d0",
    "addr add 2001:db8::1/64 dev d0 nodad",
    "-4 route add default metric 10 nexthop via 198.18.0.11 nexthop via 198.18.0.12",
    "-6 route add default metric 10 nexthop via 2001:db8::b nexthop via 2001:db8::c",
    "-4 route add default metric 20 via inet6 2001:db8::d dev d0",
    "-4 route add default metric 21 nexthop via inet6 2001:db8::e dev d0 nexthop via 198.18.0.13",
    "-6 route add default metric 20 via 2001:db8::f",
    "-4 route add default metric 22 via 198.18.0.14",
    "nexthop add id 1 via 198.18.0.15 dev d0",
    "-4 route add default metric 30 nhid 1",
    "nexthop add id 2 via 198.18.0.16 dev d0",
    "nexthop add id 3 via 198.18.0.17 dev d0",
    "nexthop add id 4 group 2/3",
    "-4 route add default metric 31 nhid 4",
    "nexthop add id 5 via 2001:db8::10 dev d0",
    "-6 route add default metric 30 nhid 5",
    "nexthop add id 6 via 198.18.0.98 dev d0",  # an object no default route uses
    "-4 route add 198.19.0.0/16 via 198.18.0.99",  # not a default route
]

SCRIPT = f"""
import json, subprocess, sys
from pathlib import Path
from portwarden.net.local import gateway_addresses
if sys.argv[1]:
    Path("{COMPAT_MODE}").write_text(sys.argv[1])
for command in json.loads(sys.argv[2]):
    subprocess.run(["ip", *command.split()], check=True)
print(json.dumps(sorted(str(a) for a in gateway_addresses())))
"""


def gateways_after(commands: list[str], compat_mode: str = "") -> list[str]:
    """gateway_addresses in a new network namespace, after the `ip` commands."""
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", SCRIPT, compat_mode,
                          json.dumps(commands)], check=True, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("compat_mode", ["1", "0"])
def test_every_next_hop_of_every_default_route_is_a_gateway(compat_mode: str) -> None:
    """nexthop_compat_mode is the network namespace's on recent kernels, the host's on older
    ones: the host's value is put back whatever it is."""
    require_lab()
    host_mode = COMPAT_MODE.read_text()
    try:
        found = gateways_after(ROUTES, compat_mode)
    finally:
        if COMPAT_MODE.read_text() != host_mode:
            COMPAT_MODE.write_text(host_mode)
    assert found == sorted([
        "198.18.0.11", "198.18.0.12", "2001:db8::b", "2001:db8::c", "2001:db8::d",
        "2001:db8::e", "198.18.0.13", "2001:db8::f", "198.18.0.14", "198.18.0.15",
        "198.18.0.16", "198.18.0.17", "2001:db8::10",
    ])  # fmt: skip


ROUTER, OTHER, ROUTER4 = "02:00:00:00:00:01", "02:00:00:00:00:0c", "02:00:00:00:00:02"
NEIGHBOURS = [
    "link add d0 type veth peer name d1",
    "link add e0 type veth peer name e1",
    *(f"link set {device} up" for device in ("d0", "d1", "e0", "e1")),
    "addr add 198.18.0.1/24 dev d0",
    "addr add 2001:db8::1/64 dev d0 nodad",
    "addr add 2001:db8:1::1/64 dev e0 nodad",
    "-6 route add default via fe80::1 dev d0",  # a router's link-local address, from its RAs
    f"neigh add fe80::1 lladdr {ROUTER} dev d0 nud reachable",
    f"neigh add 2001:db8::fe lladdr {ROUTER} dev d0 nud stale",  # the same router
    f"neigh add 2001:db8::c lladdr {OTHER} dev d0 nud reachable",  # another host
    f"neigh add 198.18.0.254 lladdr {ROUTER} dev d0 nud reachable",  # IPv4: maybe proxy ARP
    f"neigh add 2001:db8:1::fe lladdr {ROUTER} dev e0 nud reachable",  # another link
    f"neigh add 2001:db8::fb lladdr {ROUTER} dev d0 nud noarp",  # says nothing of who it is
    "-4 route add default via 198.18.0.253 dev d0",  # IPv4 through another router,
    f"neigh add 198.18.0.253 lladdr {ROUTER4} dev d0 nud reachable",
    f"neigh add 2001:db8::fd lladdr {ROUTER4} dev d0 nud reachable",  # and its IPv6 address
    "neigh add 2001:db8::fc dev d0 nud incomplete",  # not resolved: no link-layer address
]


def test_a_gateways_other_ipv6_addresses_on_its_link_are_gateways_too() -> None:
    """The IPv6 neighbours with a gateway's link-layer address on its device; not the IPv4
    ones, nor those of another device, nor NOARP entries."""
    require_lab()
    assert gateways_after(NEIGHBOURS) == sorted(
        ["fe80::1", "2001:db8::fe", "198.18.0.253", "2001:db8::fd"]
    )


RESOLVE_SCRIPT = """
import json, subprocess, sys
from portwarden.net.local import resolve_again
for command in json.loads(sys.argv[1]):
    subprocess.run(["ip", *command.split()], check=True)
asked = resolve_again(set(json.loads(sys.argv[2])))
shown = subprocess.run(["ip", "-6", "neigh", "show", "dev", "d0"], check=True,
                       capture_output=True, text=True).stdout
print(json.dumps([sorted(str(a) for a in asked), shown]))
"""


def test_a_blocked_ipv6_neighbour_claimed_by_another_link_layer_address_is_resolved_again() -> None:
    """Only the given IPv6 addresses on a gateway's device whose link-layer address is not a
    gateway's: the kernel forgets that address and asks the link again (nobody answers here)."""
    require_lab()
    given = ["2001:db8::fe", "2001:db8::fd", "2001:db8::fb", "2001:db8:1::fe", "198.18.0.254",
             "2001:db8::fc"]  # fmt: skip
    commands = [*NEIGHBOURS, f"neigh replace 2001:db8::fe lladdr {OTHER} dev d0 nud stale"]
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", RESOLVE_SCRIPT,
                          json.dumps(commands), json.dumps(given)], check=True,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    asked, shown = json.loads(out.stdout)
    # ::fe was claimed with OTHER (::c's, not given); ::fd has the IPv4 gateway's link-layer
    # address; ::fb is NOARP; 2001:db8:1::fe is on another device; ::fc has none (incomplete);
    # 198.18.0.254 is IPv4.
    assert asked == ["2001:db8::fe"]
    (entry,) = [line for line in shown.splitlines() if line.startswith("2001:db8::fe ")]
    assert OTHER not in entry and ("INCOMPLETE" in entry or "FAILED" in entry), entry
