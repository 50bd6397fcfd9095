"""What the sensors need to know about this host, refreshed by the daemon every REFRESH_S."""

from dataclasses import dataclass, field

from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.local import local_addresses
from portwarden.net.ports import Service, services
from portwarden.sensors.closedclients import ClosedClients


@dataclass
class HostView:
    """Local addresses and services (port and address served, see net.ports), as of the last
    refresh(); and when each was last seen (SERVICE_GONE_GRACE), kept here because the daemon
    keeps this view for its whole life while a reload replaces the sensors; so are the connected UDP
    client sockets that closed lately (their replies are no probes). Nothing survives a
    restart."""

    addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    tcp_bound: frozenset[Service] = field(default_factory=frozenset)
    udp_bound: frozenset[Service] = field(default_factory=frozenset)
    # Protocol -> service -> the last time (monotonic) it was seen: as many keys as this host's
    # programs made services within the grace (only they can add one).
    served_at: dict[Proto, dict[Service, float]] = field(
        default_factory=lambda: {Proto.TCP: {}, Proto.UDP: {}}
    )
    closed_clients: ClosedClients = field(default_factory=ClosedClients)

    def refresh(self) -> bool:
        """Re-read everything. Returns True when the services changed."""
        self.addresses = local_addresses()
        tcp, udp = services(Proto.TCP), services(Proto.UDP)
        changed = (tcp, udp) != (self.tcp_bound, self.udp_bound)
        self.tcp_bound, self.udp_bound = tcp, udp
        return changed

    def bound(self, proto: Proto) -> frozenset[Service]:
        return self.tcp_bound if proto is Proto.TCP else self.udp_bound
