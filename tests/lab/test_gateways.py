"""default_gateways against real routes of every shape the kernel dumps: one next hop, several
(multipath, `nexthop via A nexthop via B`), an IPv6 next hop for IPv4 (RTA_VIA) and next-hop
objects (`nhid`). In a network namespace of its own (`unshare -n`: it vanishes with the
process)."""

import json
import subprocess
import sys

from tests.conftest import require_lab

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
    "-4 route add 198.19.0.0/16 via 198.18.0.99",  # not a default route
]

SCRIPT = f"""
import json, subprocess
from portwarden.net.local import default_gateways
for route in {ROUTES!r}:
    subprocess.run(["ip", *route.split()], check=True)
print(json.dumps(sorted(str(a) for a in default_gateways())))
"""


def test_every_next_hop_of_every_default_route_is_a_gateway() -> None:
    require_lab()
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", SCRIPT], check=True,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert json.loads(out.stdout) == sorted([
        "198.18.0.11", "198.18.0.12", "2001:db8::b", "2001:db8::c", "2001:db8::d",
        "2001:db8::e", "198.18.0.13", "2001:db8::f", "198.18.0.14", "198.18.0.15",
    ])  # fmt: skip
