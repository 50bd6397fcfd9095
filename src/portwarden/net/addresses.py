"""The types every layer names addresses and transport protocols with, and the one well-known
port several layers name."""

import ipaddress
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The portmapper's (rpcbind's) port, RFC 1833: its client (portmapper.py), the audit policy, the
# port audit and the portmapper protection all name it.
PORTMAPPER_PORT = 111


class Proto(Enum):
    TCP = "tcp"
    UDP = "udp"
