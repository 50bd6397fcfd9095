"""The types every layer names addresses and transport protocols with."""

import ipaddress
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Proto(Enum):
    TCP = "tcp"
    UDP = "udp"
