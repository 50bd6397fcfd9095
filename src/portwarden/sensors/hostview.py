"""What the sensors need to know about this host, refreshed by the daemon every REFRESH_S."""

from dataclasses import dataclass, field

from portwarden.detect.probe import IPAddress, Proto
from portwarden.net.local import local_addresses
from portwarden.net.ports import bound_ports


@dataclass
class HostView:
    """Local addresses and ports with a service, as of the last refresh()."""

    addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    tcp_bound: frozenset[int] = field(default_factory=frozenset)
    udp_bound: frozenset[int] = field(default_factory=frozenset)

    def refresh(self) -> bool:
        """Re-read everything. Returns True when the bound ports changed."""
        self.addresses = local_addresses()
        tcp, udp = bound_ports(Proto.TCP), bound_ports(Proto.UDP)
        changed = (tcp, udp) != (self.tcp_bound, self.udp_bound)
        self.tcp_bound, self.udp_bound = tcp, udp
        return changed

    def bound(self, proto: Proto) -> frozenset[int]:
        return self.tcp_bound if proto is Proto.TCP else self.udp_bound
