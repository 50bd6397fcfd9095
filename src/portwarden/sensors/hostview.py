"""What the sensors need to know about this host, refreshed by the daemon every REFRESH_S."""

from dataclasses import dataclass, field

from portwarden.detect.probe import IPAddress, Proto
from portwarden.net.local import local_addresses
from portwarden.net.ports import bound_ports
from portwarden.sensors.closedclients import ClosedClients


@dataclass
class HostView:
    """Local addresses and ports with a service, as of the last refresh(); and when each port
    was last seen with a service (SERVICE_GONE_GRACE), kept here because the daemon keeps this
    view for its whole life while a reload replaces the sensors; so are the connected UDP
    client sockets that closed lately (their replies are no probes). Nothing survives a
    restart."""

    addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    tcp_bound: frozenset[int] = field(default_factory=frozenset)
    udp_bound: frozenset[int] = field(default_factory=frozenset)
    # Protocol -> port -> the last time (monotonic) it had a service: at most 65,536 keys each.
    served_at: dict[Proto, dict[int, float]] = field(
        default_factory=lambda: {Proto.TCP: {}, Proto.UDP: {}}
    )
    closed_clients: ClosedClients = field(default_factory=ClosedClients)

    def refresh(self) -> bool:
        """Re-read everything. Returns True when the bound ports changed."""
        self.addresses = local_addresses()
        tcp, udp = bound_ports(Proto.TCP), bound_ports(Proto.UDP)
        changed = (tcp, udp) != (self.tcp_bound, self.udp_bound)
        self.tcp_bound, self.udp_bound = tcp, udp
        return changed

    def bound(self, proto: Proto) -> frozenset[int]:
        return self.tcp_bound if proto is Proto.TCP else self.udp_bound
