"""default_gateways against real routes of every shape the kernel dumps: one next hop, several
(multipath, `nexthop via A nexthop via B`), an IPv6 next hop for IPv4 (RTA_VIA) and next-hop
objects (`nhid`), single or a group, also with net.ipv4.nexthop_compat_mode=0 (the route then
carries only the object's id). In a network namespace of its own (`unshare -n`: it vanishes
with the process)."""

from pathlib import Path

import pytest

from tests.conftest import require_lab
from tests.lab.isolated import NEW_NETWORK, printed_json

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
from portwarden.net.local import default_gateways
Path("{COMPAT_MODE}").write_text(sys.argv[1])
for route in {ROUTES!r}:
    subprocess.run(["ip", *route.split()], check=True)
print(json.dumps(sorted(str(a) for a in default_gateways())))
"""


@pytest.mark.parametrize("compat_mode", ["1", "0"])
def test_every_next_hop_of_every_default_route_is_a_gateway(compat_mode: str) -> None:
    """nexthop_compat_mode is the network namespace's on recent kernels, the host's on older
    ones: the host's value is put back whatever it is."""
    require_lab()
    host_mode = COMPAT_MODE.read_text()
    try:
        gateways = printed_json(NEW_NETWORK, SCRIPT, compat_mode)
    finally:
        if COMPAT_MODE.read_text() != host_mode:
            COMPAT_MODE.write_text(host_mode)
    assert gateways == sorted(
        [
            "198.18.0.11",
            "198.18.0.12",
            "2001:db8::b",
            "2001:db8::c",
            "2001:db8::d",
            "2001:db8::e",
            "198.18.0.13",
            "2001:db8::f",
            "198.18.0.14",
            "198.18.0.15",
            "198.18.0.16",
            "198.18.0.17",
            "2001:db8::10",
        ]
    )
